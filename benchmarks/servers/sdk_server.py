"""The official Python SDK under test: MCPServer with one ``echo`` tool, on uvicorn.

Run by the SDK's own virtualenv (``benchmarks/.venv-sdk``). The SSE app is the SDK's
HTTP+SSE transport; the Streamable HTTP app is stateful (session ids, a GET stream),
with its session cap lifted like trio-mcp's. The heartbeat is sse-starlette's ping,
whose interval the SDK does not expose; setting its class default is the one way in.

The stateless wire of MCP 2026-07-28 (``--transport mcp-stateless``) is served by the
same Streamable HTTP app, as a user gets it: the SDK's session manager sends every
request whose ``MCP-Protocol-Version`` is not one of the handshake revisions to its
single-exchange entry (``mcp.server._streamable_http_modern``), whatever its own
stateful or stateless setting, and ``MCPServer`` answers ``server/discover`` and
registers a ``subscriptions/listen`` handler by default. In its default (not JSON)
response mode that entry answers with a JSON body when the handler finishes within
15 s without a notification, an event stream otherwise: an echo is answered in JSON.
"""

from __future__ import annotations

import logging

import uvicorn
from _common import BACKLOG, install_gc_hooks, parse_args
from mcp.server.mcpserver import MCPServer
from sse_starlette import EventSourceResponse


def main() -> None:
    args = parse_args(__doc__ or "")
    EventSourceResponse.DEFAULT_PING_INTERVAL = args.heartbeat  # type: ignore[misc]
    server = MCPServer("benchmark", version="1.0.0", log_level="WARNING")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    if args.transport == "sse":
        app = server.sse_app()
    else:  # mcp and mcp-stateless: one app serves both wires on /mcp
        app = server.streamable_http_app(max_sessions=args.max_sessions)
    logging.basicConfig(level=logging.WARNING)
    install_gc_hooks()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        backlog=BACKLOG,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
