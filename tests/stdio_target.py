"""A server that tests/test_stdio.py starts as a child process, with tools that show
from outside what happened inside: a cancellation reported on stderr, stray output.

``python -m trio_mcp --stdio stdio_target:server`` serves it with the default settings;
``python tests/stdio_target.py --max-body-bytes N ...`` with small ones.
"""

from __future__ import annotations

import argparse
import sys

import trio

import trio_mcp

STARTED = "hang: started"
CANCELLED = "hang: cancelled"

server = trio_mcp.Server("stdio-target")


@server.tool()
async def hang() -> str:
    """Says on stderr that it started, waits until cancelled, and says so too."""
    print(STARTED, file=sys.stderr, flush=True)
    try:
        await trio.sleep_forever()
    finally:
        print(CANCELLED, file=sys.stderr, flush=True)


@server.tool()
async def chatty(text: str) -> str:
    """Prints to stdout, has a child process print to it too, then answers.

    Args:
        text: what to print and answer.
    """
    print("a stray print:", text, flush=True)
    await trio.run_process(["echo", "a child's output:", text])
    return text


@server.tool()
async def big(size: int) -> str:
    """Answers with ``size`` bytes of text.

    Args:
        size: how many.
    """
    return "x" * size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-body-bytes", type=int, default=trio_mcp.Settings().max_body_bytes)
    parser.add_argument("--stalled-client-timeout", type=float, default=30.0)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    args = parser.parse_args()
    settings = trio_mcp.Settings(
        max_body_bytes=args.max_body_bytes, stalled_client_timeout=args.stalled_client_timeout
    )
    trio_mcp.run_stdio(server, settings=settings, shutdown_timeout=args.shutdown_timeout)


if __name__ == "__main__":
    main()
