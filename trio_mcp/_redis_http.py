"""The HTTP edge of sessions owned by another worker (``Settings.redis_url``).

The transports look a session up in this worker first; when it is not here, they hand
the request to :class:`RemoteSessionsHttp`, which answers it through Redis
(:mod:`._redis_sessions`): a Streamable HTTP call that changes nothing of its session
runs here, as a guest of it (:mod:`._redis_guests`); any other POST is forwarded to the
session's owner and answered 202 once it is durably on the owner's control stream (a
Streamable HTTP POST with requests then serves their replies, read back from Redis); a
GET or a resumption serves the stream from Redis, attached to the worker writing it.
What the client sees is what it would see on the owner: the same statuses, the same
event ids.

While Redis cannot be reached, each of these is answered 503 with ``Retry-After``;
streams already open stay open (their reader retries).
"""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import quote

import trio

from ._config import Settings
from ._eventstream import encode_event
from ._http import Receive, Scope, Send, respond, respond_error, respond_unavailable
from ._jsonrpc import INVALID_REQUEST, Body, Message, Request
from ._protocol import version_at_least
from ._redis_guests import GuestCalls, RequestInFlight, runs_as_guest
from ._redis_sessions import Forwarded, Lookup, RedisSessions, RemoteStream, SharedSession
from ._session import SessionClosed, SessionOverloaded
from ._stream import new_stream_key
from ._streaming import STREAM_HEADERS, answer_plainly, serve_replies, serve_stream
from ._supervisor import NotServing
from ._task_store import StoreUnavailable

SESSION_HEADER: Final = b"mcp-session-id"
_UNKNOWN: Final = "unknown or ended session: start a new one with 'initialize'"


class _Owner:
    """What :func:`serve_stream` tells of its client's comings and goings: the owner
    hears of them through attach/detach, so nothing is left to do here."""

    __slots__ = ("id",)

    def __init__(self, session_id: str) -> None:
        self.id = session_id

    def touch(self) -> None:
        pass


