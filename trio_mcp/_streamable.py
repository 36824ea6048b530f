"""The Streamable HTTP transport (MCP 2025-03-26 to 2025-11-25), on one endpoint.

* ``POST /mcp`` carries client messages. ``initialize`` (without ``Mcp-Session-Id``)
  creates a session whose id comes back in that header; everything else must name it
  (400 without, 404 for an unknown or ended one). Notifications and responses alone get
  ``202``. Requests get their replies on a stream of their own: answered as one JSON
  body while nothing but responses has been emitted, as an event stream as soon as a
  handler sends a notification or a request first (or when the client takes only
  event streams). An event stream starts with a priming event, so a client that loses
  the connection can resume it with ``GET`` and ``Last-Event-ID``; the handlers go on
  regardless, since a dropped connection is not a cancellation.
* ``GET /mcp`` opens the session's standalone stream for messages not tied to a
  request (one writer at a time: 409 while one is attached), or, with
  ``Last-Event-ID``, resumes the stream that id came from.
* ``DELETE /mcp`` ends the session.

This module maps HTTP to session calls and session failures to statuses, like
:mod:`trio_mcp._sse`; it knows nothing of tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._auth import PRINCIPAL_KEY
from ._config import Settings
from ._eventstream import encode_event
from ._http import (
    Receive,
    Scope,
    Send,
    accepts,
    header,
    read_jsonrpc_body,
    respond,
    respond_error,
    respond_unavailable,
)
from ._jsonrpc import INVALID_REQUEST, Request
from ._protocol import SUPPORTED_VERSIONS, version_at_least
from ._session import Session, SessionClosed, SessionOverloaded
from ._stateless import is_stateless_version, routes_statelessly
from ._stateless_http import StatelessHttpTransport
from ._stream import OutboundStream, StreamBusy, StreamGap
from ._streaming import parse_event_id, serve_replies, serve_stream
from ._supervisor import NotServing, SessionSupervisor

if TYPE_CHECKING:
    from ._redis_http import RemoteSessionsHttp

SESSION_HEADER: Final = b"mcp-session-id"
VERSION_HEADER: Final = b"mcp-protocol-version"


class StreamableHttpTransport:
    def __init__(
        self,
        supervisor: SessionSupervisor,
        settings: Settings,
        stateless: StatelessHttpTransport | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._settings = settings
        #: Serves the POSTs of MCP 2026-07-28, which name no session.
        self._stateless = stateless
        #: Sessions of other workers, through Redis (``Settings.redis_url``), or None.
        self.remote: RemoteSessionsHttp | None = None

    def _elsewhere(self, scope: Scope) -> str | None:
        """The id of a session named by the request that lives on another worker (as
        far as this one can tell: it is not here), when sessions are shared."""
        if self.remote is None:
            return None
        session_id = (header(scope, SESSION_HEADER) or "").strip()
        if not session_id or self._supervisor.get(session_id, scope.get(PRINCIPAL_KEY)):
            return None
        return session_id

    async def _refuse_stateless(self, scope: Scope, send: Send) -> bool:
        """405 for a GET or DELETE of the stateless wire, which has only POST."""
        version = header(scope, VERSION_HEADER)
        if header(scope, SESSION_HEADER) or version is None:
            return False
        if not is_stateless_version(version.strip()):
            return False
        await respond_error(
            send,
            405,
            INVALID_REQUEST,
            f"MCP {version.strip()} has no {scope['method']} on this endpoint: POST each request",
            headers=[(b"allow", b"POST")],
        )
        return True

    # -- checks shared by every method ----------------------------------------------------

    async def _check_version(self, scope: Scope, send: Send) -> bool:
        version = header(scope, VERSION_HEADER)
        if version is not None and version.strip() not in SUPPORTED_VERSIONS:
            await respond_error(
                send,
                400,
                INVALID_REQUEST,
                f"unsupported MCP-Protocol-Version {version!r}; this server speaks "
                + ", ".join(SUPPORTED_VERSIONS),
            )
            return False
        return True

    async def _find_session(self, scope: Scope, send: Send) -> Session | None:
        """The session the request names, or None after answering 400 or 404."""
        session_id = header(scope, SESSION_HEADER)
        if not session_id:
            await respond_error(
                send,
                400,
                INVALID_REQUEST,
                "missing the Mcp-Session-Id header: send 'initialize' first to get one",
            )
            return None
        session = self._supervisor.get(session_id.strip(), scope.get(PRINCIPAL_KEY))
        if session is None or session.kind != "streamable":
            await respond_error(
                send,
                404,
                INVALID_REQUEST,
                "unknown or ended session: start a new one with 'initialize'",
            )
            return None
        return session

    # -- POST -------------------------------------------------------------------------------

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        json_ok, sse_ok = accepts(scope)
        if not (json_ok or sse_ok):
            await respond_error(
                send,
                406,
                INVALID_REQUEST,
                "accept application/json and text/event-stream to receive replies",
            )
            return
        settings = self._settings
        body = await read_jsonrpc_body(
            scope, receive, send, settings.max_body_bytes, settings.body_timeout
        )
        if body is None:
            return
        if self._stateless is not None and routes_statelessly(
            header(scope, SESSION_HEADER),
            header(scope, VERSION_HEADER),
            None if body.is_batch else body.messages[0],
        ):
            await self._stateless.post(scope, receive, send, body, json_ok, sse_ok)
            return
        if not await self._check_version(scope, send):
            return
        requests = [item for item in body.messages if isinstance(item, Request)]
        initializing = any(request.method == "initialize" for request in requests)
        if initializing and header(scope, SESSION_HEADER) is None:
            if body.is_batch:
                await respond_error(
                    send, 400, INVALID_REQUEST, "'initialize' must be sent alone, not in a batch"
                )
                return
            try:
                session = await self._supervisor.open_session(
                    "streamable", scope.get(PRINCIPAL_KEY)
                )
            except NotServing as exc:
                await respond_unavailable(send, str(exc), exc.retry_after)
                return
        else:
            elsewhere = self._elsewhere(scope)
            if elsewhere is not None:
                assert self.remote is not None
                await self.remote.streamable_post(
                    scope,
                    receive,
                    send,
                    elsewhere,
                    scope.get(PRINCIPAL_KEY),
                    body,
                    json_ok,
                    sse_ok,
                )
                return
            found = await self._find_session(scope, send)
            if found is None:
                return
            session = found
            refusal = session.protocol.refuse_batch(body.messages) if body.is_batch else None
            if refusal is not None:
                await respond_error(send, 400, INVALID_REQUEST, refusal)
                return
        busy = [request.id for request in requests if session.is_in_flight(request.id)]
        if busy or len({request.id for request in requests}) < len(requests):
            await respond_error(
                send,
                400,
                INVALID_REQUEST,
                f"request ids must be unique among the session's requests in flight: {busy}",
            )
            return

        stream = (
            session.open_request_stream(
                [request.id for request in requests], carry_notifications=sse_ok
            )
            if requests
            else None
        )
        if stream is not None and json_ok:
            stream.hold()
        if self.remote is not None:
            self.remote.owner_took(session.id, body.messages)
        try:
            await session.deliver(body.messages, size=body.size)
        except SessionClosed:
            await respond_error(send, 404, INVALID_REQUEST, "the session ended")
            return
        except SessionOverloaded as exc:
            await respond_unavailable(send, str(exc), 1)
            return
        if stream is None:
            await respond(send, 202, b"")
            return
        session_header = [(SESSION_HEADER, session.id.encode())]
        if initializing and not session.protocol.protocol_version:
            # initialize was refused: no session was established, so none is kept.
            self._supervisor.end(session)
            session_header = []
        await serve_replies(
            session,
            stream,
            scope,
            receive,
            send,
            self._settings,
            json_ok=json_ok,
            sse_ok=sse_ok,
            batch=body.is_batch,
            headers=session_header,
            preamble=self._priming(session, stream, 0),
        )

    def _priming(self, session: Session, stream: OutboundStream, cursor: int) -> bytes:
        """The event that opens a stream: an id to resume from and the retry delay, with
        no data (MCP 2025-11-25). Older clients may take an event without data for a
        message they cannot parse, so they get none; their events carry ids all the same."""
        if not version_at_least(session.protocol.protocol_version or "", "2025-11-25"):
            return b""
        return encode_event(
            "", event_id=stream.event_id(cursor), retry_ms=self._settings.sse_retry_ms
        )

    # -- GET --------------------------------------------------------------------------------

    async def get(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self._refuse_stateless(scope, send):
            return
        if not await self._check_version(scope, send):
            return
        _, sse_ok = accepts(scope)
        if not sse_ok:
            await respond_error(send, 406, INVALID_REQUEST, "GET opens a text/event-stream")
            return
        elsewhere = self._elsewhere(scope)
        if elsewhere is not None:
            assert self.remote is not None
            last = header(scope, b"last-event-id")
            resume = parse_event_id(last) if last else None
            if last and resume is None:
                await respond_error(
                    send, 400, INVALID_REQUEST, "Last-Event-ID names no stream of this session"
                )
                return
            await self.remote.streamable_get(
                scope, receive, send, elsewhere, scope.get(PRINCIPAL_KEY), resume
            )
            return
        session = await self._find_session(scope, send)
        if session is None:
            return
        last_event_id = header(scope, b"last-event-id")
        if last_event_id:
            await self._resume(session, last_event_id, scope, receive, send)
            return
        stream = session.main
        cursor = stream.written
        try:
            await serve_stream(
                session,
                stream,
                receive,
                send,
                self._settings,
                cursor=cursor,
                preamble=self._priming(session, stream, cursor),
                take_over=False,
                scope=scope,
            )
        except StreamBusy:
            await respond_error(
                send,
                409,
                INVALID_REQUEST,
                "the session's stream is already open; resume with Last-Event-ID to replace it",
            )

    async def _resume(
        self, session: Session, last_event_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        parsed = parse_event_id(last_event_id)
        stream = session.find_stream(parsed[0]) if parsed is not None else None
        if parsed is not None and stream is None and self.remote is not None:
            # A call of this session another worker ran as a guest: its stream is in
            # Redis, written by that worker.
            await self.remote.streamable_get(
                scope, receive, send, session.id, scope.get(PRINCIPAL_KEY), parsed
            )
            return
        if parsed is None or stream is None:
            await respond_error(
                send, 400, INVALID_REQUEST, "Last-Event-ID names no stream of this session"
            )
            return
        try:
            cursor = stream.replay_from(parsed[1])
        except StreamGap:
            await respond_error(
                send,
                400,
                INVALID_REQUEST,
                "the events after that Last-Event-ID are no longer kept",
            )
            return
        await serve_stream(
            session,
            stream,
            receive,
            send,
            self._settings,
            cursor=cursor,
            take_over=True,
            scope=scope,
        )

    # -- DELETE -----------------------------------------------------------------------------

    async def delete(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self._refuse_stateless(scope, send):
            return
        if not await self._check_version(scope, send):
            return
        elsewhere = self._elsewhere(scope)
        if elsewhere is not None:
            assert self.remote is not None
            await self.remote.streamable_delete(send, elsewhere, scope.get(PRINCIPAL_KEY))
            return
        session = await self._find_session(scope, send)
        if session is None:
            return
        self._supervisor.end(session)
        await respond(send, 200, b"")
