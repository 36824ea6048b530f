"""A real redis-server for tests (Debian package redis-server, which .ci/run installs):
on a free loopback port, nothing persisted, stopped by its PID at the end. The same
port survives :meth:`RedisPeer.stop` and :meth:`RedisPeer.start`, so a test can take
Redis away from running workers and give it back."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from peers import module, program

#: Seconds redis-server may take to accept connections, or to exit.
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisPeer:
    """One redis-server process on ``url``."""

    def __init__(self, executable: str, port: int) -> None:
        self._executable = executable
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None
        self._process = subprocess.Popen(
            [
                self._executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Synchronous and short (a few ms): the test's trio loop may pause for it.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it by its PID (SIGKILL: as abrupt as losing it), and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(START_TIMEOUT)


@contextmanager
def redis_server() -> Iterator[RedisPeer]:
    """A running redis-server for the duration (skipped without one, failed in CI)."""
    module("coredis")
    peer = RedisPeer(program("redis-server", "redis-server"), free_port())
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()
