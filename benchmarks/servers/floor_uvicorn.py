"""Floor three: the same bare ASGI app as floor one, in pure asyncio, under uvicorn
(uvloop, httptools): what uvicorn itself costs, with no trio at all (issue 12's
"pure-asyncio figure").
"""

from __future__ import annotations

import asyncio
from typing import Any

from _floor import FloorSession, Receive, Send, bare_app, parse_floor_args
from _uvicorn import serve_app


class AsyncioFloorSession(FloorSession):
    """A floor session woken by an asyncio event."""

    __slots__ = ()

    @staticmethod
    def new_event() -> Any:
        return asyncio.Event()

    async def wait(self, heartbeat: float) -> None:
        try:
            async with asyncio.timeout(heartbeat):
                await self.wakeup.wait()
        except TimeoutError:
            pass


async def stream_with_asyncio(
    session: FloorSession, receive: Receive, send: Send, heartbeat: float
) -> None:
    """Write the stream in a task of its own until ``http.disconnect``."""

    async def write() -> None:
        while True:
            chunk = await session.next_chunk(heartbeat)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async with asyncio.TaskGroup() as group:
        writer = group.create_task(write())
        while (await receive())["type"] != "http.disconnect":
            pass
        writer.cancel()


def main() -> None:
    args = parse_floor_args(__doc__ or "")
    app = bare_app(stream_with_asyncio, args.heartbeat, AsyncioFloorSession)
    serve_app(app, args.port, args.keep_alive_timeout)


if __name__ == "__main__":
    main()
