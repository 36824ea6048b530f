"""Cutting off a stalled client's connection from inside the app, where the host cannot.

A stream's writer whose client takes nothing for ``stalled_client_timeout`` is cancelled
(:mod:`._streaming`). Under hypercorn's trio worker the cancellation never reaches the
send: hypercorn writes each chunk in a shielded cancel scope under the connection's send
lock (``protocol_send`` in ``hypercorn/trio/tcp_server.py``), so a send into a full
socket waits for as long as the client keeps its TCP window shut, which a client that
reads nothing does forever (its kernel answers every window probe). Measured: such a
connection was still established 100 s later. Nothing in ASGI closes a connection whose
send is stuck, so the app asks the operating system:

* it finds the connection's socket among the process's open descriptors (``/dev/fd``)
  by the two addresses the host put in the request's scope (``server`` and ``client``),
  checked on the socket itself through a duplicate of the descriptor, so that a
  descriptor closed and reused meanwhile is never mistaken for it;
* it sets ``SO_LINGER`` to zero and shuts the socket down both ways.

The host's blocked send then fails, its read sees the end of the stream, and it tears
the connection down as it does for any client that resets; its close sends a reset and
frees the socket's buffers at once. The app never closes a descriptor it does not own,
and touches only the connection of a request it serves. Any host in this process sees
the same thing (a connection reset by its peer), hypercorn's trio worker or an asyncio
server running the app as a trio guest.

Cost: nothing until a client stalls; then one pass over the process's descriptors,
~13 µs each (130 ms with 10,000 connections, measured on the project's machine), in a
worker thread so that the event loop goes on. Cut-offs asked for meanwhile share the
next pass, and one whose send has ended by then (the host or the kernel got there
first) is skipped.

Where it cannot work: no ``/dev/fd`` (Windows), a connection that is not TCP (a Unix
socket), or a scope whose addresses are not the socket's (a proxy-headers middleware
rewrote ``client``). It logs a warning and the connection stays until the host drops
it; the writer has left its stream already, so the session treats its client as gone.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import trio

log = logging.getLogger("trio_mcp")

#: (host, port) as ASGI scopes and ``getsockname`` give them.
Address = tuple[str, int]
#: The server's address and the client's: one TCP connection in this process.
Connection = tuple[Address, Address]

_INET = (socket.AF_INET, socket.AF_INET6)
#: Linger on, for 0 s: closing sends a reset and drops unsent data.
_ABORT_ON_CLOSE = struct.pack("ii", 1, 0)


def connection_of(scope: dict[str, Any]) -> Connection | None:
    """The TCP connection a request came on, by its scope; None when the scope does not
    say (no ``server`` or ``client``, or a Unix socket's path with no port)."""
    server, client = scope.get("server"), scope.get("client")
    if not server or not client or server[1] is None or client[1] is None:
        return None
    return (str(server[0]), int(server[1])), (str(client[0]), int(client[1]))


def cut_off(connection: Connection, still_stuck: Callable[[], bool]) -> None:
    """Reset ``connection`` soon, unless ``still_stuck()`` is false by then.

    Synchronous and never raises: the stall timer calls it from a system task. The work
    happens in this trio run's cut-off task (started on first use), which ends with the
    run; a cancellation then waits for the pass under way, which takes milliseconds."""
    try:
        cutter = _CUTTER.get()
    except LookupError:
        cutter = _Cutter()
        _CUTTER.set(cutter)
        trio.lowlevel.spawn_system_task(cutter.run, name="trio-mcp cut-offs")
    cutter.ask(connection, still_stuck)


class _Cutter:
    def __init__(self) -> None:
        self._asked: dict[Connection, Callable[[], bool]] = {}
        self._wakeup = trio.lowlevel.ParkingLot()

    def ask(self, connection: Connection, still_stuck: Callable[[], bool]) -> None:
        self._asked[connection] = still_stuck
        self._wakeup.unpark_all()

    async def run(self) -> None:
        while True:
            if not self._asked:
                await self._wakeup.park()
                continue
            asked, self._asked = self._asked, {}
            targets = {connection for connection, stuck in asked.items() if stuck()}
            if not targets:
                continue
            done = await trio.to_thread.run_sync(_reset, targets)
            for _, client in targets - done:
                log.warning(
                    "could not find the connection of %s:%d, which stopped reading, to "
                    "cut it off; it stays open until the server drops it",
                    *client,
                )
            for _, client in done:
                log.info("cut off %s:%d, which stopped reading", *client)


_CUTTER: trio.lowlevel.RunVar[_Cutter] = trio.lowlevel.RunVar("trio_mcp_cutter")


def _reset(targets: set[Connection]) -> set[Connection]:
    """Abort each connection of ``targets`` found among this process's descriptors;
    returns those found. Runs in a worker thread."""
    done: set[Connection] = set()
    try:
        names = os.listdir("/dev/fd")
    except OSError:
        return done
    for name in names:
        if len(done) == len(targets):
            break
        try:
            fd = os.dup(int(name))
        except (OSError, ValueError):
            continue  # closed since the listing (the listing's own descriptor, for one)
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)  # not a socket
            continue
        with sock:  # closes the duplicate only: the socket lives on in its owner
            if sock.family not in _INET or sock.type != socket.SOCK_STREAM:
                continue
            try:
                connection = (sock.getsockname()[:2], sock.getpeername()[:2])
                if connection in targets:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT_ON_CLOSE)
                    sock.shutdown(socket.SHUT_RDWR)
                    done.add(connection)
            except OSError:
                continue  # not connected (a listener), or reset meanwhile
    return done
