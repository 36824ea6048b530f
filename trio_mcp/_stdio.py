"""The stdio transport: one session over the process's stdin and stdout.

A host starts the server as a child process and the two speak JSON-RPC over its pipes,
one message per line (MCP's stdio transport). This module is the edge, as
:mod:`trio_mcp._sse` and :mod:`trio_mcp._streamable` are for HTTP: it maps lines to
:meth:`Session.deliver` and the session's main stream to lines, and knows nothing of
tools. A stdio session is an ordinary session whose main stream is written to stdout.

* The reader (the transport's own task) splits stdin into lines. A blank line is
  skipped; one that is not JSON is answered with -32700, one that is not a JSON-RPC
  message with -32600 (its id echoed when readable); a batch is taken or refused by
  the negotiated revision's rules, as over HTTP. None of these ends the session.
  Before each message the reader waits until the stream to stdout has room: a host
  that leaves the replies unread is made to wait in turn, by a pipe that fills up.
* The writer (one task) sends the main stream to stdout, so messages never interleave.
  Every message is one line: the wire encoding is compact ASCII JSON, which has no raw
  newline in it.
* The end: when stdin closes, the session is closed, which cancels its running calls;
  what was already queued still goes out, for at most ``stalled_client_timeout``
  (the host may have stopped reading too), and :meth:`StdioTransport.serve` returns.
  :meth:`StdioTransport.shutdown` ends it the same way after a drain.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs
import trio

from ._config import Settings
from ._jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    InvalidMessage,
    JSONRPCError,
    ParseError,
    dumps,
    error_message,
    parse_body,
)
from ._session import Session, SessionClosed, SessionOverloaded
from ._stream import OutboundStream
from ._supervisor import NotServing, SessionSupervisor

log = logging.getLogger("trio_mcp")

#: Bytes asked of stdin at a time (a pipe's capacity on Linux).
_READ_SIZE: Final = 65536


@attrs.frozen
class LineTooLong:
    """A line longer than the limit: its bytes were dropped up to the next newline."""

    limit: int


class LineFramer:
    """Newline-delimited framing, sans-io: bytes in, lines out.

    A line longer than ``limit`` bytes is reported once, as soon as it is too long, and
    the rest of it is skipped, so a host that sends one huge message costs the server
    ``limit`` bytes of memory and one error, never the session.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = bytearray()
        self._skipping = False

    def feed(self, data: bytes | bytearray) -> list[bytes | LineTooLong]:
        lines: list[bytes | LineTooLong] = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            if self._skipping:
                self._skipping = False
            elif len(self._partial) + end - start > self._limit:
                lines.append(LineTooLong(self._limit))
            else:
                self._partial += data[start:end]
                lines.append(bytes(self._partial))
            self._partial.clear()
            start = end + 1
        if not self._skipping:
            self._partial += data[start:]
            if len(self._partial) > self._limit:
                lines.append(LineTooLong(self._limit))
                self._partial.clear()
                self._skipping = True
        return lines

    def end(self) -> list[bytes | LineTooLong]:
        """The input ended: a last line without its newline still counts."""
        last = bytes(self._partial)
        self._partial.clear()
        return [last] if last and not self._skipping else []


