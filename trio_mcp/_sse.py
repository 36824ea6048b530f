"""The HTTP+SSE transport of MCP 2024-11-05.

``GET /sse`` opens a session and its stream; the first event names the URL the client
POSTs its messages to. Everything the server sends travels as ``message`` events on that
one stream. This module is the edge: it maps HTTP to session calls and session failures
to HTTP statuses, and knows nothing of tools.

Every event carries an id (``<stream key>.<n>``). A client whose stream drops reconnects
to ``GET /sse`` with ``Last-Event-ID`` (as an EventSource does by itself) and, within the
session's resume grace period, gets the same session and endpoint back and every message
it missed. The stream key is 128 random bits, so an id cannot name another client's
session; an id that names no live session, or one whose events are gone, starts a new
session instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from ._auth import PRINCIPAL_KEY
from ._config import Settings
from ._eventstream import encode_event
from ._http import (
    Receive,
    Scope,
    Send,
    header,
    query_param,
    read_jsonrpc_body,
    respond,
    respond_error,
    respond_unavailable,
)
from ._jsonrpc import INVALID_REQUEST
from ._session import Session, SessionClosed, SessionOverloaded
from ._stream import StreamGap
from ._streaming import parse_event_id, serve_stream
from ._supervisor import NotServing, SessionSupervisor

if TYPE_CHECKING:
    from ._redis_http import RemoteSessionsHttp

log = logging.getLogger("trio_mcp")


class SseTransport:
    def __init__(self, supervisor: SessionSupervisor, settings: Settings) -> None:
        self._supervisor = supervisor
        self._settings = settings
        #: Sessions of other workers, through Redis (``Settings.redis_url``), or None.
        self.remote: RemoteSessionsHttp | None = None

    # -- GET /sse -----------------------------------------------------------------------

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        last_event_id = header(scope, b"last-event-id")
        session, cursor = self._resumable(last_event_id, principal)
        if session is None and self.remote is not None and last_event_id:
            parsed = parse_event_id(last_event_id)
            if parsed is not None and await self.remote.sse_resume(
                scope, receive, send, *parsed, principal
            ):
                return
        if session is None:
            try:
                session = await self._supervisor.open_session("sse", principal)
            except NotServing as exc:
                await respond_unavailable(send, str(exc), exc.retry_after)
                return
            cursor = 0
        endpoint = (
            f"{scope.get('root_path', '')}{self._settings.messages_path}"
            f"?session_id={quote(session.id)}"
        )
        # The endpoint event carries an id too, so a client that drops before any
        # message still reconnects to this session.
        preamble = encode_event(
            endpoint,
            event="endpoint",
            event_id=session.main.event_id(cursor),
            retry_ms=self._settings.sse_retry_ms,
        )
        await serve_stream(
            session,
            session.main,
            receive,
            send,
            self._settings,
            cursor=cursor,
            preamble=preamble,
            take_over=True,
            scope=scope,
        )

    def _resumable(
        self, last_event_id: str | None, principal: str | None
    ) -> tuple[Session | None, int]:
        if not last_event_id:
            return None, 0
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None, 0
        key, seq = parsed
        session = self._supervisor.by_stream_key(key, principal)
        if session is None:
            return None, 0
        try:
            return session, session.main.replay_from(seq)
        except StreamGap:
            # The client cannot be brought up to date; it starts again, so end the old one.
            log.info("session %s: resumption after a gap; starting a new one", session.id[:8])
            self._supervisor.end(session)
            return None, 0

    # -- POST /messages/?session_id= ----------------------------------------------------

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = query_param(scope, "session_id")
        if not session_id:
            await respond_error(
                send, 400, INVALID_REQUEST, "missing the session_id query parameter"
            )
            return
        session = self._supervisor.get(session_id, scope.get(PRINCIPAL_KEY))
        if session is None and self.remote is not None:
            await self._post_elsewhere(scope, receive, send, session_id)
            return
        if session is None or session.kind != "sse":
            await respond_error(
                send, 404, INVALID_REQUEST, "unknown or ended session: open a new one with GET /sse"
            )
            return
        settings = self._settings
        body = await read_jsonrpc_body(
            scope, receive, send, settings.max_body_bytes, settings.body_timeout
        )
        if body is None:
            return
        refusal = session.protocol.refuse_batch(body.messages) if body.is_batch else None
        if refusal is not None:
            await respond_error(send, 400, INVALID_REQUEST, refusal)
            return
        try:
            await session.deliver(body.messages, size=body.size)
        except SessionClosed:
            await respond_error(send, 404, INVALID_REQUEST, "the session ended")
            return
        except SessionOverloaded as exc:
            await respond_unavailable(send, str(exc), 1)
            return
        # No body: the replies travel on the stream, and an empty body spares the server
        # one socket send per POST (hypercorn writes each body chunk on its own).
        await respond(send, 202)

    async def _post_elsewhere(
        self, scope: Scope, receive: Receive, send: Send, session_id: str
    ) -> None:
        """A POST for a session this worker does not hold: to its owner, via Redis."""
        assert self.remote is not None
        settings = self._settings
        body = await read_jsonrpc_body(
            scope, receive, send, settings.max_body_bytes, settings.body_timeout
        )
        if body is not None:
            await self.remote.sse_post(scope, send, session_id, scope.get(PRINCIPAL_KEY), body)
