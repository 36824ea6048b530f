"""Serve an app in this process with hypercorn's trio server: no worker class to pick."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._app import App
from ._server import Server


def run(target: Server | App, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a :class:`Server` (or an :class:`App`) until Ctrl+C.

    Binds to loopback by default: exposing a server beyond this machine is a decision to
    make explicitly (``host="0.0.0.0"``).
    """
    app = target.asgi_app() if isinstance(target, Server) else target
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    try:
        trio.run(partial(serve, app, config))
    except KeyboardInterrupt:
        pass
