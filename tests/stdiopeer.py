"""A host for tests: starts a server as a child process and speaks MCP over its pipes,
line by line. Every line the server writes is parsed and checked against the schema
of the negotiated revision, so any test that reads stdout checks it carries nothing
but MCP messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from mcpschema import validate_server_message

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def child_env() -> dict[str, str]:
    """This process's environment, with the code under test (and the test servers and
    examples) first on the child's path."""
    path = [str(ROOT), str(TESTS), str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


class StdioPeer:
    """The host's side of one stdio session."""

    def __init__(self, process: trio.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.version = "2025-11-25"
        #: Every line the server wrote, as written.
        self.lines: list[bytes] = []
        self._buffer = bytearray()
        self._pending: dict[Any, str] = {}
        self._next_id = 0
        self.eof = False

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # -- sending ---------------------------------------------------------------------------

    async def send_line(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def send(self, message: Any) -> None:
        await self.send_line(json.dumps(message).encode() + b"\n")

    def request(
        self, method: str, params: dict[str, Any] | None = None, request_id: Any = None
    ) -> dict[str, Any]:
        """A request message, its id (the next one unless given) expected in a reply."""
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._pending[request_id] = method
        return message

    async def send_request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message = self.request(method, params)
        await self.send(message)
        return message["id"]

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    # -- receiving -------------------------------------------------------------------------

    async def read_line(self) -> bytes | None:
        """The next line of stdout (without its newline), or None at its end."""
        assert self.process.stdout is not None
        while (end := self._buffer.find(b"\n")) == -1:
            data = await self.process.stdout.receive_some()
            if not data:
                self.eof = True
                assert not self._buffer, f"a last line without a newline: {self._buffer!r}"
                return None
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self.lines.append(line)
        return line

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next message, checked."""
        with trio.fail_after(timeout):
            line = await self.read_line()
        assert line is not None, "stdout ended"
        message = json.loads(line)
        assert isinstance(message, dict), message
        method = None if "method" in message else self._pending.pop(message.get("id"), None)
        validate_server_message(self.version, message, method)
        return message

    async def reply_to(self, request_id: Any, timeout: float = 10) -> dict[str, Any]:
        """The response with this id; messages met on the way are checked and skipped."""
        with trio.fail_after(timeout):
            while True:
                message = await self.receive(timeout)
                if message.get("id") == request_id and "method" not in message:
                    return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.reply_to(await self.send_request(method, params))

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.version = version
        reply = await self.call(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "stdio-test-host", "version": "1"},
            },
        )
        self.version = reply["result"]["protocolVersion"]
        await self.notify("notifications/initialized")
        return reply

    async def exit_status(self, timeout: float = 10) -> int:
        """Wait (bounded) for the server to exit; its status."""
        with trio.fail_after(timeout):
            return await self.process.wait()

    async def wait_for_stderr(self, text: str, timeout: float = 10) -> None:
        """Wait (bounded, polling the log file) until stderr contains ``text``."""
        with trio.fail_after(timeout):
            while text not in self.stderr:
                await trio.sleep(0.02)


@asynccontextmanager
async def stdio_server(stderr_path: Path, *args: str) -> AsyncIterator[StdioPeer]:
    """Run ``python *args`` with pipes for stdin and stdout and stderr to a file; kill it
    (by its pid) if it is still running at the end."""
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=child_env(),
        )
    try:
        yield StdioPeer(process, stderr_path)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    await pipe.aclose()
