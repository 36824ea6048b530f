"""Floor one: a bare ASGI app that streams SSE, under hypercorn's trio worker.

No framework between hypercorn and the stream: the request task writes the stream, and a
second task waits for ``http.disconnect`` (hypercorn drops what is sent to a closed
connection, so without it a departed client's stream would be written forever).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import trio
from _common import parse_args
from _floor import close_session, endpoint_event, handle_post, open_session
from _hypercorn import serve_app

HEARTBEAT = 15.0

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    if path == "/sse" and method == "GET":
        await _stream(receive, send)
    elif path == "/messages/" and method == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = parse_qs(scope["query_string"].decode())
        status = handle_post(query.get("session_id", [""])[0], body)
        await _respond(send, status, b"")
    else:
        await _respond(send, 404, b"")


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(receive: Any, send: Any) -> None:
    session_id, session = open_session()
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send(
            {"type": "http.response.body", "body": endpoint_event(session_id), "more_body": True}
        )
        async with trio.open_nursery() as nursery:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            while True:
                chunk = await session.next_chunk(HEARTBEAT)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        close_session(session_id)


def main() -> None:
    global HEARTBEAT
    args = parse_args(__doc__ or "")
    HEARTBEAT = args.heartbeat
    serve_app(app, args.port)


if __name__ == "__main__":
    main()
