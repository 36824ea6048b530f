"""Hearing of SIGTERM and Ctrl+C under an asyncio server, to shut down gracefully.

An asyncio ASGI server tells the app it is stopping only with the lifespan's
``shutdown``, and only after every connection has ended; an SSE stream never ends by
itself, so uvicorn would wait forever and hypercorn would cut every stream at its
graceful timeout. The app has to hear the signal itself: this adds to the server's own
handlers (which keep doing what they did) a call that starts the app's drain.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import trio

log = logging.getLogger("trio_mcp")

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def drain_on_signals(drain: Callable[[], Awaitable[None]]) -> None:
    """Run until cancelled; on the first SIGTERM or SIGINT, await ``drain()``.

    Only a signal the server already handles in Python is chained (a handler it set
    with ``signal.signal`` or ``loop.add_signal_handler``): one left at the default
    still ends the process as the user expects. The previous handlers are put back
    when this ends, unless something else has replaced ours meanwhile.
    """
    token = trio.lowlevel.current_trio_token()
    signalled = trio.Event()
    received: list[int] = []
    installed: dict[signal.Signals, tuple[Callable[[int, FrameType | None], Any], Any]] = {}

    def chain(previous: Callable[[int, FrameType | None], Any]) -> Callable[..., None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            try:
                if not received:
                    received.append(signum)
                    # Thread- and signal-safe: the rest happens in trio.
                    token.run_sync_soon(signalled.set)
            except trio.RunFinishedError:
                pass  # outlived the run (another handler chained on top of ours)
            finally:
                previous(signum, frame)

        return handler

    try:
        for signum in SHUTDOWN_SIGNALS:
            previous = signal.getsignal(signum)
            # Python's own SIGINT handler (KeyboardInterrupt) is a default, not a server's.
            if callable(previous) and previous is not signal.default_int_handler:
                ours = chain(previous)
                try:
                    signal.signal(signum, ours)
                except ValueError:  # not the main thread: signals are not ours to hear
                    break
                installed[signum] = (ours, previous)
        await signalled.wait()
        log.info("%s: shutting down gracefully", signal.Signals(received[0]).name)
        await drain()
        await trio.sleep_forever()
    finally:
        for signum, (ours, previous) in installed.items():
            if signal.getsignal(signum) is ours:
                signal.signal(signum, previous)
