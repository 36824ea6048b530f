"""The owner of every session's task: one nursery for the life of the app.

Sessions outlive the HTTP request that created them (a POST addresses a session whose
stream another request holds; a session survives a dropped stream for its resume grace
period), so their tasks cannot live in a request's nursery. They live here, in a nursery
opened by the app's lifespan, and each ends when its session decides to or the app stops.

At ``max_sessions`` a new client is refused only if no session can give way. The one idle
longest (an HTTP+SSE session waiting out its resume grace, a Streamable HTTP session with
no stream open and no request running) gives way, as if its grace or idle timeout had
run out, once its client has had ``sse_retry_ms`` to reconnect: the delay the server
itself suggested. Only this worker's own sessions can be ended here, so the supervisor,
not the (possibly shared) store, keeps them in idle order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ._config import Settings
from ._heartbeat import heartbeats, stall_watch
from ._jsonrpc import INTERNAL_ERROR, JSONRPCError
from ._pacing import departures
from ._registry import InMemorySessionStore, SessionStore, new_session_id
from ._server import Server
from ._session import Session, StreamMirror, TransportKind
from ._task_store import StoreUnavailable

if TYPE_CHECKING:
    from ._redis_sessions import RedisSessions
    from ._redis_takeover import Taken

log = logging.getLogger("trio_mcp")

#: Retry-After when the server is full and no session is idle: none is due to end, and a
#: slot frees only when some client leaves, which cannot be foreseen; this paces retries.
RETRY_WHEN_ALL_BUSY: Final = 5
#: Seconds a stopping worker's guest copies have to send the answers to cut calls.
_ANSWERS_OUT: Final = 1.0
#: What a call still running on a guest's copy of a session gets when its worker stops
#: (its session goes on, on its owner: the client sends the call again there).
_STOPPED: Final = JSONRPCError(
    INTERNAL_ERROR, "the worker serving this request stopped; the request may not have completed"
)


class NotServing(RuntimeError):
    """No session can be opened now; the transport answers 503 with the message.

    ``retry_after`` is set (seconds) when waiting may help, as when the server is full.
    """

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SessionSupervisor:
    def __init__(
        self, server: Server, settings: Settings, store: SessionStore | None = None
    ) -> None:
        self._server = server
        self._settings = settings
        self.store: SessionStore = store if store is not None else InMemorySessionStore()
        self._nursery: trio.Nursery | None = None
        #: The sessions whose tasks run here (a shared store may list others' too).
        self._local: set[Session] = set()
        self._closing: str | None = None
        self._local_changed = trio.Event()
        #: Local sessions with no sign of life, each with the time it has been idle
        #: since; nearly oldest first (see :meth:`_give_way`).
        self._idle: dict[Session, float] = {}
        #: Sessions shared with other workers through Redis (``Settings.redis_url``).
        self.shared: RedisSessions | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; cancelling it ends every session."""
        # The streams' timers (and the departures' pacer) run for the app's whole life,
        # not from its first stream on.
        heartbeats(self._settings.heartbeat_interval)
        stall_watch(self._settings.stalled_client_timeout)
        departures()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    @property
    def running(self) -> bool:
        return self._nursery is not None

    @property
    def accepting(self) -> bool:
        """Whether new sessions and calls are taken (running, and not draining)."""
        return self._nursery is not None and self._closing is None

    @property
    def settings(self) -> Settings:
        return self._settings

    def close(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def open_session(self, kind: TransportKind, owner: str | None = None) -> Session:
        """Create a session for ``owner`` (the authenticated principal, if any), start
        its task, and register it."""
        if self._nursery is None:
            raise NotServing(
                "trio-mcp's session supervisor is not running: serve the app with an ASGI "
                "server that runs the lifespan protocol (hypercorn -k trio does)"
            )
        if self._closing is not None:
            raise NotServing(self._closing, retry_after=1)
        if len(self.store) >= self._settings.max_sessions:
            wait = self._give_way()
            if len(self.store) >= self._settings.max_sessions:
                raise NotServing(
                    f"the server holds {self._settings.max_sessions} sessions, as many as "
                    "max_sessions allows, and none can give way to a new client yet",
                    retry_after=RETRY_WHEN_ALL_BUSY if wait is None else max(1, math.ceil(wait)),
                )
        session = Session(
            new_session_id(),
            self._server,
            self._settings,
            kind,
            owner,
            on_idle=self._note_idle,
            mirror=self.shared,
        )
        await self._nursery.start(self._own, session)
        if self.shared is not None:
            # Known to every worker before its id is handed out.
            try:
                await self.shared.register(session)
            except StoreUnavailable as exc:
                self.end(session)
                raise NotServing(str(exc), exc.retry_after) from None
        return session

    async def adopt(self, taken: Taken, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Serve here a session taken from a lost worker (``Settings.redis_url``): the
        same id, principal and negotiated state, its main stream going on from the
        events Redis holds. Its token is already this worker's (the takeover set it),
        so it is not registered anew."""
        from ._redis_takeover import restore

        assert self.shared is not None
        if self._nursery is None or self.store.get(taken.id) is not None:
            return
        kind: TransportKind = "sse" if taken.kind == "sse" else "streamable"
        session = Session(
            taken.id,
            self._server,
            self._settings,
            kind,
            taken.principal,
            on_idle=self._note_idle,
            mirror=self.shared,
        )
        restore(session, taken.state)
        main = session.main
        session.streams.pop(main.key, None)
        main.key = taken.main
        session.streams[main.key] = main
        preload = getattr(main, "preload", None)
        if preload is not None:
            preload(entries)
        await self._nursery.start(self._own, session)
        self.shared.local[session.id] = session

    async def host_guest(
        self,
        session_id: str,
        principal: str | None,
        mirror: StreamMirror,
        *,
        guest_prefix: str,
        idle_timeout: float,
        on_end: Callable[[Session], None],
    ) -> Session:
        """Start here a copy of another worker's Streamable HTTP session, to run calls
        whose POSTs reached this worker (see :mod:`._redis_guests`). It is not listed
        (this worker's transports still find the session elsewhere), counts towards no
        limit of sessions, and ends after ``idle_timeout`` without a call; ``on_end`` is
        told when it has. A drain waits for its calls like any session's, then answers
        those still running with an error (its session lives on). Raises NotServing
        once the supervisor is stopping."""
        if self._nursery is None or self._closing is not None:
            raise NotServing(self._closing or "trio-mcp's session supervisor is not running")
        session = Session(
            session_id,
            self._server,
            attrs.evolve(self._settings, session_idle_timeout=idle_timeout),
            "streamable",
            principal,
            mirror=mirror,
            guest_prefix=guest_prefix,
        )
        await self._nursery.start(partial(self._own, session, on_end=on_end))
        return session

    def _note_idle(self, session: Session, since: float | None) -> None:
        self._idle.pop(session, None)
        if since is not None and not session.closed:
            self._idle[session] = since  # to the end: the most recently active

    def _give_way(self) -> float | None:
        """End the local session idle longest if it may give way to a new client.

        Returns 0 when one did, else the seconds until the first may (its client has
        not yet had the reconnection delay), or None when no session is idle.

        Sessions tell the supervisor whenever their idleness may have changed (see
        ``Session.idle_since``), so the first is the one idle longest; one found in use,
        or idle since later than it said, is dropped or moved back here, so a refusal
        costs little however many sessions are idle.
        """
        now = trio.current_time()
        patience = self._settings.sse_retry_ms / 1000
        while self._idle:
            session, noted = next(iter(self._idle.items()))
            since = None if session.closed else session.idle_since()
            if since is None:
                del self._idle[session]  # in use again: noted anew when it falls idle
                continue
            if since != noted:
                del self._idle[session]  # to the end, as the most recently active
                self._idle[session] = since
                continue
            if now < since + patience:
                return since + patience - now
            del self._idle[session]
            log.info(
                "session %s gave way to a new client, idle for %.0f s",
                session.id[:8],
                now - since,
            )
            self.end(session)
            return 0.0
        return None

    async def _own(
        self,
        session: Session,
        *,
        on_end: Callable[[Session], None] | None = None,
        task_status: trio.TaskStatus[None],
    ) -> None:
        # A guest's copy is not listed: this worker's transports find its session on
        # its owner.
        listed = not session.is_copy
        if listed:
            self.store.add(session)
        self._local.add(session)
        try:
            await session.run(task_status=task_status)
        except Exception:
            # A bug in one session must not cancel the supervisor's nursery, and with it
            # every other session: it ends this session only.
            log.exception("session %s failed", session.id[:8])
        finally:
            self._local.discard(session)
            self._idle.pop(session, None)
            if listed:
                self.store.remove(session.id)
                if self.shared is not None:
                    self.shared.forget(session)
            if on_end is not None:
                on_end(session)
            self._local_changed.set()

    def get(self, session_id: str, principal: str | None) -> Session | None:
        """The live session with this id, if ``principal`` owns it."""
        return _live_for(self.store.get(session_id), principal)

    def by_stream_key(self, key: str, principal: str | None) -> Session | None:
        """The live session whose main stream has this key (resuming HTTP+SSE by event
        id), if ``principal`` owns it."""
        return _live_for(self.store.by_stream_key(key), principal)

    def end(self, session: Session) -> None:
        """End a session at once: it leaves the registry now, its tasks are cancelled."""
        self.store.remove(session.id)
        session.close()

    async def drain(self, deadline: float) -> None:
        """Shut down gracefully by ``deadline`` (trio time).

        No new session and no new request is accepted from now on (503, or a -32000
        error naming the shutdown); requests already running may finish until the
        deadline; then every session ends, which ends its streams cleanly so that
        clients reconnect elsewhere. Returns once every session has ended.
        """
        self._closing = "the server is shutting down; reconnect in a moment"
        sessions = list(self._local)
        for session in sessions:
            session.refuse_new_requests(self._closing)
        with trio.move_on_at(deadline):
            for session in sessions:
                await session.wait_idle()
        # A guest's copy (host_guest): its session lives on, on its owner, so each call
        # it still runs is answered, and its stream ends once that answer is out.
        copies = [session for session in self._local if session.is_copy]
        for copy in copies:
            copy.answer_running(_STOPPED)
        with trio.move_on_after(_ANSWERS_OUT):
            for copy in copies:
                await copy.wait_unread()
        for session in list(self._local):
            if session.is_copy:
                session.close()
            else:
                self.end(session)
        await self.wait_ended()

    async def wait_ended(self) -> None:
        """Wait until every session of this worker has ended (after :meth:`close`, or
        each one's end)."""
        while self._local:
            self._local_changed = trio.Event()
            await self._local_changed.wait()


def _live_for(session: Session | None, principal: str | None) -> Session | None:
    # Another principal's session is answered as no session at all: its existence is
    # nobody else's business.
    if session is None or session.closed or session.owner != principal:
        return None
    return session
