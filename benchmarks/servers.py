"""The systems under test and their server processes.

Every server is its own process, started fresh for each measurement so that one run's
memory never flatters or burdens the next, pinned to the server core with the same fd
limit, and stopped by its pid. trio-mcp and the floors run on this interpreter; the
Python SDK runs on its own virtualenv's (see :mod:`.sdkenv`), the TypeScript SDK on the
machine's Node.js from its own environment (see :mod:`.nodeenv`).

trio-mcp is measured under each ASGI server it runs on (the *host*): hypercorn's trio
worker natively, and hypercorn's asyncio worker and uvicorn (uvloop, httptools) with
trio as a guest on their loop. Each host is a system of its own, named
``trio-mcp@<host>``, except the native one, which keeps the name ``trio-mcp``.

Each of trio-mcp's hosts is measured with Redis too (issue 14): ``<system>+redis`` is
the same script with ``Settings.redis_url`` pointing at a redis-server the harness
starts for the measurement (see :mod:`.deployment`), and ``trio-mcp+redis-w2`` is two
such worker processes sharing one, the load spreading its connections over both as a
round-robin balancer would. Every server runs with ``TRIO_MCP_REDIS_URL`` taken out of
its environment (a Redis-backed one gets its URL by flag), so that an in-memory row is
in memory whatever the shell says.

Transports are ``sse`` (HTTP+SSE), ``mcp`` (Streamable HTTP with sessions) and
``mcp-stateless`` (MCP 2026-07-28's stateless wire on ``/mcp``), where a system serves
them. On the stateless wire the echo runs for every system that has it, and the idle
sweep holds ``subscriptions/listen`` streams for the systems that say ``listens``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import STATELESS
from .proc import pin_to_core, raise_fd_limit

SERVERS_DIR = Path(__file__).parent / "servers"


#: Where a system's server script runs: this interpreter, the Python SDK's virtualenv,
#: or Node.js with the TypeScript SDK's environment.
PROJECT, PYTHON_SDK, NODE = "project", "python-sdk", "node"

HYPERCORN_TRIO = "hypercorn -k trio"
UVICORN = "uvicorn (uvloop, httptools)"


@dataclass(frozen=True)
class System:
    name: str
    script: str
    transports: tuple[str, ...]
    #: The server that serves it, as the report shows it.
    host: str
    runtime: str = PROJECT
    #: Arguments for the script beyond the ones every server takes.
    args: tuple[str, ...] = ()
    floor: bool = False
    #: Whether the idle sweep measures it on the stateless wire too: one idle
    #: ``subscriptions/listen`` stream per client (trio-mcp's hosts; issue 13).
    listens: bool = False
    #: Whether its workers share a redis-server (``Settings.redis_url``; issue 14).
    redis: bool = False
    #: Worker processes that serve it, each on a port of its own (see deployment.py).
    server_workers: int = 1
    #: The system the Redis section sets it beside: its host in memory, or for several
    #: workers the same host with one worker on Redis.
    compared_with: str | None = None
    #: Whether the idle sweep measures it (not the two-worker system: an idle session
    #: costs what it costs on the one worker that holds it).
    idles: bool = True

    @property
    def gc_hooks(self) -> bool:
        """Whether the server answers SIGUSR1/SIGUSR2 (servers/_common.py): Python ones
        do; Node reserves SIGUSR1 for its inspector, and V8's collector is not CPython's."""
        return self.runtime != NODE


TRANSPORTS = ("sse", "mcp", STATELESS)
#: What the Redis-backed systems are measured on: the session transports, whose sessions
#: Redis shares between workers (the stateless wire has no session to share).
REDIS_TRANSPORTS = ("sse", "mcp")

SYSTEMS: tuple[System, ...] = (
    System(
        "trio-mcp",
        "trio_mcp_server.py",
        TRANSPORTS,
        HYPERCORN_TRIO,
        args=("--server", "hypercorn-trio"),
        listens=True,
    ),
    System(
        "trio-mcp+redis",
        "trio_mcp_server.py",
        REDIS_TRANSPORTS,
        HYPERCORN_TRIO,
        args=("--server", "hypercorn-trio"),
        redis=True,
        compared_with="trio-mcp",
    ),
    System(
        "trio-mcp+redis-w2",
        "trio_mcp_server.py",
        REDIS_TRANSPORTS,
        HYPERCORN_TRIO,
        args=("--server", "hypercorn-trio"),
        redis=True,
        server_workers=2,
        compared_with="trio-mcp+redis",
        idles=False,
    ),
    System(
        "trio-mcp@hypercorn-asyncio",
        "trio_mcp_server.py",
        TRANSPORTS,
        "hypercorn (asyncio worker)",
        args=("--server", "hypercorn-asyncio"),
        listens=True,
    ),
    System(
        "trio-mcp@hypercorn-asyncio+redis",
        "trio_mcp_server.py",
        REDIS_TRANSPORTS,
        "hypercorn (asyncio worker)",
        args=("--server", "hypercorn-asyncio"),
        redis=True,
        compared_with="trio-mcp@hypercorn-asyncio",
    ),
    System(
        "trio-mcp@uvicorn",
        "trio_mcp_server.py",
        TRANSPORTS,
        UVICORN,
        args=("--server", "uvicorn"),
        listens=True,
    ),
    System(
        "trio-mcp@uvicorn+redis",
        "trio_mcp_server.py",
        REDIS_TRANSPORTS,
        UVICORN,
        args=("--server", "uvicorn"),
        redis=True,
        compared_with="trio-mcp@uvicorn",
    ),
    System("sdk", "sdk_server.py", TRANSPORTS, "uvicorn (asyncio, h11)", PYTHON_SDK),
    # Not the stateless wire: the SDK's 1.32 line serves revisions up to 2025-11-25 (the
    # run's notes say so, from the installed SDK; see nodeenv.protocol_versions).
    System("ts-sdk", "ts_sdk_server.mjs", ("sse", "mcp"), "node, express", NODE),
    System("floor-hypercorn", "floor_hypercorn.py", ("sse",), HYPERCORN_TRIO, floor=True),
    System("floor-quart", "floor_quart.py", ("sse",), HYPERCORN_TRIO, floor=True),
    # Issue 12's decomposition: floor-hypercorn's app as a guest on uvicorn, and the same
    # app in pure asyncio there (see servers/_floor.py).
    System("floor-trio@uvicorn", "floor_guest.py", ("sse",), UVICORN, floor=True),
    System("floor-asyncio@uvicorn", "floor_uvicorn.py", ("sse",), UVICORN, floor=True),
)
SYSTEM_NAMES = tuple(system.name for system in SYSTEMS)
HOSTS = {system.name: system.host for system in SYSTEMS}
REDIS_SYSTEMS = tuple(system.name for system in SYSTEMS if system.redis)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Launcher:
    """What runs a runtime's scripts: its program, and where its copies of the scripts
    are (servers/ for Python; the TS SDK's environment for Node, see :mod:`.nodeenv`)."""

    program: str
    scripts: Path = SERVERS_DIR

    def command(self, system: System) -> list[str]:
        return [self.program, str(self.scripts / system.script)]


#: This interpreter, for trio-mcp and the floors.
PROJECT_LAUNCHER = Launcher(sys.executable)


#: What trio-mcp's Settings reads its Redis URL from when none is given.
REDIS_URL_ENV = "TRIO_MCP_REDIS_URL"


def server_environment(gc_stats: Path) -> dict[str, str]:
    """A server's environment: the harness's, with where to write its collector's
    figures, and never a Redis URL (a Redis-backed system gets its own by flag)."""
    env = {**os.environ, "BENCHMARK_GC_STATS": str(gc_stats)}
    env.pop(REDIS_URL_ENV, None)
    return env


class ServerFailed(RuntimeError):
    pass


class ServerProcess:
    """One server under test, listening on a fresh port on 127.0.0.1.

    ``command`` starts the system's script (its interpreter and the script's path); the
    arguments every server takes follow it, then ``extra_args`` (the attack section's
    bounds, which only trio-mcp's script takes).
    """

    def __init__(
        self,
        system: System,
        transport: str,
        *,
        command: list[str],
        heartbeat: float,
        core: int | None,
        log_path: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.system = system
        self.transport = transport
        self.port = free_port()
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self._gc_stats_path = log_path.with_suffix(".gc.json")

        def prepare() -> None:
            pin_to_core(core)
            raise_fd_limit()

        self._process = subprocess.Popen(
            [
                *command,
                *system.args,
                "--port",
                str(self.port),
                "--heartbeat",
                str(heartbeat),
                "--transport",
                transport,
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=prepare,
            cwd=SERVERS_DIR,
            env=server_environment(self._gc_stats_path),
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerFailed(f"{self.system.name} exited; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise ServerFailed(f"{self.system.name} did not listen within {timeout:g} s")

    def gc_stats(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The collector's work since the last call (or since the server started):
        ``{"collections": [gen0, gen1, gen2], "seconds": [...]}``, or None if the server
        did not answer or does not count (see ``servers/_common.py``)."""
        if not self.system.gc_hooks:
            return None
        path = self._gc_stats_path
        path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                stats: dict[str, Any] = json.loads(path.read_text())
                return stats
            time.sleep(0.02)
        return None

    def collect(self) -> None:
        """Ask the server for one full garbage collection, where it has that hook."""
        if self.system.gc_hooks:
            os.kill(self.pid, signal.SIGUSR1)

    def stop(self) -> None:
        if self.alive():
            os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._log.close()
