"""Small ASGI helpers shared by the transports: headers, query, bodies, plain replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

import trio

from ._jsonrpc import (
    INVALID_REQUEST,
    JSON,
    PARSE_ERROR,
    SERVER_BUSY,
    Body,
    InvalidMessage,
    JSONRPCError,
    ParseError,
    dumps,
    error_message,
    parse_body,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected while we were reading its request."""


class BodyTimeout(Exception):
    """The body did not arrive in time: the client sends it too slowly, or not at all."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query_param(scope: Scope, name: str) -> str | None:
    """The first non-empty value of a query parameter, as ``parse_qs`` would give it.

    Every POST of the HTTP+SSE transport looks up its ``session_id`` here, so this scans
    the query once and unquotes only the value it returns (``parse_qs`` unquotes every
    pair and builds a dict of lists)."""
    query = scope.get("query_string", b"").decode("latin-1")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if key == name and value:
            return unquote_plus(value) if "%" in value or "+" in value else value
    return None


def media_type(scope: Scope) -> str | None:
    value = header(scope, b"content-type")
    return value.split(";", 1)[0].strip().lower() if value is not None else None


def has_body(scope: Scope) -> bool:
    """Whether the request carries a body (one that may still be on its way)."""
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return header(scope, b"transfer-encoding") is not None


def close_if_body_unread(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """Wrap a request's channels so that a response started before its body was read
    to the end says ``Connection: close``.

    Refusals (404, 413, a route that takes no body) answer without reading the body.
    The server cannot reuse such a connection: hypercorn drops it, and a client that
    was not told so may send its next request into it, racing the close (a keep-alive
    client has been seen to wait for an answer that never came). Saying so makes the
    client open a fresh connection instead.
    """
    tracking_receive = _TrackingReceive(receive)

    def closing_send(message: dict[str, Any]) -> Awaitable[None]:
        # A plain function returning send's awaitable: no coroutine frame of its own
        # between the handler and the server for every message sent.
        if message["type"] == "http.response.start" and not tracking_receive.body_read:
            headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        return send(message)

    return tracking_receive, closing_send


class _TrackingReceive:
    """``receive``, noting when the body has been read to its end (and passing on
    :func:`received_already`'s question)."""

    __slots__ = ("_receive", "body_read")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.body_read = False

    async def __call__(self) -> dict[str, Any]:
        return self._note(await self._receive())

    def ready(self) -> dict[str, Any] | None:
        message = received_already(self._receive)
        return None if message is None else self._note(message)

    def _note(self, message: dict[str, Any]) -> dict[str, Any]:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_read = True
        return message


def received_already(receive: Receive) -> dict[str, Any] | None:
    """The next message if the host has it already, without waiting; None if it would
    have to wait, or cannot tell (a host whose ``receive`` has no ``ready()``: trio-mcp's
    guest bridge has one, see ``_guest``). A message it returns is consumed."""
    ready = getattr(receive, "ready", None)
    return ready() if ready is not None else None


async def read_body(scope: Scope, receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes without reading it all,
    and one that has not all arrived ``timeout`` seconds after reading began.

    Cancellation: the deadline is a cancel scope around the reads (the first one too: a
    client may send its headers and then nothing), so past it the read is cancelled and
    whatever arrived is dropped; a cancellation from outside passes through unchanged.
    A body the host already holds whole is taken without a deadline: there is nothing
    to wait for, and a cancel scope costs more than the rest of reading it.
    """
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    first = received_already(receive)
    if first is not None and first["type"] == "http.request" and not first.get("more_body"):
        whole: bytes = first.get("body", b"")
        if len(whole) > limit:
            raise BodyTooLarge
        return whole
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(timeout):
        while True:
            message = first if first is not None else await receive()
            first = None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    raise BodyTimeout


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    response_headers: Headers = [(b"content-length", str(len(body)).encode()), *headers]
    if body:
        # No body, no type: a bare 202 is the reply to most POSTs, and every header is
        # validated twice on the way out (by hypercorn and by h11).
        response_headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_json(
    send: Send, status: int, payload: JSON | list[JSON], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = dumps(payload).encode()
    await respond(send, status, body, content_type=b"application/json", headers=headers)


async def respond_error(
    send: Send, status: int, code: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """An HTTP error whose body is a JSON-RPC error object a client can show as is."""
    await respond_json(send, status, error_message(None, JSONRPCError(code, message)), headers)


async def read_jsonrpc_body(
    scope: Scope, receive: Receive, send: Send, limit: int, timeout: float
) -> Body | None:
    """Read and parse a POSTed JSON-RPC body, or answer the error and return None.

    415 for a body that is not declared JSON, 413 past ``limit`` (without reading the
    rest), 408 for one not all arrived within ``timeout`` seconds, 400 with -32700 for
    bytes that are not JSON, and 400 with -32600 errors when any message is invalid: a
    body is accepted whole or refused whole, so the client never has to guess which
    parts of a batch were acted on. A refusal before the end of the body closes the
    connection (:func:`close_if_body_unread`).
    """
    if media_type(scope) != "application/json":
        await respond_error(
            send,
            415,
            INVALID_REQUEST,
            "POST a JSON-RPC message with Content-Type: application/json",
        )
        return None
    try:
        raw = await read_body(scope, receive, limit, timeout)
    except BodyTooLarge:
        await respond_error(send, 413, INVALID_REQUEST, f"the body exceeds {limit} bytes")
        return None
    except BodyTimeout:
        await respond_error(
            send, 408, INVALID_REQUEST, f"the body did not arrive within {timeout:g} s"
        )
        return None
    except ClientGone:
        return None
    try:
        body = parse_body(raw)
    except ParseError as exc:
        await respond_error(send, 400, PARSE_ERROR, f"Parse error: {exc}")
        return None
    invalid = [item for item in body.items if isinstance(item, InvalidMessage)]
    if invalid:
        errors = [error_message(item.id, item.error) for item in invalid]
        await respond_json(send, 400, errors if body.is_batch else errors[0])
        return None
    return body


def accepts(scope: Scope) -> tuple[bool, bool]:
    """(JSON, event stream) acceptable per the Accept header; no header accepts both."""
    value = header(scope, b"accept")
    if value is None:
        return True, True
    types = {part.split(";", 1)[0].strip().lower() for part in value.split(",")}
    anything = "*/*" in types
    return (
        anything or "application/json" in types or "application/*" in types,
        anything or "text/event-stream" in types or "text/*" in types,
    )


async def respond_unavailable(send: Send, message: str, retry_after: int | None) -> None:
    """503, with ``Retry-After`` when the client may usefully try again; the body is a
    JSON-RPC error with the overload code (:data:`SERVER_BUSY`), as every "retry later"
    answer has, and ``message`` says which limit was hit."""
    headers = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
    await respond_error(send, 503, SERVER_BUSY, message, headers)
