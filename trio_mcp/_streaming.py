"""Writing an outbound stream as an SSE response: the one writer loop of both transports.

:func:`serve_stream` runs in the HTTP request's own task and is the only code that
sends bytes on that response. Beside it, in a nursery of its own, a watcher waits for
``http.disconnect`` and cancels the nursery. The writer stops when the stream is
complete (a request stream's last reply is out), the session ends, the client leaves, or
a newer connection takes the stream over; none of these cancels the session's handlers.
"""

from __future__ import annotations

from typing import Final

import trio

from ._eventstream import HEARTBEAT, encode_event
from ._http import Receive, Send
from ._session import Session
from ._stream import OutboundStream

STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless told not to; an SSE stream must not be.
    (b"x-accel-buffering", b"no"),
]


async def send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def serve_stream(
    session: Session,
    stream: OutboundStream,
    receive: Receive,
    send: Send,
    *,
    cursor: int,
    heartbeat: float,
    event_name: str | None,
    preamble: bytes = b"",
    headers: list[tuple[bytes, bytes]] = STREAM_HEADERS,
    take_over: bool,
) -> None:
    """Attach to ``stream`` and send it as an SSE response from ``cursor`` on.

    Raises :class:`~trio_mcp._stream.StreamBusy` before sending anything if another
    writer holds the stream and ``take_over`` is false.
    """
    # The writer's scope: a newer connection that takes the stream over cancels it, and
    # this response still ends cleanly below.
    writer = trio.CancelScope()
    stream.attach(writer, take_over=take_over)
    session.touch()
    client_left = False
    try:
        # Outside the writer's scope: a response once begun is always ended below.
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if preamble:
            await send_chunk(send, preamble)
        with writer:
            async with trio.open_nursery() as nursery:

                async def watch_disconnect() -> None:
                    nonlocal client_left
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    client_left = True
                    writer.cancel()

                nursery.start_soon(watch_disconnect)
                await _pump(stream, send, cursor, heartbeat, event_name)
                nursery.cancel_scope.cancel()
    finally:
        stream.detach(writer)
        session.touch()
    if not client_left:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pump(
    stream: OutboundStream, send: Send, cursor: int, heartbeat: float, event_name: str | None
) -> None:
    while True:
        events = await stream.next_events(cursor, heartbeat)
        if events is None:
            return
        if not events:
            await send_chunk(send, HEARTBEAT)
            continue
        cursor = events[-1].seq
        chunk = b"".join(
            encode_event(e.data, event=event_name, event_id=stream.event_id(e.seq)) for e in events
        )
        await send_chunk(send, chunk)


def parse_event_id(value: str) -> tuple[str, int] | None:
    """(stream key, sequence number) from a ``Last-Event-ID``, or None if malformed."""
    key, dot, seq = value.strip().rpartition(".")
    if not dot or not key or not seq.isdigit() or len(seq) > 18:
        return None
    return key, int(seq)
