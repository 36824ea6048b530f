"""The ASGI app: a Quart-Trio app whose MCP routes are served by the transports.

The MCP endpoints are dispatched before Quart's request machinery: an SSE stream is held
open for hours, and a Quart request context per stream would cost more memory than the
whole rest of the session. Quart still provides the app object hypercorn runs, its
lifespan (which owns the session supervisor) and routing for anything else a user adds
(``app.route(...)`` works as in any Quart app).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import TYPE_CHECKING, Any

import sniffio
import trio
from quart_trio import QuartTrio

from ._auth import METADATA_PATH, PRINCIPAL_KEY
from ._collector import tune_for_serving
from ._config import Settings
from ._guest import GuestHost
from ._http import (
    Receive,
    Scope,
    Send,
    close_if_body_unread,
    has_body,
    respond,
    respond_error,
    respond_json,
    respond_unavailable,
)
from ._jsonrpc import INVALID_REQUEST
from ._lifespan import run_lifespan
from ._listen import ListenStreams
from ._registry import SessionStore
from ._sealing import StateSealer, generate_key
from ._security import host_allowed, origin_allowed
from ._server import Server
from ._signals import drain_on_signals
from ._sse import SseTransport
from ._stateless_call import StatelessService
from ._stateless_http import StatelessHttpTransport
from ._streamable import StreamableHttpTransport
from ._supervisor import SessionSupervisor
from ._task_runner import TaskRunner
from ._task_store import TaskStore

if TYPE_CHECKING:
    from ._jsonrpc import Request
    from ._redis_client import RedisConnection
    from ._redis_sessions import RedisSessions
    from ._redis_tasks import RedisTaskStore
    from ._redis_worker import RedisWorker
    from ._stateless import RequestMeta

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("trio_mcp")

#: Seconds a stopping worker waits for its sessions to end (their ends then go to
#: Redis) before it leaves Redis; they end at once unless a handler holds on.
_SESSIONS_END_BOUND = 2.0

UNSUPPORTED_LIBRARY = (
    "trio-mcp runs on trio, natively or as a guest on asyncio, but this ASGI server runs "
    "{library}. Serve it with hypercorn or uvicorn: hypercorn trio_mcp.app  (or run: "
    "python -m trio_mcp)"
)


class App(QuartTrio):
    """Serves one :class:`~trio_mcp.Server` over HTTP; hand it to ``hypercorn -k trio``."""

    def __init__(
        self,
        server: Server,
        settings: Settings | None = None,
        *,
        store: SessionStore | None = None,
        task_store: TaskStore | None = None,
    ) -> None:
        """``store`` is where live sessions are registered (in memory by default); a
        shared store is the seam for sessions that span worker processes.
        ``task_store`` keeps the records of tasks (in memory by default)."""
        super().__init__(server.identity.name)
        #: Set on the first call from an asyncio server: trio then runs as its guest.
        self._guest: GuestHost | None = None
        #: Whether the lifespan started serving and what runs after serving has not
        #: run yet (see shutdown).
        self._serving = False
        self.mcp_server = server
        self.settings = settings or Settings()
        self.supervisor = SessionSupervisor(server, self.settings, store)
        sse = SseTransport(self.supervisor, self.settings)
        #: This worker's part in a shared Redis (``Settings.redis_url``), or None.
        self.redis: RedisWorker | None = None
        redis_store: RedisTaskStore | None = None
        connection: RedisConnection | None = None
        if self.settings.redis_url:
            connection, redis_store = _redis_parts(self.settings)
            if task_store is None:
                task_store = redis_store
        #: Runs the calls that become tasks, in the lifespan's nursery.
        self.tasks = TaskRunner(
            server,
            task_store,
            ttl=self.settings.task_ttl,
            poll_interval=self.settings.task_poll_interval,
            max_tasks=self.settings.max_tasks,
            max_per_principal=self.settings.max_tasks_per_principal,
            max_finished=self.settings.max_finished_tasks,
            worker=None if connection is None else connection.worker,
        )
        if connection is not None and redis_store is not None:
            from ._redis_worker import RedisWorker

            self.redis = RedisWorker(
                connection,
                server,
                self.tasks,
                redis_store,
                worker_timeout=self.settings.redis_worker_timeout,
            )
        if self.redis is not None and connection is not None:
            sessions = _shared_sessions(connection, self.settings)
            self.supervisor.shared = sessions
            sessions.adopt = self.supervisor.adopt
            from ._redis_guests import GuestCalls

            sessions.guests = GuestCalls(sessions, self.supervisor)
            self.redis.sessions = sessions
            from ._redis_http import RemoteSessionsHttp

            remote = RemoteSessionsHttp(sessions, self.settings)
        else:
            remote = None
        #: Open ``subscriptions/listen`` streams, ended cleanly at shutdown.
        self.listeners = ListenStreams(server, self.settings, self.tasks)
        stateless = StatelessHttpTransport(
            StatelessService(server, _sealer(server, self.settings), self.tasks),
            self.listeners.listen if self.redis is None else self._listen_shared,
            stalled_client_timeout=self.settings.stalled_client_timeout,
        )
        streamable = StreamableHttpTransport(self.supervisor, self.settings, stateless)
        sse.remote = streamable.remote = remote
        #: path -> HTTP method -> handler, for the MCP endpoints only.
        self._routes: dict[str, dict[str, Handler]] = {
            self.settings.sse_path: {"GET": sse.stream},
            self.settings.messages_path: {"POST": sse.post},
            self.settings.mcp_path: {
                "POST": streamable.post,
                "GET": streamable.get,
                "DELETE": streamable.delete,
            },
        }
        auth = self.settings.auth
        if auth is not None:
            # RFC 9728: the metadata of resource https://host/mcp is found at
            # /.well-known/oauth-protected-resource/mcp; the bare path serves it too.
            metadata: dict[str, Handler] = {"GET": self._serve_metadata}
            self._routes[METADATA_PATH] = metadata
            self._routes[METADATA_PATH + self.settings.mcp_path] = metadata
        if self.settings.messages_path.endswith("/"):
            self._routes[self.settings.messages_path.rstrip("/")] = self._routes[
                self.settings.messages_path
            ]
        self.before_serving(self._start_supervisor)
        if self.settings.gc_young_threshold is not None:
            self.before_serving(self._tune_collector)
        self.after_serving(self._stop_supervisor)

    async def _start_supervisor(self) -> None:
        self._serving = True
        # QuartTrio's lifespan nursery lives exactly as long as the app is served.
        await self.nursery.start(self.supervisor.run)
        if self.redis is not None:
            # Before the tasks: a task's worker is alive in Redis before it is created.
            await self.nursery.start(self.redis.run)
        await self.nursery.start(self.tasks.run)

    async def _tune_collector(self) -> None:
        # Registered only when the setting asks for it; once everything above is built.
        assert self.settings.gc_young_threshold is not None
        tune_for_serving(self.settings.gc_young_threshold)

    async def _stop_supervisor(self) -> None:
        # Tasks first: their "cancelled" reaches their listeners before the listeners'
        # final results, after which nothing may follow.
        await self.tasks.aclose()
        self.listeners.end_all()
        self.supervisor.close()
        if self.redis is not None:
            # The sessions' ends go to Redis in the worker's last rounds (see
            # RedisWorker.aclose): wait for them to end first, within a bound.
            with trio.move_on_after(_SESSIONS_END_BOUND):
                await self.supervisor.wait_ended()
            # After the tasks: their ends were written to Redis before it goes.
            await self.redis.aclose()

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """The app's lifespan, for a parent app that mounts this one and does not pass
        its own on (Starlette and FastAPI do not): start it from the parent's, as in
        ``Starlette(routes=[Mount("/tools", app=mcp_app)], lifespan=lambda _:
        mcp_app.lifespan())``. On asyncio or on trio, whichever the parent runs on."""
        return run_lifespan(self)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Shut down gracefully within ``timeout`` seconds: refuse new sessions and
        requests, let running requests finish until shortly before the deadline, then
        end every session and its streams cleanly. ``trio_mcp.run`` calls it on SIGTERM
        or SIGINT; call it yourself when you drive hypercorn's ``serve``.

        Then, once, what runs after serving: the sessions' and tasks' last writes to
        a shared store, and this worker's goodbye to it. The server's lifespan calls
        this method too (Quart-Trio's shutdown is this one), so a second call only
        finds nothing left to drain."""
        if timeout is None:
            timeout = self.settings.shutdown_timeout
        # Keep a tenth of the time (at most a second) for the streams to end.
        margin = min(1.0, timeout / 10)
        deadline = trio.current_time() + timeout - margin
        # Tasks end first, each settling "cancelled" (a task is a handle the client
        # polls, not a call a connection waits on), so that their listeners hear it
        # before their final result. A listener then has nothing running to wait
        # for: it ends at once, with its result.
        with trio.move_on_at(deadline):
            await self.tasks.aclose()
        self.listeners.end_all()
        await self.supervisor.drain(deadline)
        if self._serving:
            self._serving = False
            await super().shutdown()

    async def _listen_shared(
        self, scope: Scope, receive: Receive, send: Send, request: Request, meta: RequestMeta
    ) -> None:
        """``subscriptions/listen`` when workers share Redis: refused with 503 while
        Redis cannot be reached (the listener would miss the other workers'
        changes); a listener already open stays open meanwhile."""
        assert self.redis is not None
        if not self.redis.connection.available:
            await respond_unavailable(
                send, "the server's shared store (Redis) cannot be reached right now", 1
            )
            return
        await self.listeners.listen(scope, receive, send, request, meta)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._guest is not None:
            await self._guest(scope, receive, send)
            return
        library = _running_library()
        if library == "trio":
            await self._serve(scope, receive, send)
        elif library == "asyncio":
            # From now on every call goes through the guest run: the server is asyncio.
            self._guest = GuestHost(self._serve, companion=self._guest_companion)
            await self._guest(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _refuse_lifespan(library, receive, send)
        else:
            raise RuntimeError(UNSUPPORTED_LIBRARY.format(library=library))

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI call; runs in trio (natively, or as a guest on asyncio)."""
        if scope["type"] == "http":
            if has_body(scope):
                receive, send = close_if_body_unread(receive, send)
            route = self._routes.get(_route_path(scope))
            if route is not None:
                # Admission, then the handler from this frame: a held stream's task keeps
                # one coroutine frame fewer for as long as it lives.
                handler = await self._admit(route, scope, send)
                if handler is not None:
                    try:
                        await handler(scope, receive, send)
                    except (
                        trio.BrokenResourceError,
                        trio.BusyResourceError,
                        ConnectionError,
                    ) as exc:
                        # The host's send failed under the response: the connection was
                        # closed (hypercorn's trio worker may even close it while a send
                        # is under way). The client is gone; nothing to report but that.
                        log.info(
                            "connection closed while answering %s %s (%s)",
                            scope["method"],
                            scope["path"],
                            type(exc).__name__,
                        )
                    except Exception:
                        # The last line of defence: the transports answer every expected
                        # failure.
                        log.exception(
                            "unexpected error serving %s %s", scope["method"], scope["path"]
                        )
                        raise
                return
        elif scope["type"] == "lifespan" and self._guest is None:
            log.info("trio-mcp: serving on trio")
        await super().__call__(scope, receive, send)

    async def _guest_companion(self) -> None:
        """Runs beside the calls for as long as trio is a guest on an asyncio server."""
        loop = asyncio.get_running_loop()
        kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        log.info("trio-mcp: serving on trio as a guest on this server's %s loop", kind)
        await drain_on_signals(partial(self.shutdown, self.settings.shutdown_timeout))

    async def _admit(self, route: dict[str, Handler], scope: Scope, send: Send) -> Handler | None:
        """The handler for an MCP request, or None once the request has been refused
        (Host, Origin, authentication, method)."""
        if not host_allowed(scope, self.settings.allowed_hosts):
            # 421: this server is not the one the name was meant for (DNS rebinding).
            await respond_error(
                send, 421, INVALID_REQUEST, "this server does not answer to that Host name"
            )
            return None
        if not origin_allowed(scope, self.settings.allowed_origins):
            await respond_error(
                send, 403, INVALID_REQUEST, "requests from this Origin are not allowed"
            )
            return None
        auth = self.settings.auth
        if auth is not None and not scope["path"].startswith(METADATA_PATH):
            try:
                principal, error = await auth.authenticate(scope)
            except Exception:
                # The user's verify hook failed (its identity provider may be down): not
                # the client's fault, and not a reason to let it in.
                log.exception("the bearer token verifier raised")
                await respond_unavailable(send, "the server cannot check tokens right now", 5)
                return None
            if principal is None:
                await auth.challenge(scope, send, error)
                return None
            scope[PRINCIPAL_KEY] = principal
        handler = route.get(scope["method"])
        if handler is None:
            methods = ", ".join(route)
            await respond(
                send,
                405,
                f"use {methods} on {scope['path']}".encode(),
                headers=[(b"allow", methods.encode())],
            )
            return None
        return handler

    async def _serve_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.settings.auth is not None
        await respond_json(send, 200, self.settings.auth.metadata(scope, self.settings.mcp_path))


def _running_library() -> str:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return "no async library"


def _route_path(scope: Scope) -> str:
    """The request's path below where the app is mounted (ASGI's ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


async def _refuse_lifespan(library: str, receive: Receive, send: Send) -> None:
    """Fail startup with a message that says how to start the server correctly."""
    message = UNSUPPORTED_LIBRARY.format(library=library)
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": message})
            return


def _redis_parts(settings: Settings) -> tuple[RedisConnection, RedisTaskStore]:
    """The connection and task store of a worker sharing ``settings.redis_url``.
    Imported here: coredis is an optional extra (``trio-mcp[redis]``)."""
    assert settings.redis_url is not None
    try:
        from ._redis_client import RedisConnection
        from ._redis_tasks import RedisTaskStore
    except ImportError as exc:
        raise RuntimeError(
            "Settings.redis_url (TRIO_MCP_REDIS_URL) needs coredis: pip install 'trio-mcp[redis]'"
        ) from exc
    connection = RedisConnection(settings.redis_url, settings.redis_prefix)
    store = RedisTaskStore(connection, settings.task_ttl, settings.redis_worker_timeout)
    return connection, store


def _shared_sessions(connection: RedisConnection, settings: Settings) -> RedisSessions:
    """Sessions shared through Redis: their events are kept there as long as a client
    may still resume or reuse them."""
    from ._redis_sessions import RedisSessions

    return RedisSessions(
        connection,
        replay_events=settings.replay_events,
        replay_bytes=settings.replay_bytes,
        ttl=max(settings.resume_grace, settings.session_idle_timeout)
        + settings.redis_worker_timeout,
    )


def _sealer(server: Server, settings: Settings) -> StateSealer:
    """What seals ``requestState`` on the stateless wire: the configured keys, or one
    made for this process (state it seals is then refused by every other instance)."""
    keys = settings.state_keys
    if not keys:
        log.info(
            "no state_keys (TRIO_MCP_STATE_KEYS) set: requestState is sealed with a key of "
            "this process alone; set shared keys to serve one server from several processes"
        )
        keys = (generate_key(),)
    audience = settings.state_audience or server.identity.name
    return StateSealer(keys, audience=audience, ttl=settings.state_ttl)
