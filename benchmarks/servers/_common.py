"""What every server under test shares: its command line, and garbage-collection hooks.

Standard library only: the SDK's server imports this from its own virtualenv.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import time
from types import FrameType

#: The listen backlog of every server: a burst of connects must not be refused by one
#: server and queued by another (hypercorn's default is 100, uvicorn's 2048).
BACKLOG = 4096


def make_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every server takes; a server with more adds them to this."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between pings")
    # mcp-stateless: MCP 2026-07-28's stateless wire, served on /mcp beside Streamable
    # HTTP by the servers that speak it (trio-mcp and the Python SDK).
    parser.add_argument("--transport", choices=["sse", "mcp", "mcp-stateless"], default="sse")
    parser.add_argument("--max-sessions", type=int, default=20_000)
    return parser


def parse_args(description: str) -> argparse.Namespace:
    return make_parser(description).parse_args()


def install_gc_hooks() -> None:
    """SIGUSR1 runs one full garbage collection; SIGUSR2 reports the collector's work.

    The idle driver sends SIGUSR1 to every server once its sessions are open, before the
    idle window: CPython collects its oldest generation once the objects that survived
    since the last full pass exceed a quarter of it, so the last few thousand sessions
    opened trigger one pass (seconds long at 19,000 sessions) shortly after the ramp.
    Without the hook that one-off pass lands in the idle window of some runs and not
    others; with it, every server's window shows its steady state.

    SIGUSR2 writes, as JSON to the file named by ``$BENCHMARK_GC_STATS``, how many
    collections of each generation ran since the last SIGUSR2 and how long they took,
    then counts afresh: the drivers send one when a window begins and one when it ends.
    With thousands of sessions the collector can be most of a server's idle CPU.
    """
    collections = [0, 0, 0]
    seconds = [0.0, 0.0, 0.0]
    started = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            generation = info["generation"]
            collections[generation] += 1
            seconds[generation] += time.perf_counter() - started[0]

    def collect(signum: int, frame: FrameType | None) -> None:
        gc.collect()

    def report(signum: int, frame: FrameType | None) -> None:
        path = os.environ.get("BENCHMARK_GC_STATS")
        if path:
            partial = path + ".partial"
            with open(partial, "w") as out:
                json.dump({"collections": collections, "seconds": seconds}, out)
            os.replace(partial, path)  # the driver never reads half a file
        collections[:] = [0, 0, 0]
        seconds[:] = [0.0, 0.0, 0.0]

    gc.callbacks.append(on_collection)
    signal.signal(signal.SIGUSR1, collect)
    signal.signal(signal.SIGUSR2, report)
