"""Serve a server over this process's stdin and stdout, for a host that started it.

How it ends, each time with exit status 0:

* stdin closes (how a host ends the session, per the spec): the session ends, its
  running calls are cancelled, what was queued for stdout still goes out.
* SIGTERM or SIGINT: the session drains as an HTTP server does (new requests refused,
  running calls may finish within ``shutdown_timeout``), then ends as above; a second
  signal stops at once.
* the host closes its end of stdout: nobody is left to answer.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import trio

from ._config import Settings
from ._server import Server
from ._stdfds import claimed_standard_streams
from ._stdio import StdioTransport
from ._supervisor import SessionSupervisor

log = logging.getLogger("trio_mcp")


def run_stdio(
    server: Server, *, settings: Settings | None = None, shutdown_timeout: float = 10.0
) -> None:
    """Serve ``server`` over stdin and stdout until stdin closes or a signal stops it.

    Logs go to stderr (a logging configuration made beforehand is kept). While it runs,
    fd 1 points at stderr and fd 0 at the null device (see :mod:`._stdfds`), so that a
    stray ``print`` cannot corrupt the host's stream. Call it from the main thread, as
    it handles SIGTERM and SIGINT. POSIX only. Raises RuntimeError (``StdoutClosed``)
    when the process has no stdout to serve on.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
        )
    with claimed_standard_streams() as (stdin_fd, stdout_fd):
        try:
            trio.run(
                serve_stdio, server, settings or Settings(), stdin_fd, stdout_fd, shutdown_timeout
            )
        except KeyboardInterrupt:
            pass  # Ctrl+C before the signal handling started: nothing had begun


async def serve_stdio(
    server: Server, settings: Settings, stdin_fd: int, stdout_fd: int, shutdown_timeout: float
) -> None:
    """The async body of :func:`run_stdio`, on descriptors it duplicates."""
    supervisor = SessionSupervisor(server, settings)
    transport = StdioTransport(supervisor, settings)
    stdin = trio.lowlevel.FdStream(os.dup(stdin_fd))
    stdout = trio.lowlevel.FdStream(os.dup(stdout_fd))
    async with stdin, stdout, trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await nursery.start(_watch_signals, transport, shutdown_timeout, nursery.cancel_scope)
        await transport.serve(stdin, stdout)
        nursery.cancel_scope.cancel()


async def _watch_signals(
    transport: StdioTransport,
    shutdown_timeout: float,
    everything: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First SIGTERM/SIGINT: drain and stop; a second: stop now."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        stopping = False
        async with trio.open_nursery() as nursery:
            async for signum in signals:
                name = signal.Signals(signum).name
                if stopping:
                    log.info("%s again: stopping now", name)
                    everything.cancel()
                    return
                stopping = True
                log.info("%s: shutting down within %g s", name, shutdown_timeout)
                nursery.start_soon(transport.shutdown, shutdown_timeout)
