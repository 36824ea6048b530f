"""``python -m trio_mcp [--host H] [--port P] [module:server]``: serve a server in-process.

Without a target it serves the built-in demo on 127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._app import App
from ._config import Settings
from ._run import DEFAULT_BACKLOG, run
from ._server import Server


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
        default=10.0,
        help="seconds to finish running calls and end streams on SIGTERM/SIGINT (default 10)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        help=f"connections the kernel queues before they are accepted (default "
        f"{DEFAULT_BACKLOG}; Linux caps it at net.core.somaxconn)",
    )
    args = parser.parse_args(argv)
    settings = Settings(heartbeat_interval=args.heartbeat)
    if args.target:
        target = load_target(args.target)
        app = target.asgi_app(settings) if isinstance(target, Server) else target
    else:
        from ._demo import demo

        app = demo.asgi_app(settings)
    run(
        app,
        host=args.host,
        port=args.port,
        shutdown_timeout=args.shutdown_timeout,
        backlog=args.backlog,
    )


if __name__ == "__main__":
    main()
