"""Serve an app in this process with hypercorn's trio server: no worker class to pick.

Shutdown is graceful: the first SIGTERM or SIGINT stops the listeners and has the app
finish what runs (:meth:`App.shutdown`) within ``shutdown_timeout``; a second one
stops at once.
"""

from __future__ import annotations

import logging
import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._app import App
from ._server import Server

log = logging.getLogger("trio_mcp")


def run(
    target: Server | App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_timeout: float = 10.0,
) -> None:
    """Serve a :class:`Server` (or an :class:`App`) until SIGTERM or Ctrl+C.

    Binds to loopback by default: exposing a server beyond this machine is a decision to
    make explicitly (``host="0.0.0.0"``).
    """
    app = target.asgi_app() if isinstance(target, Server) else target
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # Hypercorn cancels the connections still open this long after its trigger fired;
    # by then App.shutdown has ended every stream.
    config.graceful_timeout = shutdown_timeout
    try:
        trio.run(serve_until_signalled, app, config, shutdown_timeout)
    except KeyboardInterrupt:
        pass


async def serve_until_signalled(app: App, config: Config, shutdown_timeout: float) -> None:
    """Serve ``app`` until the first SIGTERM/SIGINT, then shut down gracefully."""
    async with trio.open_nursery() as nursery:
        signalled = trio.Event()

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if signalled.is_set():
                        raise KeyboardInterrupt  # a second signal: stop now
                    log.info(
                        "%s: shutting down within %g s",
                        signal.Signals(signum).name,
                        shutdown_timeout,
                    )
                    signalled.set()

        async def shutdown_trigger() -> None:
            await signalled.wait()
            # The app drains while hypercorn closes its listeners and waits for the
            # connections, which end as the app ends their streams.
            nursery.start_soon(app.shutdown, shutdown_timeout)

        nursery.start_soon(watch_signals)
        await serve(app, config, shutdown_trigger=shutdown_trigger)
        nursery.cancel_scope.cancel()
