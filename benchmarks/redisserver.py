"""The redis-server a Redis-backed system shares, and what the harness asks of it.

Each Redis-backed measurement starts its own redis-server (Debian's ``redis-server``):
on a free loopback port, nothing persisted (no RDB snapshots, no AOF), pinned to the
core the run names, and stopped by its PID, as ``tests/redispeer.py`` does for the
tests. A fresh one per measurement, like the servers, so that one run's keys never
weigh on the next.

The harness reads it over a raw socket (RESP, a few lines of it here) rather than
through a client library: ``INFO`` is all it asks, and the orchestrator has no event
loop of its own to run one on. Its CPU time and RSS come from ``/proc``, as a server's.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .proc import pin_to_core

#: Debian puts daemons in sbin, which a non-root PATH often lacks.
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
#: Seconds redis-server may take to answer PING, or to exit once told to.
START_TIMEOUT = 10.0

#: Commands the harness itself sends; never counted as the servers' traffic.
OWN_COMMANDS = frozenset({"info", "ping"})


class RedisUnavailable(RuntimeError):
    pass


def executable() -> str:
    """The path of redis-server, or RedisUnavailable saying what to install."""
    path = shutil.which("redis-server") or shutil.which("redis-server", path=_SBIN)
    if path is None:
        raise RedisUnavailable("redis-server is not installed (Debian package redis-server)")
    return path


def ensure() -> str:
    """What a Redis-backed system needs: redis-server, and coredis in this interpreter
    (the servers under test run on it); returns redis-server's version."""
    path = executable()
    try:
        import coredis  # noqa: F401
    except ImportError:
        raise RedisUnavailable(
            "coredis is not installed (pip install -e '.[bench]' or '.[redis]')"
        ) from None
    return version(path)


def version(path: str) -> str:
    """``7.0.15`` from ``Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 ...``."""
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"v=(\S+)", done.stdout)
    malloc = re.search(r"malloc=(\S+)", done.stdout)
    text = found.group(1) if found else done.stdout.strip()
    return f"{text} ({malloc.group(1)})" if malloc else text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process for one measurement."""

    def __init__(self, core: int | None, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self._process = subprocess.Popen(
            [
                executable(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                # Every session is a few keys; the servers' pools are a few connections.
                "--maxclients", "1000",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: pin_to_core(core),
        )  # fmt: skip
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            if self._process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                raise RedisUnavailable("redis-server did not answer PING")
            time.sleep(0.02)

    def command(self, *words: str) -> str:
        """One command on a connection of its own; its reply, a simple or bulk string."""
        request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(request.encode())
            return _read_reply(conn)

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as ``{field: value}``."""
        fields = {}
        for line in self.command("INFO", section).splitlines():
            if line and not line.startswith("#") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value
        return fields

    def commandstats(self) -> dict[str, int]:
        """Calls of each command Redis has run since it started (commands run inside Lua
        scripts included, as Redis counts them), the harness's own left out."""
        return parse_commandstats(self.info("commandstats"))

    def used_memory(self) -> int:
        """What Redis's allocator holds for data, bytes (``used_memory``)."""
        return int(self.info("memory")["used_memory"])

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def parse_commandstats(info: dict[str, str]) -> dict[str, int]:
    """``{"cmdstat_xadd": "calls=10,usec=..."}`` -> ``{"xadd": 10}``, without the
    harness's own commands."""
    counts = {}
    for field, value in info.items():
        name = field.removeprefix("cmdstat_")
        if name == field or name in OWN_COMMANDS:
            continue
        stats = dict(part.split("=", 1) for part in value.split(","))
        counts[name] = int(stats["calls"])
    return counts


def commands_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two :meth:`RedisServer.commandstats`, by name, most first."""
    diff = {name: after[name] - before.get(name, 0) for name in after}
    return dict(sorted(((n, c) for n, c in diff.items() if c > 0), key=lambda item: -item[1]))


def _read_reply(conn: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n")
    kind, payload = head[:1], head[1:]
    if kind == b"+":
        return payload.decode()
    if kind == b"-":
        raise RuntimeError(f"redis-server: {payload.decode()}")
    if kind != b"$":
        raise RuntimeError(f"unexpected reply from redis-server: {head[:40]!r}")
    size = int(payload)
    while len(rest) < size + 2:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        rest += chunk
    return rest[:size].decode()
