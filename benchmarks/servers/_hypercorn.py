"""Serving an ASGI app with hypercorn, configured alike for every app.

This is what ``hypercorn -k trio`` (or, with ``worker="asyncio"``, plain ``hypercorn``)
runs, minus the command line: the server stays one process (hypercorn's CLI may fork
workers), so its RSS and CPU time are one /proc entry.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import trio
from _common import BACKLOG, install_gc_hooks
from hypercorn.config import Config


def serve_app(
    app: Any,
    port: int,
    worker: Literal["trio", "asyncio"] = "trio",
    keep_alive: float | None = None,
) -> None:
    """``keep_alive``: hypercorn's ``keep_alive_timeout`` (5 s by default), which is also
    how long it keeps a connection its client has closed (see trio_mcp_server.py)."""
    logging.basicConfig(level=logging.WARNING)
    install_gc_hooks()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = BACKLOG
    config.accesslog = None
    config.loglevel = "WARNING"
    if keep_alive is not None:
        config.keep_alive_timeout = keep_alive
    if worker == "trio":
        from hypercorn.trio import serve as serve_on_trio

        trio.run(serve_on_trio, app, config)
    else:
        from hypercorn.asyncio import serve as serve_on_asyncio

        # As hypercorn's asyncio worker runs it: SIGINT and SIGTERM end it gracefully.
        asyncio.run(serve_on_asyncio(app, config))
