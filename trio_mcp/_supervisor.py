"""The owner of every session's task: one nursery for the life of the app.

Sessions outlive the HTTP request that created them (a POST addresses a session whose
stream another request holds; a session survives a dropped stream for its resume grace
period), so their tasks cannot live in a request's nursery. They live here, in a nursery
opened by the app's lifespan, and each ends when its session decides to or the app stops.
"""

from __future__ import annotations

import logging

import trio

from ._config import Settings
from ._heartbeat import heartbeats, stall_watch
from ._registry import InMemorySessionStore, SessionStore, new_session_id
from ._server import Server
from ._session import Session, TransportKind

log = logging.getLogger("trio_mcp")


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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; cancelling it ends every session."""
        # The streams' timers run for the app's whole life, not from its first stream on.
        heartbeats(self._settings.heartbeat_interval)
        stall_watch(self._settings.stalled_client_timeout)
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
            raise NotServing(
                f"the server holds {self._settings.max_sessions} sessions, as many as "
                "max_sessions allows; try again shortly",
                retry_after=5,
            )
        session = Session(new_session_id(), self._server, self._settings, kind, owner)
        await self._nursery.start(self._own, session)
        return session

    async def _own(self, session: Session, *, task_status: trio.TaskStatus[None]) -> None:
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
            self.store.remove(session.id)
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
        for session in list(self._local):
            self.end(session)
        while self._local:
            self._local_changed = trio.Event()
            await self._local_changed.wait()


def _live_for(session: Session | None, principal: str | None) -> Session | None:
    # Another principal's session is answered as no session at all: its existence is
    # nobody else's business.
    if session is None or session.closed or session.owner != principal:
        return None
    return session
