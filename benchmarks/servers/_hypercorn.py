"""Serving an ASGI app with hypercorn's trio worker, configured alike for every app.

This is what ``hypercorn -k trio`` runs, minus the command line: the server stays one
process (hypercorn's CLI may fork workers), so its RSS and CPU time are one /proc entry.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from _common import BACKLOG, install_gc_hooks
from hypercorn.config import Config
from hypercorn.trio import serve


def serve_app(app: Any, port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    install_gc_hooks()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = BACKLOG
    config.accesslog = None
    config.loglevel = "WARNING"
    trio.run(serve, app, config)
