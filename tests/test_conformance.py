"""The official MCP conformance suite against examples/everything.py at /mcp.

The suite (npm ``@modelcontextprotocol/conformance``, pinned below) needs Node 22, which
comes from the npm registry as the package ``node``; both are installed once into
``TRIO_MCP_CONFORMANCE_DIR`` (default: ``.conformance/`` in the project). With
``--requirements`` the suite exits 0 even when a scored scenario failed, so the verdict
is read from the SUMMARY block it prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
from peers import missing

SUITE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE = "node@22"
PROJECT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 300
RUN_TIMEOUT = 240

#: The suite passes under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


@pytest.fixture(scope="module")
def conformance() -> list[str]:
    """The command that runs the suite, installing it first if needed."""
    prefix = Path(os.environ.get("TRIO_MCP_CONFORMANCE_DIR", PROJECT / ".conformance"))
    node = prefix / "node_modules" / "node" / "bin" / "node"
    script = prefix / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist"
    if not (node.exists() and (script / "index.js").exists()):
        install(prefix)
    return [str(node), str(script / "index.js"), "server"]


def install(prefix: Path) -> None:
    """npm-install Node 22 and the suite into ``prefix``.

    npm runs *inside* ``prefix`` rather than with ``--prefix``: that flag also moves
    npm's global config to ``PREFIX/etc/npmrc``, dropping the machine's own (where its
    CA file may be set), and every registry fetch then fails and retries for minutes.
    """
    npm = shutil.which("npm")
    if npm is None:
        missing("npm is not installed")
    prefix.mkdir(parents=True, exist_ok=True)
    manifest = prefix / "package.json"
    if not manifest.exists():
        # Without one, npm would climb to a parent directory's package.json.
        manifest.write_text('{"private": true}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", NODE, SUITE],
            cwd=prefix,
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        printed = (error.stdout or b"") + (error.stderr or b"")
        pytest.fail(f"npm could not install the suite ({error}):\n{printed.decode()[-3000:]}")


def summary(output: str) -> list[tuple[bool, str, int, int]]:
    """(passed, scenario, checks passed, checks failed) per line of the SUMMARY block."""
    block = output.split("=== SUMMARY ===", 1)[1] if "=== SUMMARY ===" in output else ""
    pattern = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", re.MULTILINE)
    return [(m[1] == "✓", m[2], int(m[3]), int(m[4])) for m in pattern.finditer(block)]


async def run_suite(command: list[str], url: str, *selection: str) -> str:
    with trio.fail_after(RUN_TIMEOUT):
        result = await trio.run_process(
            [*command, "--url", url + "/mcp", *selection],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return bytes(result.stdout).decode() + bytes(result.stderr).decode()


def failures(output: str) -> list[str]:
    scenarios = summary(output)
    assert scenarios, f"the suite printed no SUMMARY:\n{output[-3000:]}"
    return [name for passed, name, _, failed in scenarios if not passed or failed]


async def test_every_scored_2025_11_25_scenario_passes(
    conformance: list[str], everything_url: str
) -> None:
    output = await run_suite(conformance, everything_url, "--requirements", "2025-11-25")
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 30


async def test_the_active_suite_passes_whole(conformance: list[str], everything_url: str) -> None:
    output = await run_suite(conformance, everything_url)
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 30


# -- MCP 2026-07-28: the stateless wire on the same endpoint, the tasks extension included --


async def test_every_2026_07_28_scenario_passes_scored_or_not(
    conformance: list[str], everything_url: str
) -> None:
    output = await run_suite(conformance, everything_url, "--requirements", "2026-07-28")
    # Unscored scenarios (the tasks extension, pending ones) print in the SUMMARY too.
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 50


async def test_the_whole_suite_passes(conformance: list[str], everything_url: str) -> None:
    output = await run_suite(conformance, everything_url, "--suite", "all")
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 65


async def test_the_pending_suite_passes(conformance: list[str], everything_url: str) -> None:
    output = await run_suite(conformance, everything_url, "--suite", "pending")
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 17


async def test_the_draft_suite_passes(conformance: list[str], everything_url: str) -> None:
    output = await run_suite(conformance, everything_url, "--suite", "draft")
    assert failures(output) == [], output[-6000:]
    assert len(summary(output)) >= 19
