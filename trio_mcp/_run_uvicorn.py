"""Serve an app in this process with uvicorn: trio runs as a guest on its loop.

The fastest host measured for trio-mcp (benchmarks/RESULTS.md) is uvicorn on uvloop with
httptools parsing HTTP/1.1; ``pip install 'trio-mcp[uvicorn]'`` brings all three, and
``python -m trio_mcp`` then serves on it. Shutdown is graceful as under hypercorn: the
first SIGTERM or SIGINT stops the listener and has the app drain within
``shutdown_timeout`` (the app hears the signal itself, :mod:`._signals`); a second
one stops at once.
"""

from __future__ import annotations

import importlib.util
import math
import signal
import socket
from typing import Any


def available() -> bool:
    """Whether uvicorn, uvloop and httptools are all installed (the ``uvicorn`` extra)."""
    return all(importlib.util.find_spec(name) for name in ("uvicorn", "uvloop", "httptools"))


def serve_uvicorn(
    app: Any, listener: socket.socket, *, backlog: int, shutdown_timeout: float
) -> None:
    """Serve ``app`` on ``listener`` (bound, not yet listening) until signalled."""
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        backlog=backlog,
        access_log=False,
        # The scope's client must stay the socket's peer: that is how a stalled client's
        # connection is found and cut off (trio_mcp._cutoff).
        proxy_headers=False,
        # Logging is the caller's (trio_mcp.run configures it once, for every host).
        log_config=None,
        # The app ends every stream within shutdown_timeout; this only catches a
        # connection that outlives that anyway.
        timeout_graceful_shutdown=math.ceil(shutdown_timeout) + 1,
    )
    # uvicorn re-raises the signal that stopped it once it is done; exit quietly with 0
    # on SIGTERM, as under hypercorn, rather than die of it.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(signum: int, frame: object) -> None:
    pass
