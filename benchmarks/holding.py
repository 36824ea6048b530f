"""Sessions opened and held open at once, by one load worker: the idle sweep's N, and the
attack section's thousands of idle sessions that leave together.

Each session does what a real client does (see :mod:`.mcpclient`), then holds its stream
and counts heartbeats until the run's scope is cancelled, which closes every connection
in one pass of the worker's loop.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import trio

from .mcpclient import (
    ESTABLISH_TIMEOUT,
    FAILURES,
    SESSION_TYPES,
    HoldStats,
    PosterPool,
    Target,
    failure_name,
)


class HeldSessions:
    """Sessions opened by one ``open`` command, held until ``close``."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.target = Target(command["host"], command["port"], command["sources"])
        self.kind = SESSION_TYPES[command["transport"]]
        self.count: int = command["n"]
        self.first_index: int = command["first_index"]
        self.limiter = trio.CapacityLimiter(command["concurrency"])
        self.pool = PosterPool(self.target, command["pool"])
        self.stats = HoldStats()
        self.established = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.durations: list[float] = []
        self.settled = trio.Event()
        self.scope = trio.CancelScope()
        self.elapsed = 0.0
        self.started = time.perf_counter()
        #: Established sessions still held, for drop_all.
        self._live: set[Any] = set()
        self._dropped = False

    def _settle_one(self) -> None:
        if self.established + self.failed == self.count:
            self.elapsed = time.perf_counter() - self.started
            self.pool.close()  # initialization is over; the streams alone stay open
            self.settled.set()

    async def run(self) -> None:
        self.started = time.perf_counter()
        with self.scope:
            async with trio.open_nursery() as nursery:
                for offset in range(self.count):
                    nursery.start_soon(self._one, self.first_index + offset)
        self.pool.close()

    async def _one(self, index: int) -> None:
        session = self.kind(self.target, index, self.pool.post)
        try:
            async with self.limiter:
                begun = time.perf_counter()
                with trio.fail_after(ESTABLISH_TIMEOUT):
                    await session.establish()
                self.durations.append(time.perf_counter() - begun)
        except (*FAILURES, trio.TooSlowError) as exc:
            session.close()
            self.failed += 1
            self.errors[failure_name(exc)] += 1
            self._settle_one()
            return
        self.established += 1
        self._settle_one()
        self._live.add(session)
        try:
            await session.hold(self.stats)
        except trio.ClosedResourceError:
            if not self._dropped:
                raise
            # Closed under it by drop_all: the departure it was held for.
        finally:
            self._live.discard(session)
            session.close()

    def drop_all(self) -> None:
        """Close every held connection now, in one pass with no task switch between
        two closes: the server sees them all leave at once, as when a client process
        exits. Their tasks then end (with the scope, which this cancels)."""
        self._dropped = True
        for session in list(self._live):
            session.close()
        self.scope.cancel()

    def result(self) -> dict[str, Any]:
        return {
            "op": "opened",
            "established": self.established,
            "failed": self.failed,
            "errors": dict(self.errors),
            "durations": self.durations,
            "elapsed": self.elapsed,
        }
