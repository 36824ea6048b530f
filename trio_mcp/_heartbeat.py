"""Heartbeat and stall timers: one timer for many writers, each a dict entry.

A stream's writer waits for events with no deadline of its own, and sends without a
cancel scope of its own. Instead, each writer is an entry in a :class:`DelayQueue`: one
task per trio run and delay sleeps until the entry touched longest ago is due, then acts
on every entry that is due by then. Entries are all given the same delay, so touching one
moves it to the end and the first entry is always the next one due: no heap, no
per-entry deadline in trio's timer queue.

Due entries are acted on a group at a time (:func:`group_size`), and the run loop goes
round a few times between groups, long enough for a woken writer to finish its send.
Writers woken together interleave at every checkpoint of their sends, and a send holds
about sixty objects (hypercorn's, h11's and trio's frames and events) across them. Woken
all at once, hundreds of sends are in flight whenever an allocation triggers a
collection of the young generations, so their objects are promoted, and promotions are
what trigger a full collection (seconds, with thousands of sessions). A full collection
stalls every stream, so more heartbeats fall due together, so the next batch is larger:
measured with 5,000 sessions beating every 2 s under CPython's default thresholds,
waking all due writers at once cost 37 % of a core (half of it in three full
collections every 10 s); groups of 8 or 16 cost 20 %, with none. So a group's objects
stay well under the young generation's threshold: 8 writers under the default (700
allocations), 64 under the threshold an app sets when it serves (10,000), where fewer,
larger groups spend fewer run-loop rounds (10,000 streams at 15 s: 5.45 % of a core with
groups of 8, 5.15 % with groups of 64, means of 7 and 11 runs).

Why not ``move_on_after`` in each writer: that is a cancel scope (with its CancelStatus
and two sets, ~650 bytes) held for as long as a stream is idle, ~7 µs to enter and leave
for every chunk sent, and a Cancelled exception raised and unwound at every heartbeat,
whose traceback cycles then wait for the garbage collector. With thousands of sessions a
full collection walks millions of objects and stalls every stream for a second or more.

The tasks are trio system tasks: they serve every app in the process, and any writer
with or without a supervisor, and end with the run. An app starts its two when it starts
serving (the supervisor does), so that they exist for its whole life; a writer outside
an app starts them on first use.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import trio

K = TypeVar("K")  # a dict key: hashable

#: After each group the run loop goes round this many times: a woken writer's send passes
#: about three checkpoints (its wakeup, hypercorn's send lock, the socket send).
_ROUNDS_PER_GROUP = 3

#: Objects a woken writer's send holds until it is done, about (see the module docstring).
_OBJECTS_PER_SEND = 60
_MIN_GROUP, _MAX_GROUP = 8, 64

#: How late a heartbeat may go out, so that those of many streams go out together:
#: with 10,000 streams beating every 15 s, each heartbeat alone cost 140 µs of CPU
#: (10 % of a core), mostly the run loop's rounds; grouped within 0.25 s, 75 µs.
#: (Sending them up to 0.25 s early instead measured 5.9 % of a core against 5.1 %.)
HEARTBEAT_SLACK = 0.25


def group_size() -> int:
    """How many due entries to act on at once: as many writers as keep their sends'
    objects under two fifths of the young generation's threshold, but at least 8 (which
    measured as well as 16 under the default threshold) and at most 64.

    Read at every pass, so it follows the collector's tuning (see :mod:`._collector`)."""
    fits = gc.get_threshold()[0] * 2 // (5 * _OBJECTS_PER_SEND)
    return max(_MIN_GROUP, min(_MAX_GROUP, fits))