class RemoteSessionsHttp:
    def __init__(self, sessions: RedisSessions, settings: Settings) -> None:
        self.sessions = sessions
        self._settings = settings

    # -- HTTP+SSE ---------------------------------------------------------------------

    async def sse_post(
        self, scope: Scope, send: Send, session_id: str, principal: str | None, body: Body
    ) -> None:
        refusal = _initialize_in_batch(body)
        if refusal is not None:
            await respond_error(send, 400, INVALID_REQUEST, refusal)
            return
        forwarded = await self._forward(
            send,
            "unknown or ended session: open a new one with GET /sse",
            session_id,
            principal,
            "sse",
            body,
        )
        if forwarded is not None:
            await respond(send, 202)

    async def sse_resume(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        seq: int,
        principal: str | None,
    ) -> bool:
        """Resume an HTTP+SSE stream of another worker's session; False (nothing sent)
        when there is none to resume (the client then gets a new session)."""
        try:
            found = await self.sessions.lookup("", key, principal)
        except StoreUnavailable:
            return False
        if found is None or found.session.kind != "sse" or found.session.main != key:
            return False
        if not _replayable(found, seq):
            return False
        endpoint = (
            f"{scope.get('root_path', '')}{self._settings.messages_path}"
            f"?session_id={quote(found.session.id)}"
        )
        preamble = encode_event(
            endpoint,
            event="endpoint",
            event_id=f"{key}.{seq}",
            retry_ms=self._settings.sse_retry_ms,
        )
        await self._serve(found.session, key, seq, scope, receive, send, preamble, STREAM_HEADERS)
        return True

    # -- Streamable HTTP --------------------------------------------------------------

    async def streamable_post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        session_id: str,
        principal: str | None,
        body: Body,
        json_ok: bool,
        sse_ok: bool,
    ) -> None:
        refusal = _initialize_in_batch(body)
        if refusal is not None:
            await respond_error(send, 400, INVALID_REQUEST, refusal)
            return
        guests = self.sessions.guests
        if guests is not None and guests.hosting:
            request = runs_as_guest(body, sse_ok)
            if request is not None:
                await self._run_here(
                    guests, scope, receive, send, session_id, principal, request, body.size, json_ok
                )
                return
        requests = [item for item in body.messages if isinstance(item, Request)]
        if len({request.id for request in requests}) < len(requests):
            await respond_error(
                send, 400, INVALID_REQUEST, "request ids must be unique within a batch"
            )
            return
        if not requests:
            if await self._forward(send, _UNKNOWN, session_id, principal, "streamable", body):
                await respond(send, 202, b"")
            return
        # The replies' stream is read from Redis here, from before the POST is forwarded,
        # so this worker's reader names it in the same round as the forwarding; the
        # owner counts this reader itself when it opens the stream.
        key = new_stream_key()
        stream = self.sessions.tail(session_id, key, 0, owner=None)
        try:
            shared = await self._forward(
                send,
                _UNKNOWN,
                session_id,
                principal,
                "streamable",
                body,
                stream_key=key,
                carry_notifications=sse_ok,
            )
            if shared is None:
                return
            session_header = [(SESSION_HEADER, session_id.encode())]
            if json_ok:
                wait = self._settings.json_reply_wait if sse_ok else math.inf
                responses = None
                with trio.move_on_after(wait):
                    responses = await stream.plain_responses()
                if responses is not None:
                    await answer_plainly(send, stream, responses, body.is_batch, session_header)
                    return
            await serve_stream(
                _Owner(session_id),
                stream,
                receive,
                send,
                self._settings,
                cursor=0,
                preamble=_priming(self._settings, shared.version, stream, 0),
                headers=STREAM_HEADERS + session_header,
                take_over=False,
                scope=scope,
            )
        finally:
            self.sessions.untail(stream, owner=None)

    def owner_took(self, session_id: str, messages: list[Message]) -> None:
        """A POST the owner takes itself: the client's replies and cancellations in it
        that concern calls a guest runs go to that guest too."""
        guests = self.sessions.guests
        if guests is not None and any(not isinstance(m, Request) for m in messages):
            guests.route_replies(session_id, messages)
            guests.route_cancels(session_id, messages)

    async def _run_here(
        self,
        guests: GuestCalls,
        scope: Scope,
        receive: Receive,
        send: Send,
        session_id: str,
        principal: str | None,
        request: Request,
        size: int,
        json_ok: bool,
    ) -> None:
        """Run the POST's one request here, as a guest of its session (see
        :mod:`._redis_guests`), and answer it as the owner would."""
        key = new_stream_key()
        try:
            session = await guests.join(session_id, principal, request.id, key)
        except RequestInFlight:
            await _refuse_id_in_flight(send, request)
            return
        except StoreUnavailable as exc:
            await respond_unavailable(send, str(exc), exc.retry_after)
            return
        except NotServing as exc:
            await respond_unavailable(send, str(exc), exc.retry_after or 1)
            return
        if session is None:
            await respond_error(send, 404, INVALID_REQUEST, _UNKNOWN)
            return
        stream = session.open_request_stream([request.id], carry_notifications=True, key=key)
        if json_ok:
            stream.hold()
        try:
            await guests.deliver(session, request, size)
        except (SessionClosed, SessionOverloaded) as exc:
            # The copy here ended (or is full), not necessarily the session: the client
            # sends again, and learns then whether the session lives (404 if not).
            guests.abandon(session_id, request.id)
            reason = (
                "this worker's copy of the session ended"
                if isinstance(exc, SessionClosed)
                else str(exc)
            )
            await respond_unavailable(send, reason, 1)
            return
        await serve_replies(
            session,
            stream,
            scope,
            receive,
            send,
            self._settings,
            json_ok=json_ok,
            sse_ok=True,
            batch=False,
            headers=[(SESSION_HEADER, session_id.encode())],
            preamble=_priming(self._settings, session.protocol_version, None, 0, key),
        )

    async def _forward(
        self,
        send: Send,
        unknown: str,
        session_id: str,
        principal: str | None,
        kind: str,
        body: Body,
        *,
        stream_key: str = "",
        carry_notifications: bool = True,
    ) -> SharedSession | None:
        """Forward a POST's messages to their session's owner; -> the session, or None
        once the refusal is answered (``unknown`` says what a 404 means)."""
        try:
            return await self.sessions.forward(
                session_id,
                principal,
                kind,
                body.messages,
                batch=body.is_batch,
                stream_key=stream_key,
                carry_notifications=carry_notifications,
                size=body.size,
            )
        except Forwarded as exc:
            await respond_error(
                send, exc.status, INVALID_REQUEST, str(exc) if exc.status == 400 else unknown
            )
        except StoreUnavailable as exc:
            await respond_unavailable(send, str(exc), exc.retry_after)
        return None

    async def streamable_lookup(
        self, send: Send, session_id: str, principal: str | None, key: str = ""
    ) -> Lookup | None:
        """The session (and the stream ``key``, or its main stream) for a GET or a
        DELETE, or None after answering 404 or 503."""
        try:
            found = await self.sessions.lookup(session_id, key, principal)
        except StoreUnavailable as exc:
            await respond_unavailable(send, str(exc), exc.retry_after)
            return None
        if found is None or found.session.kind != "streamable":
            if key:
                await respond_error(
                    send, 400, INVALID_REQUEST, "Last-Event-ID names no stream of this session"
                )
            else:
                await respond_error(
                    send,
                    404,
                    INVALID_REQUEST,
                    "unknown or ended session: start a new one with 'initialize'",
                )
            return None
        return found

    async def streamable_get(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        session_id: str,
        principal: str | None,
        resume: tuple[str, int] | None,
    ) -> None:
        key = resume[0] if resume is not None else ""
        found = await self.streamable_lookup(send, session_id, principal, key)
        if found is None:
            return
        if resume is None:
            # A new GET: from what Redis holds now on (its client has no event id).
            cursor = found.last
            key = found.session.main
            preamble = _priming(
                self._settings, found.session.version, None, cursor, found.session.main
            )
        else:
            cursor = resume[1]
            if not _replayable(found, cursor):
                await respond_error(
                    send,
                    400,
                    INVALID_REQUEST,
                    "the events after that Last-Event-ID are no longer kept",
                )
                return
            preamble = b""
        await self._serve(
            found.session,
            key,
            cursor,
            scope,
            receive,
            send,
            preamble,
            STREAM_HEADERS,
            runner=found.runner,
        )

    async def streamable_delete(self, send: Send, session_id: str, principal: str | None) -> None:
        found = await self.streamable_lookup(send, session_id, principal)
        if found is None:
            return
        self.sessions.end_remote(found.session)
        await respond(send, 200, b"")

    # -- serving a stream from Redis ---------------------------------------------------

    async def _serve(
        self,
        session: SharedSession,
        key: str,
        cursor: int,
        scope: Scope,
        receive: Receive,
        send: Send,
        preamble: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        runner: str = "",
    ) -> None:
        """Serve the stream ``key`` from Redis; its writer (the owner, or the guest
        ``runner`` of the call it answers) is told a client reads it here."""
        writer = runner or session.owner
        recorded = not runner
        stream = self.sessions.tail(session.id, key, cursor, owner=writer, recorded=recorded)
        try:
            await serve_stream(
                _Owner(session.id),
                stream,
                receive,
                send,
                self._settings,
                cursor=cursor,
                preamble=preamble,
                headers=headers,
                take_over=True,
                scope=scope,
            )
        finally:
            self.sessions.untail(stream, owner=writer, recorded=recorded)


async def _refuse_id_in_flight(send: Send, request: Request) -> None:
    await respond_error(
        send,
        400,
        INVALID_REQUEST,
        f"request ids must be unique among the session's requests in flight: {[request.id]}",
    )


def _replayable(found: Lookup, seq: int) -> bool:
    """Whether Redis still holds every event after ``seq`` (and ``seq`` was one)."""
    if seq < 0 or seq > found.last:
        return False
    return found.first == 0 or seq + 1 >= found.first


def _initialize_in_batch(body: Body) -> str | None:
    if body.is_batch and any(
        isinstance(item, Request) and item.method == "initialize" for item in body.messages
    ):
        return "'initialize' must be sent alone, not in a batch"
    return None


def _priming(
    settings: Settings,
    version: str,
    stream: RemoteStream | None,
    cursor: int,
    key: str = "",
) -> bytes:
    """As the owner's transport primes an event stream (2025-11-25 on)."""
    if not version_at_least(version, "2025-11-25"):
        return b""
    stream_key = stream.key if stream is not None else key
    return encode_event("", event_id=f"{stream_key}.{cursor}", retry_ms=settings.sse_retry_ms)
