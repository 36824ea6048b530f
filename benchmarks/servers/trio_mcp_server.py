"""trio-mcp under test: a server with one ``echo`` tool, served by hypercorn's trio worker.

``max_sessions`` is raised from its default (10,000) because the capacity target is
about what one process can hold, not about the default's guard.
"""

from __future__ import annotations

from _common import parse_args
from _hypercorn import serve_app

import trio_mcp


def main() -> None:
    args = parse_args(__doc__ or "")
    server = trio_mcp.Server("benchmark", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged.

        Args:
            text: what to echo back.
        """
        return text

    settings = trio_mcp.Settings(heartbeat_interval=args.heartbeat, max_sessions=args.max_sessions)
    serve_app(server.asgi_app(settings), args.port)


if __name__ == "__main__":
    main()
