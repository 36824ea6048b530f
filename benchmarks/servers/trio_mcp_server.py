"""trio-mcp under test: a server with one ``echo`` tool, served by the host named.

``--server`` picks the ASGI server: ``hypercorn-trio`` (hypercorn's trio worker, where
trio-mcp runs natively), ``hypercorn-asyncio`` (hypercorn's asyncio worker) or
``uvicorn`` (uvloop and httptools); under the asyncio ones trio runs as a guest on the
server's loop. The app is the same object in every case.

``max_sessions`` is raised from its default (10,000) because the capacity target is
about what one process can hold, not about the default's guard.
"""

from __future__ import annotations

from _common import make_parser

import trio_mcp

SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")


def main() -> None:
    parser = make_parser(__doc__ or "")
    parser.add_argument("--server", choices=SERVERS, default="hypercorn-trio")
    args = parser.parse_args()
    server = trio_mcp.Server("benchmark", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged.

        Args:
            text: what to echo back.
        """
        return text

    settings = trio_mcp.Settings(heartbeat_interval=args.heartbeat, max_sessions=args.max_sessions)
    app = server.asgi_app(settings)
    if args.server == "uvicorn":
        from _uvicorn import serve_app

        serve_app(app, args.port)
    else:
        from _hypercorn import serve_app as serve_with_hypercorn

        serve_with_hypercorn(
            app, args.port, "trio" if args.server == "hypercorn-trio" else "asyncio"
        )


if __name__ == "__main__":
    main()
