"""One MCP session: its nursery, its outbound channel, its handlers.

Lifetimes, made visible:

* :meth:`Session.run` owns the session's nursery; it runs until :meth:`Session.close`
  (or the supervisor's own cancellation). Every handler task of the session lives in
  that nursery, so closing the session cancels them all and nothing outlives it.
* Inbound messages arrive through :meth:`Session.deliver`, called by a transport from
  its own task (a POST handler). Pure lifecycle decisions are made by the sans-io
  :class:`~trio_mcp._protocol.ProtocolState`; a request that needs the server runs as
  a task of its own, so a slow tool never delays a fast one.
* Outbound messages go into one bounded memory channel, :attr:`Session.outbound`. The
  transport's writer is its only reader; when the buffer is full an emitter waits, which
  is the backpressure a slow client exerts on its own session and no other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import attrs
import trio

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
    ProtocolState,
    Reply,
    ReplyError,
)
from ._server import Server

log = logging.getLogger("trio_mcp")


class SessionClosed(Exception):
    """The session ended; the transport answers 404 to anything still addressed to it."""


@attrs.frozen
class OutboundMessage:
    """A message on its way to the client: its encoded JSON, and the request it serves
    (so a transport that has one stream per request can route it)."""

    data: str
    related_request: RequestId | None = None


@attrs.define
class _Waiter:
    """A server-to-client request waiting for the client's reply."""

    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | ErrorResponse | None = None


class Session:
    """The state and tasks of one client's MCP session. Made by the supervisor."""

    def __init__(
        self,
        session_id: str,
        server: Server,
        *,
        outbound_buffer: int,
        client_request_timeout: float,
    ) -> None:
        self.id = session_id
        self._server = server
        self.protocol = ProtocolState(server.identity, server.capabilities)
        self._send_channel, self.outbound = trio.open_memory_channel[OutboundMessage](
            outbound_buffer
        )
        self._client_request_timeout = client_request_timeout
        self._nursery: trio.Nursery | None = None
        self._handlers: dict[RequestId, trio.CancelScope] = {}
        self._waiters: dict[RequestId, _Waiter] = {}
        self._next_request_id = 0
        self._log_level: str | None = None
        self.subscriptions: set[str] = set()
        self.closed = False

    # -- lifetime -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the session's nursery until :meth:`close`. Cancelling this task ends the
        session the same way: handlers are cancelled, no reply is sent for them."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._server.subscribe_changes(self._server_event)
                task_status.started()
                await trio.sleep_forever()
        finally:
            # Synchronous, so it runs even under cancellation: the writer sees the end of
            # the channel and finishes the stream.
            self.closed = True
            self._server.unsubscribe_changes(self._server_event)
            self._send_channel.close()

    def close(self) -> None:
        """End the session now. Safe to call more than once and from any task."""
        self.closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- inbound ------------------------------------------------------------------------

    async def deliver(self, messages: Iterable[Message]) -> None:
        """Act on messages the client sent, in order.

        Returns once each has been accepted (its handler started, or its immediate reply
        queued); it does not wait for handlers. Raises :class:`SessionClosed` if the
        session has ended.
        """
        for message in messages:
            if self.closed or self._nursery is None:
                raise SessionClosed(self.id)
            action = self.protocol.receive(message)
            if isinstance(action, Reply):
                await self._emit(result_message(action.request_id, action.result))
            elif isinstance(action, ReplyError):
                await self._emit(error_message(action.request_id, action.error))
            elif isinstance(action, Dispatch):
                self._nursery.start_soon(self._serve, action.request)
            elif isinstance(action, CancelRequest):
                scope = self._handlers.get(action.request_id)
                if scope is not None:
                    scope.cancel()
            elif isinstance(action, DeliverResponse):
                self._route_response(action.request_id, action.response)
            elif isinstance(action, DispatchNotification):
                self._nursery.start_soon(self._serve_notification, action.notification)
            else:
                assert isinstance(action, Ignore)
                log.debug("session %s: ignored a message: %s", self.id[:8], action.why)

    async def _serve(self, request: Request) -> None:
        params = request.params or {}
        meta = params.get("_meta")
        context = Context(self, request.id, meta if isinstance(meta, dict) else None)
        try:
            with trio.CancelScope() as scope:
                self._handlers[request.id] = scope
                try:
                    reply = result_message(
                        request.id, await self._server.handle_request(request, context)
                    )
                except JSONRPCError as exc:
                    reply = error_message(request.id, exc)
                except Exception:
                    log.exception("session %s: %s failed", self.id[:8], request.method)
                    reply = error_message(
                        request.id,
                        JSONRPCError(
                            INTERNAL_ERROR,
                            "Internal error: the server failed while handling this request; "
                            "its log has the details",
                        ),
                    )
                await self._emit(reply, related_request=request.id)
        finally:
            self._handlers.pop(request.id, None)
            self.protocol.finish(request.id)

    async def _serve_notification(self, notification: Notification) -> None:
        context = Context(self, 0, None)
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

    async def _emit(self, message: JSON, *, related_request: RequestId | None = None) -> None:
        try:
            await self._send_channel.send(OutboundMessage(dumps(message), related_request))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise SessionClosed(self.id) from None

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
    ) -> JSON:
        """Send a request to the client and wait for its reply.

        On timeout the client is told to stop (``notifications/cancelled``) and
        :class:`trio.TooSlowError` is raised; on an error reply, :class:`ClientError`.
        """
        self._next_request_id += 1
        request_id = self._next_request_id
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        deadline = self._client_request_timeout if timeout is None else timeout
        try:
            await self._emit(
                request_message(request_id, method, params), related_request=related_request
            )
            with trio.move_on_after(deadline if deadline > 0 else math.inf):
                await waiter.done.wait()
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
        # Called synchronously by the server; sending needs a task of the session's own.
        if self._nursery is None or self.closed or self.protocol.protocol_version is None:
            return
        if event == "list_changed":
            self._nursery.start_soon(
                self._notify_quietly, f"notifications/{detail}/list_changed", None
            )
        elif event == "resource_updated" and detail in self.subscriptions:
            self._nursery.start_soon(
                self._notify_quietly, "notifications/resources/updated", {"uri": detail}
            )

    async def _notify_quietly(self, method: str, params: JSON | None) -> None:
        try:
            await self.notify(method, params)
        except SessionClosed:
            pass
