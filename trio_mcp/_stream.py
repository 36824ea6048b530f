"""One outbound stream of a session: its event log, its writer, its backpressure.

A session has a *main* stream (the HTTP+SSE transport's only stream, or Streamable HTTP's
standalone GET stream) and, under Streamable HTTP, one stream per POST that carried
requests. Emitters append; the one attached writer reads from its cursor and sends.

Why a log and not a memory channel: a channel hands each event to one reader and
forgets it, so an event taken by a writer whose client then vanished is lost. Resuming a
stream needs the events kept until the client is known to have them; the log keeps them,
and a wakeup per stream does the rest of a channel's job. The bound is the same: when
more than ``max_events`` (or ``max_bytes``) are waiting for the writer, emitters wait,
so a slow client slows only its own session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol

import trio

from ._budget import ByteBudget
from ._eventlog import Event, EventLog, InMemoryEventLog
from ._jsonrpc import RequestId


class Writer(Protocol):
    """What attaches to a stream: something a newer writer can cancel."""

    def cancel(self) -> None: ...


class StreamBusy(Exception):
    """Another writer is attached to this stream."""


class StreamGap(Exception):
    """Events after the client's last event id are no longer kept."""


def new_stream_key() -> str:
    # Event ids carry this key; 128 random bits make another stream's ids unguessable.
    return secrets.token_hex(16)


