"""Serve an app in this process: on uvicorn when the ``uvicorn`` extra is installed
(trio as a guest on uvloop, the fastest host measured), else on hypercorn's trio server.

Shutdown is graceful: the first SIGTERM or SIGINT stops the listeners and has the app
finish what runs (:meth:`App.shutdown`) within its ``Settings.shutdown_timeout``; a
second one stops at once. That setting is the one budget: under uvicorn the app drains
by it on its own (it hears the signal itself, :mod:`._signals`), so the host's own
deadline is derived from it too, never set apart from it.

The listening socket is made here rather than by the server, and handed to it, so that
every connection inherits ``TCP_USER_TIMEOUT`` (see :func:`listening_socket`).
"""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._app import App
from ._config import Settings
from ._run_uvicorn import available as uvicorn_available
from ._run_uvicorn import serve_uvicorn
from ._server import Server

log = logging.getLogger("trio_mcp")

#: Connections the kernel queues for accepting. Hypercorn's default (100) overflows in a
#: burst: 2,000 simultaneous connects saw 8,438 dropped handshakes, 1,368 connections
#: retransmitting and 55 s to serve them all; with 4,096, none and 4.5 s.
DEFAULT_BACKLOG = 4096

SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

#: Unsent bytes the kernel holds for a connection (trio's own choice for its sockets).
NOTSENT_LOWAT = 16 * 1024

#: What ``server=`` takes: ``auto`` is uvicorn if installed, else hypercorn.
SERVERS = ("auto", "uvicorn", "hypercorn")


def run(
    target: Server | App,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_timeout: float | None = None,
    backlog: int = DEFAULT_BACKLOG,
    server: str = "auto",
) -> None:
    """Serve a :class:`Server` (or an :class:`App`) until SIGTERM or Ctrl+C.

    ``server`` is ``"uvicorn"`` (uvicorn on uvloop with httptools, trio as a guest on its
    loop: ``pip install 'trio-mcp[uvicorn]'``), ``"hypercorn"`` (hypercorn's trio
    server), or ``"auto"``: uvicorn when installed, else hypercorn.

    Binds to loopback by default: exposing a server beyond this machine is a decision to
    make explicitly (``host="0.0.0.0"``). ``backlog`` is how many connections the kernel
    queues before the server accepts them, capped by the kernel (on Linux at
    ``net.core.somaxconn``, 4096 by default since Linux 5.4).

    A graceful shutdown lets running calls finish within the app's
    ``Settings.shutdown_timeout`` (10 s by default), under either server. For a
    :class:`Server`, ``shutdown_timeout`` is that setting of the app built for it
    (None: the default). An :class:`App` already holds its settings, and the app drains
    by them on its own under uvicorn, so ``shutdown_timeout`` may only repeat them:
    None (or the same value) serves it, another value raises ValueError; make the app
    with ``Settings(shutdown_timeout=...)`` instead.
    """
    app = app_of(target, shutdown_timeout)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if server not in SERVERS:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, not {server!r}")
    if server == "auto":
        server = "uvicorn" if uvicorn_available() else "hypercorn"
    elif server == "uvicorn" and not uvicorn_available():
        raise SystemExit(
            "--server uvicorn needs uvicorn, uvloop and httptools: pip install 'trio-mcp[uvicorn]'"
        )
    # The one budget, the app's: it drains by it on its own under uvicorn.
    budget = app.settings.shutdown_timeout
    listener = listening_socket(host, port, app.settings.stalled_client_timeout)
    _warn_if_capped(backlog)
    log.info("trio-mcp: serving on %s, http://%s:%d", server, host, port)
    if server == "uvicorn":
        try:
            serve_uvicorn(app, listener, backlog=backlog, shutdown_timeout=budget)
        except KeyboardInterrupt:
            pass
        return
    config = Config()
    # Hypercorn takes the descriptor over (and listens on it with the backlog below).
    config.bind = [f"fd://{listener.detach()}"]
    config.accesslog = None
    config.backlog = backlog
    # Hypercorn cancels the connections still open this long after its trigger fired;
    # by then App.shutdown has ended every stream.
    config.graceful_timeout = budget
    try:
        trio.run(serve_until_signalled, app, config, budget)
    except KeyboardInterrupt:
        pass


def app_of(target: Server | App, shutdown_timeout: float | None) -> App:
    """The app to serve, whose ``Settings.shutdown_timeout`` is ``shutdown_timeout``
    when one is given."""
    if isinstance(target, Server):
        if shutdown_timeout is None:
            return target.asgi_app()
        return target.asgi_app(Settings(shutdown_timeout=shutdown_timeout))
    if shutdown_timeout is not None and shutdown_timeout != target.settings.shutdown_timeout:
        raise ValueError(
            f"run(app, shutdown_timeout={shutdown_timeout:g}) differs from the app's "
            f"Settings.shutdown_timeout ({target.settings.shutdown_timeout:g} s), which "
            f"governs its drain: make the app with Settings(shutdown_timeout="
            f"{shutdown_timeout:g}), or leave shutdown_timeout out"
        )
    return target


def listening_socket(host: str, port: int, stalled_client_timeout: float) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (not yet listening), as hypercorn makes
    them, whose connections give up on a peer that takes nothing for
    ``stalled_client_timeout`` seconds.

    That is ``TCP_USER_TIMEOUT`` (Linux; accepted connections inherit it from the
    listener): the kernel aborts a connection whose sent data has gone unacknowledged,
    or whose peer's receive window has stayed shut, that long. The app's stall timer
    catches a stream whose send blocks that long (:mod:`._streaming`) and resets its
    connection (:mod:`._cutoff`); the kernel needs no help, and also catches a peer that
    vanished without a reset while only heartbeats were going out, which never fill the
    socket's buffer. Measured with a 1 s timeout and the app's reset turned off: a
    client that stopped reading was dropped 1.37 s after its last request (with the
    reset, 1.02-1.05 s)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        user_timeout = getattr(socket, "TCP_USER_TIMEOUT", None)
        if user_timeout is not None:
            sock.setsockopt(
                socket.IPPROTO_TCP, user_timeout, max(1, round(stalled_client_timeout * 1000))
            )
        # What trio sets on its own sockets: the kernel takes no more than this unsent,
        # so a send to a client that stopped reading blocks (and the stall timer sees
        # it) after a few dozen KB, not after the few MB a loopback or fast link's send
        # buffer grows to. Under uvicorn, a reply of 1 MB to such a client otherwise
        # went into that buffer whole, and its send never blocked.
        notsent_lowat = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        if notsent_lowat is not None:
            sock.setsockopt(socket.IPPROTO_TCP, notsent_lowat, NOTSENT_LOWAT)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _warn_if_capped(backlog: int) -> None:
    """Say so when the kernel will queue fewer connections than asked for."""
    try:
        cap = int(SOMAXCONN.read_text())
    except (OSError, ValueError):
        return  # not Linux, or not readable: the kernel caps it silently
    if cap < backlog:
        log.warning(
            "the kernel queues at most %d connections (net.core.somaxconn), fewer than the "
            "backlog of %d: raise it (sysctl -w net.core.somaxconn=%d) to absorb bursts",
            cap,
            backlog,
            backlog,
        )


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