class StdioTransport:
    """Serves one session over a pair of byte streams (stdin and stdout in a process;
    anything else in a test). Make one per session."""

    def __init__(self, supervisor: SessionSupervisor, settings: Settings) -> None:
        self._supervisor = supervisor
        self._settings = settings
        # Made now, so that a shutdown before the reading starts still stops it.
        self._reading = trio.CancelScope()

    async def serve(self, stdin: trio.abc.ReceiveStream, stdout: trio.abc.SendStream) -> None:
        """Serve until stdin ends, stdout breaks or :meth:`shutdown` is done; then end
        the session (cancelling its running calls) and return once what was queued has
        been written, or ``stalled_client_timeout`` has passed."""
        try:
            session = await self._supervisor.open_session("stdio")
        except NotServing:
            return  # shut down before it began
        written = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write, session, stdout, written)
            with self._reading:
                await self._read(session, stdin)
            self._supervisor.end(session)
            with trio.move_on_after(self._settings.stalled_client_timeout) as flush:
                await written.wait()
            if flush.cancelled_caught:
                log.warning(
                    "stdio: the host read nothing for %g s; messages left unsent",
                    self._settings.stalled_client_timeout,
                )
            nursery.cancel_scope.cancel()

    async def shutdown(self, timeout: float) -> None:
        """Drain, then stop: new requests are refused (-32000), running calls may finish
        within ``timeout`` seconds (replies to the server's own requests still arrive
        meanwhile), then the session ends and :meth:`serve` returns as when stdin ends."""
        await self._supervisor.drain(trio.current_time() + timeout)
        self._reading.cancel()

    # -- stdin ----------------------------------------------------------------------------

    async def _read(self, session: Session, stdin: trio.abc.ReceiveStream) -> None:
        framer = LineFramer(self._settings.max_body_bytes)
        while True:
            try:
                data = await stdin.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""  # a terminal hung up: as good as closed
            lines = framer.feed(data) if data else framer.end()
            for line in lines:
                try:
                    await self._take(session, line)
                except (SessionClosed, trio.ClosedResourceError):
                    return  # the session ended: what is left has nobody to act on it
            if not data:
                log.info("stdio: stdin closed; ending the session")
                return

    async def _take(self, session: Session, line: bytes | LineTooLong) -> None:
        """Act on one line: deliver its messages, or answer why it cannot be taken."""
        if isinstance(line, LineTooLong):
            await _refuse(session, INVALID_REQUEST, f"a message exceeds {line.limit} bytes")
            return
        if not line.strip():
            return
        try:
            body = parse_body(line)
        except ParseError as exc:
            await _refuse(session, PARSE_ERROR, f"Parse error: {exc}")
            return
        invalid = [item for item in body.items if isinstance(item, InvalidMessage)]
        if invalid:
            # As over HTTP, a batch is taken whole or refused whole. Each error is a line
            # of its own: of the revisions, only 2025-03-26 has arrays of responses.
            for item in invalid:
                await _send(session.main, error_message(item.id, item.error))
            return
        refusal = session.protocol.refuse_batch(body.messages) if body.is_batch else None
        if refusal is not None:
            await _refuse(session, INVALID_REQUEST, refusal)
            return
        for message in body.messages:
            await session.main.wait_for_room()
            try:
                await session.deliver([message])
            except SessionOverloaded:
                # Not expected: after wait_for_room an immediate reply has room to spare.
                # Should it happen, one message is lost rather than the session.
                log.error("stdio: no room for an immediate reply; a message was dropped")

    # -- stdout ---------------------------------------------------------------------------

    async def _write(
        self, session: Session, stdout: trio.abc.SendStream, written: trio.Event
    ) -> None:
        """Send the main stream, a line per message, until the session ends. A host that
        closed its end of stdout has gone: the session ends with it."""
        stream = session.main
        cursor = 0
        try:
            while (events := await stream.next_events(cursor)) is not None:
                if events:  # an empty list is a heartbeat, which no timer asks of this writer
                    cursor = events[-1].seq
                    await stdout.send_all("".join(e.data + "\n" for e in events).encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("stdio: stdout closed; ending the session")
            self._reading.cancel()
            self._supervisor.end(session)
        finally:
            written.set()


async def _refuse(session: Session, code: int, message: str) -> None:
    # The error answers a line, not a request whose id was read: it carries no id.
    await _send(session.main, error_message(None, JSONRPCError(code, message)))


async def _send(stream: OutboundStream, message: dict[str, object]) -> None:
    """Queue a message for stdout after what is already queued, waiting for room."""
    await stream.append(dumps(message), response=True)