class OutboundStream:
    # One per idle session at least, held for hours: no instance dict.
    __slots__ = (
        "_budget",
        "_changed",
        "_max_bytes",
        "_max_events",
        "_writer",
        "blocked",
        "carries_notifications",
        "closed",
        "complete",
        "drop_when_full",
        "ever_attached",
        "heartbeat_due",
        "key",
        "log",
        "pending",
        "responses_only",
        "written",
    )

    def __init__(
        self,
        *,
        max_events: int,
        max_bytes: int,
        drop_when_full: bool = False,
        log: EventLog | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self.key = new_stream_key()
        self.log: EventLog = log if log is not None else InMemoryEventLog()
        # The session's: the log's bytes, and those of emitters waiting for room.
        self._budget = budget
        self._max_events = max_events
        self._max_bytes = max_bytes
        # A stream nobody may ever read (a standalone stream never opened) drops its
        # oldest events instead of stalling the emitters.
        self.drop_when_full = drop_when_full
        self.written = 0
        #: Emitters waiting for room: a session whose handlers all wait here, with no
        #: writer attached, is idle however long they have been running.
        self.blocked = 0
        self.complete = False
        self.closed = False
        self._writer: Writer | None = None
        self.ever_attached = False
        #: Set by the heartbeat clock: the writer has been silent for an interval.
        self.heartbeat_due = False
        # Woken on every change; a parking lot, not an Event, since an Event cannot be
        # reset: replacing it at every wakeup would allocate per heartbeat.
        self._changed = trio.lowlevel.ParkingLot()
        #: Request ids whose final response this stream still waits for.
        self.pending: set[RequestId] = set()
        #: False for a POST whose client takes only JSON: its notifications go elsewhere.
        self.carries_notifications = True
        #: True while every event is a response: such a stream can still be answered as
        #: one plain JSON body instead of an event stream.
        self.responses_only = True

    def event_id(self, seq: int) -> str:
        return f"{self.key}.{seq}"

    @property
    def attached(self) -> bool:
        return self._writer is not None

    # -- emitting ------------------------------------------------------------------------

    async def append(
        self,
        data: str,
        *,
        response: bool = False,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Add an event, first waiting while the writer is ``max_events`` behind.

        ``response`` marks a JSON-RPC response, as opposed to a notification or a
        request, which only an event stream can carry before the response. ``on_wait``
        is called each time the emitter is about to wait (counted in ``blocked``)."""
        while True:
            if self.closed:
                raise trio.ClosedResourceError("the stream's session ended")
            self._trim()
            if self._has_room():
                break
            if self.drop_when_full:
                self._drop_oldest()
                continue
            self.blocked += 1
            # What waits here is held for the client as surely as what is in the log.
            if self._budget is not None:
                self._budget.take(len(data))
            try:
                if on_wait is not None:
                    on_wait()
                await self._changed.park()
            finally:
                self.blocked -= 1
                if self._budget is not None:
                    self._budget.give(len(data))
        self._push(data, response)

    def append_nowait(self, data: str, *, response: bool = False) -> bool:
        """Add an event without waiting, over the budget if need be, up to twice it.

        For senders that must not wait on a slow client: a POST's immediate reply, a
        notification broadcast to every session. False (nothing added) once even twice
        the budget is taken, which only a client that stopped reading can cause."""
        if self.closed:
            raise trio.ClosedResourceError("the stream's session ended")
        self._trim()
        while self.drop_when_full and not self._has_room():
            self._drop_oldest()
        events, size = self.log.size
        if events >= 2 * self._max_events or size >= 2 * self._max_bytes:
            return False
        self._push(data, response)
        return True

    async def wait_for_room(self) -> None:
        """Return once :meth:`append` would not wait (at once for a stream that drops
        its oldest events instead), or once the stream is closed.

        For a transport that reads its client's messages itself (stdio): waiting here
        before each message stops the reading while the client leaves the replies
        unread, so an immediate reply (a ping's) always has room."""
        while not self.closed and not self.drop_when_full:
            self._trim()
            if self._has_room():
                return
            await self._changed.park()

    def drop_horizon(self) -> int:
        """The newest event an append now would drop to make room, 0 for none.

        For a stream that drops its oldest events when full: an emitter with events
        that must reach the client looks here first, and ends the stream rather
        than lose one. (Mirrors :meth:`append`: the oldest go, written or not,
        until the log is within both bounds.)"""
        events, size = self.log.size
        if events < self._max_events and size < self._max_bytes:
            return 0
        horizon = 0
        for event in self.log.after(self.log.first_seq - 1) or ():
            if events < self._max_events and size < self._max_bytes:
                break
            horizon = event.seq
            events, size = events - 1, size - len(event.data)
        return horizon

    def _has_room(self) -> bool:
        events, size = self.log.size
        return events < self._max_events and size < self._max_bytes

    def _push(self, data: str, response: bool) -> None:
        self.log.append(data)
        if self._budget is not None:
            self._budget.take(len(data))
        if not response:
            self.responses_only = False
        self._wake()

    def _trim(self) -> None:
        # Events already handed to a writer may go, oldest first, once over budget.
        while True:
            events, size = self.log.size
            over = events >= self._max_events or size >= self._max_bytes
            if not over or events == 0 or self.log.first_seq > self.written:
                return
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        before = self.log.size[1]
        self.log.drop_oldest()
        if self._budget is not None:
            self._budget.give(before - self.log.size[1])

    def release(self) -> None:
        """The session no longer keeps this stream: its log stops counting against the
        session's budget (a writer still replaying it holds it only until it is done)."""
        if self._budget is not None:
            self._budget.give(self.log.size[1])
            self._budget = None

    def finish(self) -> None:
        """No more events will come (a request stream's last response is in)."""
        self.complete = True
        self._wake()

    def close(self) -> None:
        """The session ended: writers stop, emitters fail."""
        self.closed = True
        self.complete = True
        self._wake()

    # -- writing ---------------------------------------------------------------------------

    def attach(self, writer: Writer, *, take_over: bool) -> None:
        """Become the stream's writer. ``take_over`` cancels a writer already attached
        (its connection is most likely dead: the client came back on a new one)."""
        if self._writer is not None:
            if not take_over:
                raise StreamBusy
            self._writer.cancel()
        self._writer = writer
        self.ever_attached = True
        self._wake()

    def detach(self, writer: Writer) -> None:
        if self._writer is writer:
            self._writer = None
            self._wake()

    def replay_from(self, seq: int) -> int:
        """Check that everything after ``seq`` is still here; returns the cursor."""
        if self.log.after(seq) is None:
            raise StreamGap
        return seq

    async def next_events(self, cursor: int) -> list[Event] | None:
        """Events after ``cursor``; ``[]`` when a heartbeat is due (see
        :meth:`beat`); ``None`` once the stream is complete and everything was handed
        out. Waiting here has no deadline: the heartbeat clock provides the timing."""
        while True:
            visible = self.visible_seq()
            # Caught up is the common case (every heartbeat): no need to ask for a slice.
            events = self.log.after(cursor) if cursor != visible else []
            if events is None:
                raise StreamGap
            if events and events[-1].seq > visible:
                events = [event for event in events if event.seq <= visible]
            if events:
                self.written = max(self.written, events[-1].seq)
                self._wake()  # room for waiting emitters
                return events
            if self.complete and (self.closed or visible >= self.log.last_seq):
                return None
            if self.heartbeat_due:
                self.heartbeat_due = False
                return []
            await self._changed.park()

    def hold(self) -> None:
        """This POST's client may take its replies as one JSON body: a stream kept
        elsewhere too may keep them to itself until then (see
        :class:`~trio_mcp._redis_sessions.MirroredStream`). Nothing to do here."""

    def stop_holding(self) -> None:
        """The stream is served as events after all (see :meth:`hold`)."""

    def visible_seq(self) -> int:
        """The newest event a writer may send: all of them here; a stream kept
        elsewhere too shows an event only once it is kept there (see
        :class:`~trio_mcp._redis_sessions.MirroredStream`)."""
        return self.log.last_seq

    def beat(self) -> None:
        """The writer has been silent for a heartbeat interval: wake it to send one."""
        self.heartbeat_due = True
        self._wake()

    async def plain_responses(self) -> list[Event] | None:
        """Wait until the stream is complete or carries something but responses.

        Returns the events (all responses, possibly none) in the first case, marking
        them as written; ``None`` in the second, when only an event stream will do.
        """
        while self.responses_only and not (
            self.complete and (self.closed or self.visible_seq() >= self.log.last_seq)
        ):
            await self._changed.park()
        if not self.responses_only:
            return None
        return self._hand_over_all()

    def _hand_over_all(self) -> list[Event]:
        """Every event, marked written: they go out as one JSON body."""
        events = self.log.after(0) or []
        if events:
            self.written = max(self.written, events[-1].seq)
            self._wake()
        return events

    # -- wakeups ----------------------------------------------------------------------------

    def _wake(self) -> None:
        self._changed.unpark_all()
