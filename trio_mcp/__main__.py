"""``python -m trio_mcp [--host H] [--port P] [module:server]``: serve a server in-process.

Without a target it serves the built-in demo on 127.0.0.1:8000. With ``--stdio`` it
serves one session over stdin and stdout instead, for a host that starts it as a child
process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

import attrs

from ._app import App
from ._config import Settings
from ._run import DEFAULT_BACKLOG, SERVERS, app_of, run
from ._run_stdio import run_stdio
from ._server import Server
from ._stdfds import StdoutClosed


def load_target(spec: str) -> Server | App:
    """Import ``module:attribute`` (attribute defaults to ``server``)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise SystemExit(f"cannot load {spec!r}: expected module:server")
    sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute or "server", None)
    if not isinstance(target, Server | App):
        raise SystemExit(f"{spec!r} is {type(target).__name__}, not a trio_mcp.Server or App")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trio_mcp", description=__doc__)
    parser.add_argument("target", nargs="?", help="module:server to serve (default: the demo)")
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="serve over stdin and stdout (logs on stderr) instead of HTTP",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=Settings().heartbeat_interval,
        help="seconds of silence before an SSE heartbeat (default 15)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=None,
        help="seconds to finish running calls and end streams on SIGTERM/SIGINT (default: "
        "an App target's Settings.shutdown_timeout, else 10)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        help=f"connections the kernel queues before they are accepted (default "
        f"{DEFAULT_BACKLOG}; Linux caps it at net.core.somaxconn)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="auto",
        help="the ASGI server: uvicorn (uvloop, httptools; trio as a guest), hypercorn "
        "(its trio worker), or auto: uvicorn when trio-mcp[uvicorn] is installed",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="share tasks and notifications with every worker on this Redis "
        "(default: $TRIO_MCP_REDIS_URL; needs trio-mcp[redis])",
    )
    args = parser.parse_args(argv)
    if args.stdio:
        serve_stdio(args.target, args.shutdown_timeout)
        return
    settings = Settings(heartbeat_interval=args.heartbeat)
    if args.shutdown_timeout is not None:
        settings = attrs.evolve(settings, shutdown_timeout=args.shutdown_timeout)
    if args.redis:
        settings = attrs.evolve(settings, redis_url=args.redis)
    if args.target:
        target = load_target(args.target)
        if isinstance(target, Server):
            app = target.asgi_app(settings)
        else:
            # An App's own settings stand: a --shutdown-timeout they do not hold is
            # refused rather than ignored.
            try:
                app = app_of(target, args.shutdown_timeout)
            except ValueError as exc:
                raise SystemExit(f"python -m trio_mcp: {exc}") from None
    else:
        from ._demo import demo

        app = demo.asgi_app(settings)
    # The app's Settings.shutdown_timeout is the one budget, under either server.
    run(app, host=args.host, port=args.port, backlog=args.backlog, server=args.server)


def serve_stdio(spec: str | None, shutdown_timeout: float | None) -> None:
    """``--stdio``: serve the target (an App's server, with its settings) or the demo;
    ``shutdown_timeout`` None is an App's ``Settings.shutdown_timeout`` (else 10 s)."""
    if spec:
        # Whatever the target's module prints when imported must not reach the host.
        with contextlib.redirect_stdout(sys.stderr):
            target = load_target(spec)
    else:
        from ._demo import demo

        target = demo
    server, settings = (
        (target.mcp_server, target.settings) if isinstance(target, App) else (target, None)
    )
    if shutdown_timeout is None:
        shutdown_timeout = (settings or Settings()).shutdown_timeout
    try:
        run_stdio(server, settings=settings, shutdown_timeout=shutdown_timeout)
    except StdoutClosed as exc:
        raise SystemExit(f"python -m trio_mcp --stdio: {exc}") from None


if __name__ == "__main__":
    main()
