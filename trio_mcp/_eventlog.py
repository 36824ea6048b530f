"""The replay log behind every outbound stream: the seam for a shared (Redis) backend.

Each stream numbers its events 1, 2, 3, ...; the log keeps the newest of them within a
count and a byte budget so a client that reconnects with ``Last-Event-ID`` can be sent
what it missed. ``after(seq)`` says ``None`` when events after ``seq`` have already been
dropped: the caller must then refuse the resumption rather than replay with a hole.
"""

from __future__ import annotations

from typing import Protocol

import attrs


@attrs.frozen
class Event:
    seq: int
    data: str


class EventLog(Protocol):
    @property
    def first_seq(self) -> int:
        """The oldest kept event's number (``last_seq + 1`` when the log is empty)."""

    @property
    def last_seq(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]:
        """(events, bytes) kept."""

    def append(self, data: str) -> int: ...

    def after(self, seq: int) -> list[Event] | None: ...

    def drop_oldest(self) -> None: ...


class InMemoryEventLog:
    """A list of events; the one log a single process needs.

    A list rather than a deque: an idle stream keeps a log of a few events for as long as
    it lives, and an empty deque alone is ~600 bytes, a list ~60. Dropping the oldest of
    at most ``replay_events`` (256 by default) pointers is a short memmove.
    """

    __slots__ = ("_bytes", "_events", "_last")

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._last = 0
        self._bytes = 0

    @property
    def first_seq(self) -> int:
        return self._events[0].seq if self._events else self._last + 1

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def size(self) -> tuple[int, int]:
        return len(self._events), self._bytes

    def append(self, data: str) -> int:
        self._last += 1
        self._events.append(Event(self._last, data))
        self._bytes += len(data)
        return self._last

    def after(self, seq: int) -> list[Event] | None:
        if seq < 0 or seq > self._last:
            return None  # not an event this log ever numbered
        if seq + 1 < self.first_seq:
            return None  # what followed ``seq`` is gone
        start = seq + 1 - self.first_seq
        return self._events[start:]

    def drop_oldest(self) -> None:
        event = self._events.pop(0)
        self._bytes -= len(event.data)
