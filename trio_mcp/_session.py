"""One MCP session: its nursery, its handlers, its outbound streams, its lifetime.

Lifetimes, made visible:

* :meth:`Session.run` owns the session's nursery and decides when the session ends:
  when :meth:`Session.close` is called, when an HTTP+SSE session's stream has been gone
  longer than the resume grace period, or when a Streamable HTTP session has been idle
  too long. A stdio session ends only when closed: its transport closes it when stdin
  does. Every handler task lives in that nursery, so nothing outlives the session.
* Inbound messages arrive through :meth:`Session.deliver`, called by a transport from
  its own task (a POST handler). Pure lifecycle decisions are made by the sans-io
  :class:`~trio_mcp._protocol.ProtocolState`; a request that needs the server runs as
  a task of its own, so a slow tool never delays a fast one.
* Outbound messages go to an :class:`~trio_mcp._stream.OutboundStream`: the main
  stream, or the stream of the POST that carried the request they belong to. A stream
  is bounded, so a slow client exerts backpressure on its own session and no other.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol

import attrs
import trio

from ._budget import ByteBudget
from ._config import Settings
from ._context import ClientError, Context
from ._jsonrpc import (
    INTERNAL_ERROR,
    JSON,
    ErrorResponse,
    JSONRPCError,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    dumps,
    error_message,
    notification_message,
    request_message,
    result_message,
)
from ._protocol import (
    CancelRequest,
    DeliverResponse,
    Dispatch,
    DispatchNotification,
    Ignore,
    Phase,
    ProtocolState,
    Reply,
    ReplyError,
)
from ._server import Server
from ._stream import OutboundStream

log = logging.getLogger("trio_mcp")

#: Seconds a cancelled request may spend telling the client to stop its own requests.
_CANCEL_NOTICE_TIMEOUT = 1.0

#: Finished request streams kept for a late resumption, per session.
KEPT_REQUEST_STREAMS = 16

TransportKind = Literal["sse", "streamable", "stdio"]

#: Told, each time a session looks again at its lifetime, since when it has been idle
#: (None: it is in use). The supervisor keeps the idle ones in order, to pick one that
#: gives way to a new client when the server is full.
IdleHook = Callable[["Session", "float | None"], None]


_INTERNAL = JSONRPCError(
    INTERNAL_ERROR,
    "Internal error: the server failed while handling this request; its log has the details",
)


class StreamMirror(Protocol):
    """Makes a session's streams when their events are also kept elsewhere (Redis)."""

    def new_stream(
        self,
        session: Session,
        *,
        max_events: int,
        max_bytes: int,
        drop_when_full: bool,
        budget: ByteBudget,
    ) -> OutboundStream: ...

    async def accept(self, session: Session, requests: list[tuple[RequestId, str]]) -> bool:
        """Keep these requests (each with the key of the stream its reply goes to)
        as accepted and unanswered before the client hears they were; False when the
        session is no longer this worker's. Raises StoreUnavailable."""
        ...

    def settled(self, session: Session, request_id: RequestId) -> None:
        """A request accepted earlier was cancelled: it will get no reply."""
        ...


class SessionClosed(Exception):
    """The session ended; the transport answers 404 to anything still addressed to it."""


class SessionOverloaded(Exception):
    """Not even an immediate reply has room: the transport answers 503 with the message,
    which names the limit that was hit."""


@attrs.define
class _Waiter:
    """A server-to-client request waiting for the client's reply."""

    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | ErrorResponse | None = None


