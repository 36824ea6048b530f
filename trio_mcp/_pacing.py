"""Pacing: work that arrives all at once, done a group at a time.

When thousands of clients leave together (a proxy restarts, a load generator dies, a
network path drops), the kernel reports every connection's end in one wait, and trio
runs everything a wait made runnable in one pass of its run loop. A departure costs its
stream's writer a few hundred microseconds more (cancelling it, unwinding its response,
the session looking again at its lifetime, hypercorn closing the socket), and all of
that, for every departure, fell in the same few passes: with 10,000 idle streams whose
clients exited at once, a pass took 1.5 s and a staying client's ping 3.5 s. Nothing else
runs during a pass, so no other session is served meanwhile.

A :class:`Pacer` takes such work as keys and acts on them :data:`GROUP` at a time, going
round the run loop :data:`ROUNDS_PER_GROUP` times between groups, so that the passes stay
short and everything else interleaves with them: a pass of paced departures takes 2 to 3
ms. Groups of 4 and 8 measured no better for a staying client's latency, and took up to
twice as long to work through 2,000 departures (16: 0.7 to 0.9 s).

What pacing cannot spread is the part before it: hypercorn reads each connection's end
and passes it on, 40 to 90 µs a connection of its own code, in the pass after the kernel
reported it, and the writer's watcher must run once to hear of it. So a mass departure
still costs a staying client up to 0.1 ms a departing one. Measured on a 2-core machine
shared with other work, a staying client pinging throughout (tests/test_departures.py,
and by hand with more), its longest ping: 300 leaving, 85 to 145 ms unpaced, 29 to 58
ms paced; 400 leaving, 103 to 261 ms unpaced, 31 to 108 ms paced; 1,000 leaving, 235 to
426 ms unpaced, 52 to 140 ms paced; 10,000 leaving, 3.5 s unpaced, 0.6 to 1.0 s paced
(the last departure was acted on 5.5 s after the clients left).

Like the heartbeat timers (:mod:`._heartbeat`), a pacer's task is a trio system task: it
serves every app in the run and ends with it. ``action`` must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import trio

K = TypeVar("K")  # a dict key: hashable

#: Keys acted on together, then :data:`ROUNDS_PER_GROUP` rounds of the run loop.
GROUP = 16
#: Rounds of the run loop between groups: a departure's work after its writer is
#: cancelled takes a few passes (the response unwinds, the session looks again at its
#: lifetime, hypercorn closes the socket); three let most of a group's finish first.
ROUNDS_PER_GROUP = 3


class Pacer(Generic[K]):
    """Calls ``action(key)`` for every key added, in order, ``group`` at a time.

    A key added twice is acted on once; a key discarded before its turn is not acted on.
    """

    def __init__(self, action: Callable[[K], None], *, group: int = GROUP) -> None:
        self._action = action
        self._group = group
        # Insertion-ordered: the first added is the first acted on.
        self._queue: dict[K, None] = {}
        self._idle = trio.lowlevel.ParkingLot()

    def add(self, key: K) -> None:
        self._queue[key] = None
        self._idle.unpark_all()

    def discard(self, key: K) -> None:
        self._queue.pop(key, None)

    def __len__(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                await self._idle.park()
                continue
            self._act_on_group()
            for _ in range(ROUNDS_PER_GROUP):
                await trio.lowlevel.checkpoint()

    def _act_on_group(self) -> None:
        # A call of its own, so that the last key acted on is not kept in run()'s frame
        # while it waits: a writer kept there kept its session, long after it ended.
        queue = self._queue
        for _ in range(min(self._group, len(queue))):
            key = next(iter(queue))
            del queue[key]
            self._action(key)


_PACERS: trio.lowlevel.RunVar[dict[Callable[[Any], None], Pacer[Any]]] = trio.lowlevel.RunVar(
    "trio_mcp_pacers"
)


def pacer(action: Callable[[K], None]) -> Pacer[K]:
    """This trio run's pacer for ``action``, its task started on first use."""
    try:
        pacers = _PACERS.get()
    except LookupError:
        pacers = {}
        _PACERS.set(pacers)
    found: Pacer[Any] | None = pacers.get(action)
    if found is None:
        found = pacers[action] = Pacer(action)
        trio.lowlevel.spawn_system_task(found.run, name="trio-mcp pacer")
    return found


class Departing(Protocol):
    """A stream's writer whose client left, as the departures see it."""

    def cancel(self) -> None: ...


def _depart(writer: Departing) -> None:
    writer.cancel()


def departures() -> Pacer[Departing]:
    """This run's queue of writers whose clients left, cancelled a group at a time."""
    return pacer(_depart)
