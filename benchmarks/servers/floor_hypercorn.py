"""Floor one: a bare ASGI app that streams SSE, under hypercorn's trio worker.

No framework between hypercorn and the stream: the request task writes the stream, and a
second task waits for ``http.disconnect`` (hypercorn drops what is sent to a closed
connection, so without it a departed client's stream would be written forever).
"""

from __future__ import annotations

import trio
from _floor import AsgiApp, FloorSession, Receive, Send, bare_app, parse_floor_args
from _hypercorn import serve_app


async def stream_with_trio(
    session: FloorSession, receive: Receive, send: Send, heartbeat: float
) -> None:
    """Write the stream until ``http.disconnect``, with trio's tasks and timeouts."""
    async with trio.open_nursery() as nursery:

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        while True:
            chunk = await session.next_chunk(heartbeat)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def trio_floor(heartbeat: float) -> AsgiApp:
    return bare_app(stream_with_trio, heartbeat)


def main() -> None:
    args = parse_floor_args(__doc__ or "")
    serve_app(trio_floor(args.heartbeat), args.port, keep_alive=args.keep_alive_timeout)


if __name__ == "__main__":
    main()
