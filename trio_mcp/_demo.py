"""The built-in demo server: a few tools that show the framework at work."""

from __future__ import annotations

import math

import trio

from ._context import Context
from ._server import Server
from ._tools import ToolAnnotations, ToolError

PROGRESS_INTERVAL = 0.25

demo = Server(
    "trio-mcp-demo",
    "0.1.0",
    title="trio-mcp demo",
    instructions="A demonstration server: echo text, add integers, or sleep with progress.",
)


@demo.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
async def echo(text: str) -> str:
    """Return the text unchanged.

    Args:
        text: what to echo back.
    """
    return text


@demo.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


# Its own argument bounds how long it runs, up to an hour: past the server's default.
@demo.tool(annotations=ToolAnnotations(read_only_hint=True), timeout=math.inf)
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleep for a while, reporting progress about every 0.25 s when asked to.

    Args:
        seconds: how long to sleep (at most one hour).
    """
    if not 0 <= seconds <= 3600:
        raise ToolError(f"seconds must be between 0 and 3600, not {seconds:g}")
    deadline = trio.current_time() + seconds
    await ctx.report_progress(0, seconds)
    while (remaining := deadline - trio.current_time()) > 0:
        await trio.sleep(min(PROGRESS_INTERVAL, remaining))
        remaining = max(0.0, deadline - trio.current_time())
        await ctx.report_progress(round(seconds - remaining, 3), seconds)
    return f"slept {seconds:g} s"
