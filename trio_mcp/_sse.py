"""The HTTP+SSE transport of MCP 2024-11-05.

``GET /sse`` opens a session and its stream; the first event names the URL the client
POSTs its messages to. Everything the server sends travels as ``message`` events on that
one stream. This module is the edge: it maps HTTP to session calls and session failures
to HTTP statuses, and knows nothing of tools.

One stream's tasks, all in the nursery of the GET's own request task:

* the request task itself is the **writer**, the only code that sends bytes on the
  stream: it drains the session's outbound channel, and sends a heartbeat comment when
  the channel has been quiet for ``heartbeat_interval`` (one task does both; a separate
  heartbeat task would have to share the send side and cost memory per session);
* a **disconnect watcher** waits for ``http.disconnect`` and cancels the nursery.

When the nursery ends, for whatever reason, the session ends with it.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

import trio

from ._config import Settings
from ._eventstream import HEARTBEAT, encode_event
from ._http import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    media_type,
    query_param,
    read_body,
    respond,
    respond_error,
    respond_json,
)
from ._jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    InvalidMessage,
    ParseError,
    error_message,
    parse_body,
)
from ._session import OutboundMessage, Session, SessionClosed
from ._supervisor import NotServing, SessionSupervisor

log = logging.getLogger("trio_mcp")

STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless told not to; an SSE stream must not be.
    (b"x-accel-buffering", b"no"),
]
#: Messages written in one chunk when several are waiting: fewer sends, same order.
_MAX_BATCH: Final = 64


def encode_message(message: OutboundMessage) -> bytes:
    return encode_event(message.data, event="message")


class SseTransport:
    def __init__(self, supervisor: SessionSupervisor, settings: Settings) -> None:
        self._supervisor = supervisor
        self._settings = settings

    # -- GET /sse -----------------------------------------------------------------------

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            session = await self._supervisor.open_session()
        except NotServing as exc:
            await respond(send, 503, str(exc).encode())
            return
        try:
            endpoint = (
                f"{scope.get('root_path', '')}{self._settings.messages_path}"
                f"?session_id={quote(session.id)}"
            )
            await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
            await _send_chunk(send, encode_event(endpoint, event="endpoint"))
            client_left = False
            async with trio.open_nursery() as nursery:

                async def watch_disconnect() -> None:
                    nonlocal client_left
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    client_left = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_disconnect)
                await self._write(session, send)
                nursery.cancel_scope.cancel()
            if not client_left:
                # The session ended on our side: end the response properly.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._supervisor.end(session)

    async def _write(self, session: Session, send: Send) -> None:
        """Copy the session's outbound messages to the stream until the session ends."""
        outbound = session.outbound
        interval = self._settings.heartbeat_interval
        while True:
            chunk = HEARTBEAT
            with trio.move_on_after(interval):
                try:
                    first = await outbound.receive()
                except trio.EndOfChannel:
                    return
                chunk = b"".join(encode_message(m) for m in _drain(outbound, first))
            await _send_chunk(send, chunk)

    # -- POST /messages/?session_id= ----------------------------------------------------

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = query_param(scope, "session_id")
        if not session_id:
            await respond_error(
                send, 400, INVALID_REQUEST, "missing the session_id query parameter"
            )
            return
        session = self._supervisor.get(session_id)
        if session is None:
            await respond_error(
                send, 404, INVALID_REQUEST, "unknown or ended session: open a new one with GET /sse"
            )
            return
        if media_type(scope) != "application/json":
            await respond_error(
                send,
                415,
                INVALID_REQUEST,
                "POST a JSON-RPC message with Content-Type: application/json",
            )
            return
        try:
            raw = await read_body(scope, receive, self._settings.max_body_bytes)
        except BodyTooLarge:
            await respond_error(
                send,
                413,
                INVALID_REQUEST,
                f"the body exceeds {self._settings.max_body_bytes} bytes",
                headers=[(b"connection", b"close")],
            )
            return
        except ClientGone:
            return
        try:
            body = parse_body(raw)
        except ParseError as exc:
            await respond_error(send, 400, PARSE_ERROR, f"Parse error: {exc}")
            return
        invalid = [item for item in body.items if isinstance(item, InvalidMessage)]
        if invalid:
            # A body is accepted whole or refused whole, so the client never has to guess
            # which parts of a batch were acted on.
            errors = [error_message(item.id, item.error) for item in invalid]
            await respond_json(send, 400, errors if body.is_batch else errors[0])
            return
        if body.is_batch and not session.protocol.batches_allowed:
            await respond_error(
                send,
                400,
                INVALID_REQUEST,
                f"JSON-RPC batches are not part of MCP {session.protocol.protocol_version}",
            )
            return
        try:
            await session.deliver(body.items)  # type: ignore[arg-type]
        except SessionClosed:
            await respond_error(send, 404, INVALID_REQUEST, "the session ended")
            return
        await respond(send, 202, b"Accepted")


def _drain(
    outbound: trio.MemoryReceiveChannel[OutboundMessage], first: OutboundMessage
) -> list[OutboundMessage]:
    batch = [first]
    while len(batch) < _MAX_BATCH:
        try:
            batch.append(outbound.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return batch


async def _send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})
