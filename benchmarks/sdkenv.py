"""The official SDK's own virtualenv, made by the benchmark itself.

The SDK runs on anyio, starlette and uvicorn, none of which trio-mcp needs; a venv of
its own keeps the two dependency sets apart, and pins the SDK to the release line the
test suite checks against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).parent / ".venv-sdk"
REQUIREMENTS = ["mcp>=2.3,<2.4", "uvicorn"]
PACKAGES = ["mcp", "uvicorn", "starlette", "sse-starlette", "anyio", "h11", "pydantic"]


class SdkUnavailable(RuntimeError):
    pass


def python_of(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def _has_sdk(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import mcp.server.mcpserver, uvicorn"], capture_output=True
    )
    return probe.returncode == 0


def ensure(venv: Path = VENV) -> Path:
    """The venv's python, creating the venv and installing the SDK first if needed."""
    python = python_of(venv)
    if _has_sdk(python):
        return python
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SdkUnavailable(f"{' '.join(step[:4])}... failed:\n{done.stderr[-2000:]}")
    if not _has_sdk(python):
        raise SdkUnavailable(f"the SDK is not importable from {venv}")
    return python


def versions(python: Path) -> dict[str, str]:
    script = (
        "import json, importlib.metadata as m\n"
        f"names = {PACKAGES!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))
