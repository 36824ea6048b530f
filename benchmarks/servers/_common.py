"""The command line every server under test takes, so the orchestrator starts them alike.

Standard library only: the SDK's server imports this from its own virtualenv.
"""

from __future__ import annotations

import argparse

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
