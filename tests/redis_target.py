"""The app worker processes serve in tests/test_redis_processes.py: tools that run as
tasks, and one that says which process answered; at ``/``, the web page
tests/test_browser.py drives (served by the instances themselves, it is same-origin
with them behind nginx). Its Settings come from the environment
(``TRIO_MCP_REDIS_URL``), as any app's do; the worker timeout is short so that a killed
worker is noticed within the test's bounds."""

from __future__ import annotations

import os
from pathlib import Path

import trio

import trio_mcp

server = trio_mcp.Server("redis-target")
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}


@server.tool()
async def worker() -> int:
    """The id of the process that answered (its pid)."""
    return os.getpid()


@server.tool()
async def slow(seconds: float) -> str:
    """A plain call that takes a while: in flight when its worker is killed."""
    await trio.sleep(seconds)
    return "slept"


@server.tool()
async def echo(text: str) -> str:
    return text


@server.tool(task="required")
async def forever() -> str:
    """Runs until cancelled."""
    await trio.sleep_forever()
    return "never"


@server.tool(task="required")
async def ask_once(ctx: trio_mcp.Context) -> str:
    """Asks a name, then greets it (from the same coroutine: the pid shows it)."""
    answer = await ctx.elicit("Name?", NAME_SCHEMA)
    return f"Hi {answer['content']['name']} from {os.getpid()}"


app = server.asgi_app(
    trio_mcp.Settings(redis_worker_timeout=float(os.environ.get("TEST_WORKER_TIMEOUT", "10")))
)

#: tests/browser_client.html.
PAGE = Path(__file__).with_name("browser_client.html").read_text()


@app.route("/")
async def page() -> str:
    return PAGE
