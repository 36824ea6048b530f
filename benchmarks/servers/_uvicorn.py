"""Serving an ASGI app with uvicorn on uvloop with httptools, its fastest configuration.

What ``uvicorn --loop uvloop --http httptools`` runs, in one process, with the listen
backlog and logging of every other server under test.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from _common import BACKLOG, install_gc_hooks


def serve_app(app: Any, port: int, keep_alive: float | None = None) -> None:
    """``keep_alive``: uvicorn's ``timeout_keep_alive`` (5 s by default)."""
    logging.basicConfig(level=logging.WARNING)
    install_gc_hooks()
    options: dict[str, Any] = {} if keep_alive is None else {"timeout_keep_alive": keep_alive}
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        backlog=BACKLOG,
        log_level="warning",
        access_log=False,
        **options,
    )
