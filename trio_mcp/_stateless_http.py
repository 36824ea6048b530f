"""The stateless wire of MCP 2026-07-28 over HTTP: one POST, one answer.

:class:`~trio_mcp._streamable.StreamableHttpTransport` hands over every POST that names
no session and speaks this revision (see
:func:`~trio_mcp._stateless.routes_statelessly`). The request is admitted or refused
(:meth:`StatelessService.admit`: 400, 404 with the spec's codes), then answered in this
very task: as one JSON body, or, once the handler sends a notification (progress, or a
log the request asked for), as an event stream that ends with the response. The client
closing its connection cancels the handler's task: on this wire that *is* the
cancellation, and nothing more is sent for the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from ._auth import PRINCIPAL_KEY
from ._cutoff import connection_of, cut_off
from ._eventstream import encode_event
from ._heartbeat import stall_watch
from ._http import Receive, Scope, Send, respond, respond_json
from ._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSON,
    METHOD_NOT_FOUND,
    Body,
    Notification,
    Request,
    dumps,
    error_message,
)
from ._stateless import (
    HEADER_MISMATCH,
    MISSING_REQUIRED_CAPABILITY,
    UNSUPPORTED_PROTOCOL_VERSION,
    Refusal,
    RequestMeta,
)
from ._stateless_call import Answer, StatelessService
from ._streaming import STREAM_HEADERS

#: The HTTP status of a response whose JSON-RPC error has this code; others are 200.
ERROR_STATUS: Final = {
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

#: ``listen(scope, receive, send, request, meta)``: serves ``subscriptions/listen``.
Listener = Callable[[Scope, Receive, Send, Request, RequestMeta], Awaitable[None]]


def request_headers(scope: Scope) -> dict[str, str]:
    """Header names in lower case -> value; a repeated header's values joined by ", "
    (so a second, contradicting ``Mcp-Method`` can never match the body)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class StatelessHttpTransport:
    def __init__(
        self,
        service: StatelessService,
        listen: Listener | None = None,
        *,
        stalled_client_timeout: float = 30.0,
    ) -> None:
        self._service = service
        self._listen = listen
        self._stalled_client_timeout = stalled_client_timeout

    async def post(
        self, scope: Scope, receive: Receive, send: Send, body: Body, json_ok: bool, sse_ok: bool
    ) -> None:
        if body.is_batch:
            await _refuse(
                send, None, Refusal(400, INVALID_REQUEST, "POST one message, not a batch")
            )
            return
        message = body.messages[0]
        if isinstance(message, Notification):
            # This revision defines no client notifications over HTTP; accepting one
            # costs nothing, and refusing it would break clients that still send them.
            await respond(send, 202)
            return
        if not isinstance(message, Request):
            await _refuse(
                send,
                None,
                Refusal(400, INVALID_REQUEST, "a client sends no responses on this wire"),
            )
            return
        try:
            meta = self._service.admit(message, request_headers(scope))
        except Refusal as refusal:
            await _refuse(send, message, refusal)
            return
        if message.method == "subscriptions/listen":
            if self._listen is None:
                await _refuse(send, message, Refusal(404, METHOD_NOT_FOUND, "Method not found"))
                return
            await self._listen(scope, receive, send, message, meta)
            return
        response = _Response(send, json_ok, sse_ok, scope, self._stalled_client_timeout)
        await self._answer(scope, receive, send, message, meta, response)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        meta: RequestMeta,
        response: _Response,
    ) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        reply: Answer | None = None
        with trio.CancelScope() as call:
            response.cancel_scope = call
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_gone, receive, call)
                reply = await self._service.answer(
                    request, meta, None if principal is None else str(principal), response.notify
                )
                nursery.cancel_scope.cancel()
        if reply is None or response.stalled:
            return  # the client left or stopped reading: the call was cancelled
        with trio.CancelScope() as finishing:
            response.cancel_scope = finishing
            await response.finish(reply)


async def _cancel_when_gone(receive: Receive, call: trio.CancelScope) -> None:
    """Cancel ``call`` when the client disconnects (the body was read already, so the
    next message can only be the disconnect)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.cancel()
            return


async def _refuse(send: Send, request: Request | None, refusal: Refusal) -> None:
    await respond_json(
        send, refusal.status, error_message(request.id if request else None, refusal.error)
    )


class _Response:
    """One request's response: a JSON body, unless a notification comes first, which
    turns it into an event stream (when the client takes one; else it is dropped), or
    the client takes only event streams.

    Every send is watched by the stall timer (:func:`~trio_mcp._heartbeat.stall_watch`):
    a client that takes nothing for ``stalled_client_timeout`` has its call cancelled
    and its connection reset, since a host may not let the send itself be cancelled.
    """

    __slots__ = (
        "_json_ok",
        "_request",
        "_send",
        "_sse_ok",
        "_stalls",
        "_streaming",
        "cancel_scope",
        "sending",
        "stalled",
    )

    def __init__(
        self, send: Send, json_ok: bool, sse_ok: bool, request: Scope, stall_timeout: float
    ) -> None:
        self._send = send
        self._json_ok = json_ok
        self._sse_ok = sse_ok
        self._streaming = False
        self._request = request
        self._stalls = stall_watch(stall_timeout)
        #: What a stall cancels: the call while it runs, then the final send.
        self.cancel_scope: trio.CancelScope | None = None
        self.sending = False
        self.stalled = False

    async def _deliver(self, message: dict[str, Any]) -> None:
        self._stalls.touch(self)
        self.sending = True
        try:
            await self._send(message)
        finally:
            self.sending = False
            self._stalls.forget(self)

    def on_heartbeat_due(self) -> None:
        """Never due: a response is not on the heartbeat timer."""

    def on_stalled(self) -> None:
        self.stalled = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()
        connection = connection_of(self._request)
        if connection is not None:
            cut_off(connection, lambda: self.sending)

    async def _start_stream(self) -> None:
        self._streaming = True
        await self._deliver(
            {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
        )

    async def notify(self, message: JSON) -> None:
        if not self._sse_ok:
            return
        if not self._streaming:
            await self._start_stream()
        await self._deliver(
            {
                "type": "http.response.body",
                "body": encode_event(dumps(message), event="message"),
                "more_body": True,
            }
        )

    async def finish(self, reply: Answer) -> None:
        if not self._streaming and not self._json_ok:
            await self._start_stream()
        if self._streaming:
            await self._deliver(
                {
                    "type": "http.response.body",
                    "body": encode_event(reply.text, event="message"),
                    "more_body": False,
                }
            )
            return
        # Once streaming, the status is sent; before, an error has the status it maps to.
        status = 200 if reply.error_code is None else ERROR_STATUS.get(reply.error_code, 200)
        headers: list[tuple[bytes, bytes]] = []
        if reply.retry_after is not None:
            # The shared store is out of reach: "come back shortly", as HTTP says it.
            status = 503
            headers.append((b"retry-after", str(reply.retry_after).encode()))
        await respond(
            self._deliver,
            status,
            reply.text.encode(),
            content_type=b"application/json",
            headers=headers,
        )