class DelayQueue(Generic[K]):
    """Calls ``action(key)`` once ``delay`` seconds have passed since the key's last
    :meth:`touch`, unless it was forgotten first.

    With ``slack``, the queue waits ``slack`` seconds past the first key's due time and
    acts on every key due by then in the same pass, up to ``slack`` seconds late: keys
    touched at scattered times share the run loop's rounds instead of each paying for
    its own wakeup.
    """

    def __init__(self, delay: float, action: Callable[[K], None], *, slack: float = 0.0) -> None:
        self.delay = delay
        self.slack = slack
        self._action = action
        # Insertion order is the order of last touch: the first entry is due first.
        self._touched: dict[K, float] = {}

    def touch(self, key: K) -> None:
        # No wakeup: an empty queue's task looks again every ``delay`` seconds, and an
        # entry touched now is due no sooner than that. (A send touches the stall queue
        # and leaves it again at once; waking its task each time would double the
        # scheduling work of every chunk sent.)
        touched = self._touched
        touched.pop(key, None)
        touched[key] = trio.current_time()

    def forget(self, key: K) -> None:
        self._touched.pop(key, None)

    async def run(self) -> None:
        touched = self._touched
        while True:
            if not touched:
                await trio.sleep(self.delay)
                continue
            first = next(iter(touched.values()))
            now = trio.current_time()
            if first + self.delay + self.slack > now:
                await trio.sleep_until(first + self.delay + self.slack)
                continue  # the first key may have been touched or forgotten meanwhile
            # ``first`` is due: the sleep above says so, even where rounding would put
            # ``now - delay`` a hair before it (and a pass that acts on nothing would
            # spin without a checkpoint).
            await self._act_on_due(max(now - self.delay, first))

    async def _act_on_due(self, horizon: float) -> None:
        """Act on every key last touched by ``horizon``, a group at a time.

        A pass of its own, so that its locals (the due keys, the last one acted on) go
        when it ends: kept in :meth:`run`'s frame, they would hold the last writers it
        woke, and their sessions, until the next pass, a whole delay later."""
        touched = self._touched
        due = []
        for key, when in touched.items():
            if when > horizon:
                break
            due.append(key)
        group = group_size()
        for start in range(0, len(due), group):
            for key in due[start : start + group]:
                last_touch = touched.get(key)
                if last_touch is None or last_touch > horizon:
                    continue  # forgotten, or touched again, while the queue waited
                del touched[key]
                self._action(key)
            # Let this group's sends finish before more writers wake, whether in this
            # pass or the next (see the module docstring).
            for _ in range(_ROUNDS_PER_GROUP):
                await trio.lowlevel.checkpoint()


_QUEUES: trio.lowlevel.RunVar[dict[tuple[object, ...], DelayQueue[Any]]] = trio.lowlevel.RunVar(
    "trio_mcp_delay_queues"
)


def delay_queue(delay: float, action: Callable[[K], None], *, slack: float = 0.0) -> DelayQueue[K]:
    """This trio run's queue for ``delay``, ``action`` and ``slack``, started on first use.

    ``action`` must not raise: it runs in a system task, where an exception ends the run.
    """
    try:
        queues = _QUEUES.get()
    except LookupError:
        queues = {}
        _QUEUES.set(queues)
    key = (delay, action, slack)
    queue: DelayQueue[Any] | None = queues.get(key)
    if queue is None:
        queue = queues[key] = DelayQueue(delay, action, slack=slack)
        trio.lowlevel.spawn_system_task(queue.run, name=f"trio-mcp timers ({delay:g} s)")
    return queue


class Watched(Protocol):
    """A stream's writer, as the two timers see it."""

    def on_heartbeat_due(self) -> None:
        """Silent for a heartbeat interval: send a heartbeat."""

    def on_stalled(self) -> None:
        """A send has waited for the stall timeout: the client stopped reading."""


def _heartbeat_due(writer: Watched) -> None:
    writer.on_heartbeat_due()


def _stalled(writer: Watched) -> None:
    writer.on_stalled()


def heartbeats(interval: float) -> DelayQueue[Watched]:
    """The queue that wakes writers silent for ``interval`` seconds.

    A heartbeat may go out up to :data:`HEARTBEAT_SLACK` seconds (or a twentieth of the
    interval) late, so that the heartbeats of many streams go out in groups.
    """
    return delay_queue(interval, _heartbeat_due, slack=min(HEARTBEAT_SLACK, interval / 20))


def stall_watch(timeout: float) -> DelayQueue[Watched]:
    """The queue that drops writers whose send has waited ``timeout`` seconds."""
    return delay_queue(timeout, _stalled)