class Session:
    """The state and tasks of one client's MCP session. Made by the supervisor."""

    # A server holds one of these per idle client, for hours: slots instead of an
    # instance dict of twenty entries (about a kilobyte a session).
    __slots__ = (
        "__weakref__",
        "_guest_prefix",
        "_handlers",
        "_last_activity",
        "_liveness",
        "_log_level",
        "_mirror",
        "_next_request_id",
        "_nursery",
        "_on_idle",
        "_ready",
        "_routes",
        "_server",
        "_settings",
        "_waiters",
        "budget",
        "closed",
        "id",
        "kind",
        "main",
        "owner",
        "protocol",
        "streams",
        "subscriptions",
    )

    def __init__(
        self,
        session_id: str,
        server: Server,
        settings: Settings,
        kind: TransportKind,
        owner: str | None = None,
        *,
        on_idle: IdleHook | None = None,
        mirror: StreamMirror | None = None,
        guest_prefix: str | None = None,
    ) -> None:
        self.id = session_id
        #: Where its streams' events are also kept (Redis, to share the session), if
        #: anywhere: it makes the streams.
        self._mirror = mirror
        self.kind = kind
        #: The authenticated principal that created the session (None without auth).
        self.owner = owner
        self._server = server
        self._settings = settings
        #: What the session holds in bytes (see :mod:`._budget`): its requests running,
        #: the messages waiting for room on its streams, and its streams' logs.
        self.budget = ByteBudget(settings.max_session_bytes)
        self.protocol = ProtocolState(
            server.identity,
            server.capabilities,
            max_in_flight=settings.max_requests_in_flight,
            budget=self.budget,
        )
        # The standalone stream of Streamable HTTP may never be opened: it must not stall
        # the server's notifications, so it drops its oldest events when full.
        self.main = self._new_stream(drop_when_full=kind == "streamable")
        # Insertion-ordered, oldest first (a dict: an OrderedDict costs far more per session).
        self.streams: dict[str, OutboundStream] = {self.main.key: self.main}
        self._routes: dict[RequestId, OutboundStream] = {}
        self._nursery: trio.Nursery | None = None
        self._handlers: dict[RequestId, trio.CancelScope] = {}
        self._waiters: dict[RequestId, _Waiter] = {}
        self._next_request_id = 0
        self._log_level: str | None = None
        self.subscriptions: set[str] = set()
        self.closed = False
        # Made only if a server-to-client request has to wait for 'initialized'.
        self._ready: trio.Event | None = None
        self._last_activity = trio.current_time()
        # Woken by every touch (a parking lot: it need not be replaced after each one).
        self._liveness = trio.lowlevel.ParkingLot()
        self._on_idle = on_idle
        #: Set on a guest's copy of a session owned by another worker (see
        #: :mod:`._redis_guests`): its requests to the client are ``{prefix}{n}``, so
        #: that replies POSTed to any worker find it, and it hears none of the server's
        #: list changes and resource updates (its owner's streams carry them).
        self._guest_prefix = guest_prefix

    @property
    def is_copy(self) -> bool:
        """Whether this is a guest's copy of a session another worker owns."""
        return self._guest_prefix is not None

    def _new_stream(self, *, drop_when_full: bool = False) -> OutboundStream:
        if self._mirror is not None:
            return self._mirror.new_stream(
                self,
                max_events=self._settings.replay_events,
                max_bytes=self._settings.replay_bytes,
                drop_when_full=drop_when_full,
                budget=self.budget,
            )
        return OutboundStream(
            max_events=self._settings.replay_events,
            max_bytes=self._settings.replay_bytes,
            drop_when_full=drop_when_full,
            budget=self.budget,
        )

    # -- lifetime -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the session's nursery until the session ends (see the module docstring).
        Cancelling this task ends the session the same way."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._guest_prefix is None:
                    self._server.subscribe_changes(self._server_event)
                task_status.started()
                await self._live()
                # Ended from now on: nothing new may start while the nursery winds down.
                self.close()
        finally:
            # Synchronous, so it runs even under cancellation: writers see their streams
            # close and finish their responses.
            self.closed = True
            if self._guest_prefix is None:
                self._server.unsubscribe_changes(self._server_event)
            for stream in self.streams.values():
                stream.close()

    async def _live(self) -> None:
        """Return when the session should end."""
        while not self.closed:
            since = self._note_idleness()
            if since is None:
                deadline = math.inf
            elif self.kind == "sse":
                # An HTTP+SSE session exists for its stream; it may come back within the
                # grace period (same session, same endpoint), else the session ends.
                deadline = since + self._settings.resume_grace
            else:
                deadline = since + self._settings.session_idle_timeout
            if trio.current_time() >= deadline:
                return
            if deadline == math.inf:
                # Most of a session's life (its stream is attached): no cancel scope held.
                await self._liveness.park()
                continue
            with trio.move_on_at(deadline):
                await self._liveness.park()

    def idle_since(self) -> float | None:
        """Since when (trio time) the session has shown no sign of life, or None while
        it has one: an HTTP+SSE session whose stream is attached (or not yet opened), a
        Streamable HTTP session with a stream attached or a request running.

        An idle session ends when its resume grace or idle timeout has run from then,
        or sooner, when the server is full and a new client needs its place."""
        if self.kind == "stdio":
            # One client for the process's life, and no way back once it has gone: the
            # transport closes the session when stdin closes, and nothing else ends it.
            return None
        if self.kind == "sse":
            if self.main.attached or not self.main.ever_attached:
                return None
        else:
            # A handler waiting for room on a stream nobody reads is no sign of life:
            # its client left a call that reports more than the stream keeps, and only
            # the idle timeout can end that wait.
            blocked = sum(stream.blocked for stream in self.streams.values())
            if len(self._handlers) > blocked or any(
                stream.attached for stream in self.streams.values()
            ):
                return None
        return self._last_activity

    def _note_idleness(self) -> float | None:
        """Tell the supervisor (if it asked) whether the session is idle now, and since
        when; returns that too."""
        since = self.idle_since()
        if self._on_idle is not None:
            self._on_idle(self, since)
        return since

    def touch(self) -> None:
        """Note activity: something attached, detached, or arrived."""
        self._last_activity = trio.current_time()
        self._liveness.unpark_all()

    def _recheck_liveness(self) -> None:
        """Have the session's task look again at whether it is idle, without counting
        this as activity (a handler is about to wait on a full stream)."""
        self._liveness.unpark_all()

    def refuse_new_requests(self, reason: str) -> None:
        """Answer every request from now on with an error (the server shuts down)."""
        self.protocol.closing = reason

    async def wait_idle(self) -> None:
        """Return once no request of the session is being handled."""
        while self._handlers:
            await self._liveness.park()

    def answer_running(self, error: JSONRPCError) -> None:
        """Cancel every request still running and answer it with ``error``: a copy
        whose session lives on elsewhere must not leave a call without a reply (a
        session that ends with its calls needs none: its client starts anew). Their
        streams end once the answers are out (see :meth:`wait_unread`)."""
        for request_id in list(self._handlers):
            self._handlers[request_id].cancel()
            with contextlib.suppress(SessionClosed, SessionOverloaded):
                self._emit_nowait(
                    error_message(request_id, error), related_request=request_id, final=True
                )

    async def wait_unread(self) -> None:
        """Return once no client reads any of the session's streams here."""
        while any(stream.attached for stream in self.streams.values()):
            await self._liveness.park()

    def close(self) -> None:
        """End the session now. Safe to call more than once and from any task."""
        self.closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        for stream in self.streams.values():
            stream.close()

    # -- streams --------------------------------------------------------------------------

    def open_request_stream(
        self,
        request_ids: Iterable[RequestId],
        *,
        carry_notifications: bool,
        key: str | None = None,
    ) -> OutboundStream:
        """A stream for the replies to these requests (one Streamable HTTP POST).

        With ``carry_notifications`` false (a client that accepts only JSON) the
        requests' notifications and server-to-client requests go to the main stream.
        ``key`` is the stream's key when another worker chose it (a POST it forwarded).
        """
        stream = self._new_stream()
        if key is not None:
            stream.key = key
        stream.pending = set(request_ids)
        stream.carries_notifications = carry_notifications
        for request_id in stream.pending:
            self._routes[request_id] = stream
        self.streams[stream.key] = stream
        self._forget_old_streams()
        return stream

    def _forget_old_streams(self) -> None:
        finished = [k for k, s in self.streams.items() if s.complete and s is not self.main]
        for key in finished[: max(0, len(finished) - KEPT_REQUEST_STREAMS)]:
            self.streams.pop(key).release()

    def forget_stream(self, stream: OutboundStream) -> None:
        """Let a finished request stream go now: it was answered as one JSON body, so
        its client has no event id to resume it with."""
        if stream is not self.main and self.streams.pop(stream.key, None) is not None:
            stream.release()

    def _shed_finished_streams(self) -> None:
        """The budget is spent: let the finished streams kept for a late resumption go,
        oldest first, before any request is refused."""
        finished = [
            key
            for key, stream in self.streams.items()
            if stream.complete and not stream.attached and stream is not self.main
        ]
        for key in finished:
            if not self.budget.spent:
                break
            self.streams.pop(key).release()

    def find_stream(self, key: str) -> OutboundStream | None:
        return self.streams.get(key)

    def is_in_flight(self, request_id: RequestId) -> bool:
        """Whether a request with this id is still being handled or answered."""
        return request_id in self._routes or self.protocol.is_in_flight(request_id)

    # -- inbound ------------------------------------------------------------------------

    async def deliver(
        self, messages: Sequence[Message], *, size: int = 0, recorded: bool = False
    ) -> None:
        """Act on messages the client sent, in order; ``size`` is the length of the
        body that carried them, shared among them: each request dispatched is charged
        its share of the session's byte budget until it is answered.

        Returns once each has been accepted (its handler started, or its immediate reply
        queued); it waits neither for handlers nor for the client to read, so a POST is
        never slowed by a stream. Raises :class:`SessionClosed` if the session has
        ended, :class:`SessionOverloaded` if the client has left so much unread that
        even an immediate reply has no room.
        """
        if self._mirror is not None and not recorded:
            await self._record(messages)
        # Activity, but no change that could bring the session's end closer: the
        # session's task need not wake (it rereads the time when its deadline passes).
        self._last_activity = trio.current_time()
        share = size // len(messages) if messages else 0
        if self.budget.spent:
            self._shed_finished_streams()
        try:
            for message in messages:
                if self.closed or self._nursery is None:
                    raise SessionClosed(self.id)
                action = self.protocol.receive(message)
                if self.protocol.phase is Phase.READY and self._ready is not None:
                    self._ready.set()
                if isinstance(action, Reply):
                    reply = result_message(action.request_id, action.result)
                    self._emit_nowait(reply, related_request=action.request_id, final=True)
                elif isinstance(action, ReplyError):
                    reply = error_message(action.request_id, action.error)
                    self._emit_nowait(reply, related_request=action.request_id, final=True)
                elif isinstance(action, Dispatch):
                    # The scope exists before the task runs, so a cancellation that arrives
                    # in the same body (or before the task is scheduled) still applies.
                    scope = trio.CancelScope()
                    self._handlers[action.request.id] = scope
                    self.budget.take(share)
                    self._nursery.start_soon(self._serve, action.request, scope, share)
                elif isinstance(action, CancelRequest):
                    handler = self._handlers.get(action.request_id)
                    if handler is not None:
                        handler.cancel()
                elif isinstance(action, DeliverResponse):
                    self._route_response(action.request_id, action.response)
                elif isinstance(action, DispatchNotification):
                    self._nursery.start_soon(self._serve_notification, action.notification)
                else:
                    assert isinstance(action, Ignore)
                    log.debug("session %s: ignored a message: %s", self.id[:8], action.why)
        finally:
            # The supervisor keeps idle sessions in order of their last sign of life.
            self._note_idleness()

    async def _record(self, messages: Sequence[Message]) -> None:
        """Make the requests durable where the session is shared (``recorded``: a
        forwarded POST already is), so that a new owner answers them if this worker
        dies; raises SessionOverloaded (503) while that store cannot be reached."""
        from ._task_store import StoreUnavailable

        assert self._mirror is not None
        requests = [
            (m.id, self._routes.get(m.id, self.main).key)
            for m in messages
            if isinstance(m, Request)
        ]
        if not requests:
            return
        try:
            kept = await self._mirror.accept(self, requests)
        except StoreUnavailable as exc:
            raise SessionOverloaded(str(exc)) from None
        if not kept:
            raise SessionClosed(self.id)

    async def _serve(self, request: Request, scope: trio.CancelScope, size: int) -> None:
        """Handle a request, then let go of it: its ``size`` bytes, charged when it was
        dispatched, are given back once it is answered (or cancelled).

        ``scope`` is cancelled by the client's cancellation, and by the handler's time
        limit (a tool's timeout, see :class:`_HandlerDeadline`): a cancelled request is
        not answered, one past its time limit is answered as its handler said it would be.
        """
        answered = False
        reply: str | None = None
        limit = _HandlerDeadline(scope)
        try:
            params = request.params or {}
            meta = params.get("_meta")
            context = Context(self, request.id, meta if isinstance(meta, dict) else None)
            context.time_limit = limit
            with scope:
                await trio.lowlevel.checkpoint_if_cancelled()
                reply = await self._answer(request, context)
                # A handler may finish without reaching a checkpoint after the client
                # cancelled it; a cancelled request is still not answered.
                if not scope.cancel_called:
                    await self._emit(reply, related_request=request.id, final=True)
                    answered = True
            if not answered and limit.expired():
                # Past the limit: the reply if the handler made it in time, else what the
                # handler said a timeout is answered with. No longer cancellable.
                if reply is None:
                    reply = dumps(result_message(request.id, limit.answer()))
                try:
                    await self._emit(reply, related_request=request.id, final=True)
                    answered = True
                except SessionClosed:
                    # Its stream ended meanwhile (the session's end, or a guest's stream a
                    # sweep answered): no one left to answer, and no reason to fail the
                    # session's other calls.
                    pass
        finally:
            self.budget.give(size)
            self._handlers.pop(request.id, None)
            self.protocol.finish(request.id)
            if scope.cancel_called and not answered:
                self._settle_route(request.id)
                if self._mirror is not None:
                    self._mirror.settled(self, request.id)
            if not self._handlers and (self.kind == "streamable" or self.protocol.closing):
                # Idle now: a Streamable HTTP session's idle timeout, or a drain, waits
                # for this. (An HTTP+SSE session's lifetime is its stream's, so waking
                # its task after every call would be a task switch for nothing.)
                self.touch()
            else:
                self._last_activity = trio.current_time()
                self._note_idleness()

    async def _answer(self, request: Request, context: Context) -> str:
        """The encoded reply to a request: its result, or the error it deserves.

        Encoding happens here, inside the handler's error handling, so that a result
        that is not JSON (a handler returned bytes, NaN, a lone surrogate...) becomes an
        internal error for this one request rather than an exception in the session.
        """
        try:
            result = await self._server.handle_request(request, context)
            return dumps(result_message(request.id, result))
        except JSONRPCError as exc:
            try:
                return dumps(error_message(request.id, exc))
            except (TypeError, ValueError):
                log.error("session %s: %s: error data is not JSON", self.id[:8], request.method)
                return dumps(error_message(request.id, JSONRPCError(exc.code, exc.message)))
        except Exception:
            log.exception("session %s: %s failed", self.id[:8], request.method)
            return dumps(error_message(request.id, _INTERNAL))

    async def _serve_notification(self, notification: Notification) -> None:
        context = Context(self, None, None)
        try:
            await self._server.handle_notification(notification, context)
        except Exception:
            log.exception("session %s: %s failed", self.id[:8], notification.method)

    def _route_response(self, request_id: RequestId, response: Response | ErrorResponse) -> None:
        waiter = self._waiters.get(request_id)
        if waiter is None or waiter.done.is_set():
            log.debug("session %s: reply to unknown request %r dropped", self.id[:8], request_id)
            return
        waiter.response = response
        waiter.done.set()

    # -- outbound (the SessionPort a Context talks to) ------------------------------------

    @property
    def protocol_version(self) -> str:
        return self.protocol.protocol_version or ""

    @property
    def client_capabilities(self) -> JSON:
        return self.protocol.client_capabilities

    @property
    def log_level(self) -> str | None:
        return self._log_level

    def set_log_level(self, level: str) -> None:
        self._log_level = level

    async def _emit(
        self,
        message: JSON | str,
        *,
        related_request: RequestId | None = None,
        final: bool = False,
    ) -> None:
        """Queue a message (or its encoding) on the stream it belongs to.

        Waits while that stream is full; raises :class:`SessionClosed` once the session
        has ended, and TypeError/ValueError for a message that is not JSON."""
        data = message if isinstance(message, str) else dumps(message)
        stream = self._stream_for(related_request, final)
        try:
            await stream.append(data, response=final, on_wait=self._recheck_liveness)
        except trio.ClosedResourceError:
            raise SessionClosed(self.id) from None
        if final and related_request is not None:
            self._settle_route(related_request)

    def _stream_for(self, related_request: RequestId | None, final: bool) -> OutboundStream:
        if related_request is not None:
            routed = self._routes.get(related_request)
            if routed is not None and (final or routed.carries_notifications):
                return routed
        return self.main

    def _emit_nowait(
        self, message: JSON, *, related_request: RequestId | None = None, final: bool = False
    ) -> None:
        """:meth:`_emit` without waiting, for senders that must not wait on the client."""
        try:
            added = self._stream_for(related_request, final).append_nowait(
                dumps(message), response=final
            )
        except trio.ClosedResourceError:
            raise SessionClosed(self.id) from None
        if not added:
            raise SessionOverloaded(
                "the session's stream holds twice replay_events or replay_bytes unread: "
                "read it before sending more"
            )
        if final and related_request is not None:
            self._settle_route(related_request)

    def _settle_route(self, request_id: RequestId) -> None:
        """The request is answered (or will never be): its stream may be complete."""
        stream = self._routes.pop(request_id, None)
        if stream is not None:
            stream.pending.discard(request_id)
            if not stream.pending:
                stream.finish()

    async def notify(
        self, method: str, params: JSON | None, *, related_request: RequestId | None = None
    ) -> None:
        await self._emit(notification_message(method, params), related_request=related_request)

    async def request(
        self,
        method: str,
        params: JSON | None,
        *,
        related_request: RequestId | None = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        """Send a request to the client and wait for its reply (``key`` names an
        answer only on the stateless wire; a session needs no names).

        On timeout the client is told to stop (``notifications/cancelled``) and
        :class:`trio.TooSlowError` is raised; on an error reply, :class:`ClientError`.
        """
        self._next_request_id += 1
        request_id: RequestId = self._next_request_id
        if self._guest_prefix is not None:
            request_id = f"{self._guest_prefix}{request_id}"
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        deadline = self._settings.client_request_timeout if timeout is None else timeout
        try:
            with trio.move_on_after(deadline if deadline > 0 else math.inf):
                # The lifecycle asks for no requests before the client says 'initialized'
                # (over HTTP it may arrive after a request that is already running).
                if self.protocol.phase is not Phase.READY:
                    if self._ready is None:
                        self._ready = trio.Event()
                    await self._ready.wait()
                await self._emit(
                    request_message(request_id, method, params), related_request=related_request
                )
                await waiter.done.wait()
        except trio.Cancelled:
            # The request this serves was cancelled: tell the client to stop too. Shielded
            # and bounded, since cancellation is exactly when it must still go out.
            with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_NOTICE_TIMEOUT):
                await self._notify_quietly(
                    "notifications/cancelled",
                    {"requestId": request_id, "reason": "the request it served was cancelled"},
                    related_request=related_request,
                )
            raise
        finally:
            del self._waiters[request_id]
        response = waiter.response
        if response is None:
            await self.notify(
                "notifications/cancelled",
                {"requestId": request_id, "reason": f"no reply within {deadline:g} s"},
                related_request=related_request,
            )
            raise trio.TooSlowError(f"the client did not answer {method} within {deadline:g} s")
        if isinstance(response, ErrorResponse):
            error = response.error
            raise ClientError(int(error["code"]), str(error["message"]), error.get("data"))
        return response.result

    def _server_event(self, event: str, detail: str) -> None:
        # Called synchronously by the server for every session at once: queued without
        # waiting (and without a task per session), so one slow client delays no one.
        if self._nursery is None or self.closed or self.protocol.protocol_version is None:
            return
        if event == "list_changed":
            # Only for lists this session was told change (its declared capabilities).
            declared = self.protocol.server_capabilities.get(detail)
            if not (isinstance(declared, dict) and declared.get("listChanged")):
                return
            message = notification_message(f"notifications/{detail}/list_changed", None)
        elif event == "resource_updated" and detail in self.subscriptions:
            message = notification_message("notifications/resources/updated", {"uri": detail})
        else:
            return
        try:
            self._emit_nowait(message)
        except SessionOverloaded:
            log.warning("session %s: dropped %s, the client reads nothing", self.id[:8], event)
        except SessionClosed:
            pass

    async def _notify_quietly(
        self, method: str, params: JSON | None, *, related_request: RequestId | None = None
    ) -> None:
        try:
            await self.notify(method, params, related_request=related_request)
        except SessionClosed:
            pass


class _HandlerDeadline:
    """A request's time limit (:class:`~trio_mcp._context.TimeLimit`) kept on the cancel
    scope its handler runs in: setting a deadline on a scope already entered costs a
    quarter of entering and leaving one more (2.3 against 9 µs), and under uvicorn the
    scopes a /sse call entered were a sixth of its time."""

    __slots__ = ("_expires", "_on_expiry", "_scope")

    def __init__(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        self._expires = math.inf
        self._on_expiry: Callable[[], JSON] | None = None

    def start(self, seconds: float, on_expiry: Callable[[], JSON]) -> None:
        self._expires = self._scope.deadline = trio.current_time() + seconds
        self._on_expiry = on_expiry

    def pause(self) -> None:
        self._expires = self._scope.deadline = math.inf

    def expired(self) -> bool:
        """Whether the limit has passed (so the scope was cancelled by it, not only by
        the client)."""
        return self._on_expiry is not None and trio.current_time() >= self._expires

    def answer(self) -> JSON:
        assert self._on_expiry is not None
        return self._on_expiry()
