"""trio-mcp under test: a server with one ``echo`` tool, served by the host named.

``--server`` picks the ASGI server: ``hypercorn-trio`` (hypercorn's trio worker, where
trio-mcp runs natively), ``hypercorn-asyncio`` (hypercorn's asyncio worker) or
``uvicorn`` (uvloop and httptools); under the asyncio ones trio runs as a guest on the
server's loop. The app is the same object in every case, and it serves every transport
the benchmark measures (``/sse``, Streamable HTTP and MCP 2026-07-28's stateless wire,
both on ``/mcp``), so ``--transport`` changes nothing here.

``max_sessions`` is raised from its default (10,000) because the capacity target is
about what one process can hold, not about the default's guard.

The attack section (``benchmarks/attacks.py``) passes the rest: ``--big-replies`` adds a
``big`` tool that answers with as many bytes as asked for (what a client that stops
reading asks for), and ``--stalled-client-timeout``, ``--body-timeout`` and
``--resume-grace`` shorten those bounds from their defaults (30 s each) so that they act
within a measured window of seconds. ``--keep-alive-timeout`` does the same for the
host's own bound on idle connections (5 s in hypercorn and uvicorn alike): hypercorn
also keeps a connection its client has closed until that timer fires, so the section
would otherwise see every host hold connections for 5 s after an attack. Without these
flags the server is the one every other section measures.

``--redis-url`` sets ``Settings.redis_url`` (issue 14's Redis section: the harness starts
the redis-server and passes its URL to every worker of a Redis-backed system). Without
it the app keeps everything in memory: the harness takes ``TRIO_MCP_REDIS_URL``, which
``Settings`` would otherwise read, out of every server's environment.
"""

from __future__ import annotations

from typing import Any

from _common import make_parser

import trio_mcp

SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")

#: Command-line flags that set a Settings field of the same name when given.
BOUNDS = ("stalled_client_timeout", "body_timeout", "resume_grace")


def main() -> None:
    parser = make_parser(__doc__ or "")
    parser.add_argument("--server", choices=SERVERS, default="hypercorn-trio")
    parser.add_argument("--big-replies", action="store_true", help="add the big(size) tool")
    for bound in BOUNDS:
        parser.add_argument("--" + bound.replace("_", "-"), type=float, help="seconds")
    parser.add_argument("--keep-alive-timeout", type=float, help="the host's, seconds")
    parser.add_argument("--redis-url", help="share sessions and tasks on this Redis")
    args = parser.parse_args()
    server = trio_mcp.Server("benchmark", "1.0.0")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged.

        Args:
            text: what to echo back.
        """
        return text

    if args.big_replies:

        @server.tool()
        async def big(size: int) -> str:
            """A reply of ``size`` bytes of text.

            Args:
                size: how many bytes to return.
            """
            return "x" * size

    bounds: dict[str, Any] = {
        bound: getattr(args, bound) for bound in BOUNDS if getattr(args, bound) is not None
    }
    settings = trio_mcp.Settings(
        heartbeat_interval=args.heartbeat,
        max_sessions=args.max_sessions,
        redis_url=args.redis_url,
        **bounds,
    )
    app = server.asgi_app(settings)
    if args.server == "uvicorn":
        from _uvicorn import serve_app

        serve_app(app, args.port, args.keep_alive_timeout)
    else:
        from _hypercorn import serve_app as serve_with_hypercorn

        worker = "trio" if args.server == "hypercorn-trio" else "asyncio"
        serve_with_hypercorn(app, args.port, worker, args.keep_alive_timeout)


if __name__ == "__main__":
    main()
