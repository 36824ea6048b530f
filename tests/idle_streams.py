"""Run as a child process: hold many idle GET /sse streams, then drop them all at once.

``python tests/idle_streams.py URL N`` opens N streams (rawhttp's, a few dozen at a
time), prints ``ready N`` and waits for a line on stdin; then the process exits without
closing anything, so that the kernel ends every connection together, as when a proxy or
a load generator dies. A child process, so that the clients' own work is not done in the
server's run loop, where it would be counted as the server's stall.
"""

from __future__ import annotations

import os
import sys

import trio
from rawhttp import open_sse_stream

AT_ONCE = 50


async def hold(url: str, count: int) -> None:
    streams: list[trio.SocketStream] = []
    limit = trio.CapacityLimiter(AT_ONCE)

    async def open_one() -> None:
        async with limit:
            stream, _ = await open_sse_stream(url)
            streams.append(stream)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(open_one)
    print("ready", len(streams), flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)
    os._exit(0)


if __name__ == "__main__":
    trio.run(hold, sys.argv[1], int(sys.argv[2]))
