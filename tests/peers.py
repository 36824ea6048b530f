"""Real peers that tests start themselves (nginx, Chromium, the conformance suite).

On a machine without one, its tests skip and say why. CI installs every peer (.ci/run)
and sets CI=true, and there a missing peer fails the test instead: a green run must
mean the peers were really there.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

# Debian puts daemons such as nginx in sbin, which a non-root PATH often lacks.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def missing(reason: str) -> NoReturn:
    """Skip the test for want of a peer; under CI, fail it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs its real peers and must not skip this test)")
    pytest.skip(reason)


def program(name: str, package: str) -> str:
    """The path of a peer's executable, from the Debian package ``package``."""
    path = shutil.which(name) or shutil.which(name, path=SBIN)
    if path is None:
        missing(f"{name} is not installed (Debian package {package}, which .ci/run installs)")
    return path


def module(name: str) -> ModuleType:
    """A Python library that drives a peer, from the ``test`` extra."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python package {name} is not installed (pip install -e '.[test]')")
