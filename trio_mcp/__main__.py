"""``python -m trio_mcp [--host H] [--port P] [module:server]``: serve a server in-process.

Runs hypercorn's trio server inside this process, so there is no worker class to choose.
Without an argument it serves the built-in demo on 127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._app import App
from ._config import Settings
from ._server import Server


def load_target(spec: str) -> App:
    """Import ``module:attribute``; a Server is wrapped in an App, an App is used as is."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise SystemExit(f"cannot load {spec!r}: expected module:server")
    sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute or "server", None)
    if isinstance(target, Server):
        return target.asgi_app()
    if isinstance(target, App):
        return target
    raise SystemExit(f"{spec!r} is {type(target).__name__}, not a trio_mcp.Server or App")


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.target:
        app = load_target(args.target)
    else:
        from ._demo import demo

        app = demo.asgi_app(Settings(heartbeat_interval=args.heartbeat))
    config = Config()
    host = f"[{args.host}]" if ":" in args.host else args.host
    config.bind = [f"{host}:{args.port}"]
    config.accesslog = None
    try:
        trio.run(partial(serve, app, config))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
