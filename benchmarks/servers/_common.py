"""What every server under test shares: its command line, and a garbage-collection hook.

Standard library only: the SDK's server imports this from its own virtualenv.
"""

from __future__ import annotations

import argparse
import gc
import signal
from types import FrameType

#: The listen backlog of every server: a burst of connects must not be refused by one
#: server and queued by another (hypercorn's default is 100, uvicorn's 2048).
BACKLOG = 4096


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between pings")
    parser.add_argument("--transport", choices=["sse", "mcp"], default="sse")
    parser.add_argument("--max-sessions", type=int, default=20_000)
    return parser.parse_args()


def collect_on_sigusr1() -> None:
    """Run one full garbage collection when sent SIGUSR1.

    The idle driver sends it to every server once its sessions are open, before the idle
    window: CPython collects its oldest generation once the objects that survived since
    the last full pass exceed a quarter of it, so the last few thousand sessions opened
    trigger one pass (seconds long at 19,000 sessions) shortly after the ramp. Without
    the hook that one-off pass lands in the idle window of some runs and not others;
    with it, every server's window shows its steady state.
    """

    def collect(signum: int, frame: FrameType | None) -> None:
        gc.collect()

    signal.signal(signal.SIGUSR1, collect)
