"""A server whose tool answers with as many bytes as asked for: replies that outgrow
the sockets' buffers, for tests of clients that stop reading.

``python -m trio_mcp bigreplies:app`` serves it with a stall timeout of ``STALL``;
``bigreplies:proxied`` is the same app behind a proxy-headers middleware."""

from __future__ import annotations

from typing import Any

import trio_mcp

STALL = 1.0

server = trio_mcp.Server("big-replies")


@server.tool()
async def big(size: int) -> str:
    """A reply of ``size`` bytes.

    Args:
        size: how many bytes of text to return.
    """
    return "x" * size


app = server.asgi_app(trio_mcp.Settings(stalled_client_timeout=STALL))


def behind_a_proxy(inner: Any) -> Any:
    """``inner`` as a proxy-headers middleware serves it: the scope's client is the one
    a proxy named, not the socket's peer."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("203.0.113.7", 4711)}
        await inner(scope, receive, send)

    return app


proxied = behind_a_proxy(app)
