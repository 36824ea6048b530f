"""Writing an outbound stream as an SSE response: the one writer loop of both transports.

:func:`serve_stream` runs in the HTTP request's own task and is the only code that
sends bytes on that response. Beside it, in a nursery of its own, a watcher waits for
``http.disconnect`` and queues the writer among the departures, which cancel the
nursery a group at a time (:mod:`._pacing`). The writer stops when the stream is
complete (a request stream's last reply is out), the session ends, the client leaves, or
a newer connection takes the stream over; none of these cancels the session's handlers.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Final, Protocol

import trio

from ._config import Settings
from ._cutoff import connection_of, cut_off
from ._eventlog import Event
from ._eventstream import HEARTBEAT, encode_event
from ._heartbeat import heartbeats, stall_watch
from ._http import Receive, Scope, Send, respond, respond_error
from ._jsonrpc import INVALID_REQUEST
from ._pacing import departures
from ._stream import OutboundStream

log = logging.getLogger("trio_mcp")

STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless told not to; an SSE stream must not be.
    (b"x-accel-buffering", b"no"),
]


#: Chunks larger than asyncio's default high-water mark of a transport's write buffer
#: (64 KiB) are followed by an empty one, which waits until the client has taken them.
FLUSH_ABOVE = 64 * 1024


class StreamOwner(Protocol):
    """What a stream belongs to (a session, a ``subscriptions/listen`` request): told
    when its client comes and goes, named in the log."""

    @property
    def id(self) -> str: ...

    def touch(self) -> None: ...


class _ClientStalled(Exception):
    """The client took nothing for ``stalled_client_timeout``: it stopped reading."""


async def serve_stream(
    session: StreamOwner,
    stream: OutboundStream,
    receive: Receive,
    send: Send,
    settings: Settings,
    *,
    cursor: int,
    preamble: bytes = b"",
    headers: list[tuple[bytes, bytes]] = STREAM_HEADERS,
    take_over: bool,
    scope: Scope | None = None,
) -> None:
    """Attach to ``stream`` and send it as an SSE response from ``cursor`` on.

    Raises :class:`~trio_mcp._stream.StreamBusy` before sending anything if another
    writer holds the stream and ``take_over`` is false. A send that the client does not
    take within ``settings.stalled_client_timeout`` ends the response there, without
    ending it cleanly (which would wait on the same client): the client has stopped
    reading, and its events stay in the stream's log for when it resumes. The writer
    leaves the stream at once and, when ``scope`` (the request's) names a TCP connection,
    has that connection cut off (:mod:`._cutoff`): a host may not let the send be
    cancelled, as hypercorn's trio worker does not.
    """
    writer = _Writer(session, stream, send, settings, scope)
    stream.attach(writer, take_over=take_over)
    session.touch()
    sender = _DeadlineSend(writer, settings.stalled_client_timeout)
    client_left = False
    try:
        # Before the writer's scope exists: a response once begun is always ended below,
        # even when a newer connection takes the stream over meanwhile.
        await sender({"type": "http.response.start", "status": 200, "headers": headers})
        if preamble:
            await sender.chunk(preamble)
        # The nursery's scope is the writer's: a take-over or a stall cancels it. (An idle
        # stream holds as few cancel scopes as it can; each one is ~650 bytes.)
        async with trio.open_nursery() as nursery:
            writer.scope = nursery.cancel_scope
            if writer.cancelled:
                nursery.cancel_scope.cancel()

            async def watch_disconnect() -> None:
                nonlocal client_left
                while (await receive())["type"] != "http.disconnect":
                    pass
                client_left = True
                # The writer is cancelled in its turn, not now: thousands of clients
                # that leave together must not stall everyone else (see _pacing). This
                # task waits to be cancelled with it: ending now would cost a task's
                # exit in the very pass every other departure is in.
                writer.depart()
                await trio.sleep_forever()

            nursery.start_soon(watch_disconnect)
            try:
                await _pump(stream, writer, cursor)
            finally:
                nursery.cancel_scope.cancel()
        if writer.stalled:
            raise _ClientStalled
        if not client_left:
            await sender({"type": "http.response.body", "body": b"", "more_body": False})
    except* _ClientStalled:
        log.info("session %s: the client stopped reading; its stream was dropped", session.id[:8])
    finally:
        writer.forget()
        stream.detach(writer)
        session.touch()


class _Writer:
    """One response writing one stream: what a newer writer cancels, and what the two
    timers (heartbeat due, client stalled) act on. The timers key on this rather than on
    the stream, so that a writer that was taken over cannot unregister its successor."""

    __slots__ = (
        "_departures",
        "_heartbeats",
        "_request",
        "_send",
        "_session",
        "_stalls",
        "cancelled",
        "scope",
        "sending",
        "stalled",
        "stream",
    )

    def __init__(
        self,
        session: StreamOwner,
        stream: OutboundStream,
        send: Send,
        settings: Settings,
        request: Scope | None,
    ) -> None:
        self._session = session
        self.stream = stream
        self._send = send
        # The request's scope, read only if the client stalls: which connection to cut.
        self._request = request
        self._heartbeats = heartbeats(settings.heartbeat_interval)
        self._stalls = stall_watch(settings.stalled_client_timeout)
        self._departures = departures()
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        self.stalled = False
        #: A send is under way: the host has not taken the message yet.
        self.sending = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()

    def quiet_from_now(self) -> None:
        """The next heartbeat is due an interval from now."""
        self.stream.heartbeat_due = False
        self._heartbeats.touch(self)

    async def send(self, message: dict[str, Any]) -> None:
        """Send a message; a client that takes none of it for the stall timeout is
        dropped (:meth:`on_stalled`)."""
        self._stalls.touch(self)
        self.sending = True
        try:
            await self._send(message)
        finally:
            self.sending = False
            self._stalls.forget(self)

    async def chunk(self, data: bytes) -> None:
        """Send a body chunk as :meth:`send` does, inlined: every event and heartbeat
        passes here, and a coroutine frame more per send is held across its awaits."""
        self._stalls.touch(self)
        self.sending = True
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
            if len(data) > FLUSH_ABOVE:
                # An asyncio server takes a whole chunk into its transport's buffer and
                # only makes the *next* send wait for the client (uvicorn does): an empty
                # one waits until the buffer has drained below its mark, so the stall
                # timer sees a client that stopped reading now, not one heartbeat later,
                # and each such client holds at most one chunk in the server's memory.
                await self._send({"type": "http.response.body", "body": b"", "more_body": True})
        finally:
            self.sending = False
            self._stalls.forget(self)
        self.quiet_from_now()

    def still_sending(self) -> bool:
        return self.sending

    def depart(self) -> None:
        """The client left: this writer is cancelled in its turn among departures."""
        self._departures.add(self)

    def forget(self) -> None:
        self._heartbeats.forget(self)
        self._stalls.forget(self)
        self._departures.discard(self)

    def on_heartbeat_due(self) -> None:
        self.stream.beat()

    def on_stalled(self) -> None:
        self.stalled = True
        self.cancel()
        # The send may go on long after this (a host may shield it from cancellation):
        # leave the stream now, so that the session counts its client as gone (an
        # HTTP+SSE session's resume_grace starts) and a client that comes back finds the
        # stream free.
        self._heartbeats.forget(self)
        self.stream.detach(self)
        self._session.touch()
        connection = connection_of(self._request) if self._request is not None else None
        if connection is not None:
            cut_off(connection, self.still_sending)


class _DeadlineSend:
    """The writer's send with a deadline per message, for the few messages sent outside
    the writer's scope (the response's start, its preamble and its end): a client that
    takes nothing for that long has stopped reading, and waiting on it would hold its
    stream's writer forever. The writer's stall timer watches these sends too, for a
    host that does not let them be cancelled."""

    __slots__ = ("_timeout", "_writer")

    def __init__(self, writer: _Writer, timeout: float) -> None:
        self._writer = writer
        self._timeout = timeout

    async def __call__(self, message: dict[str, Any]) -> None:
        with trio.move_on_after(self._timeout) as deadline:
            await self._writer.send(message)
        if deadline.cancelled_caught or self._writer.stalled:
            raise _ClientStalled

    async def chunk(self, data: bytes) -> None:
        await self({"type": "http.response.body", "body": data, "more_body": True})


async def _pump(stream: OutboundStream, writer: _Writer, cursor: int) -> None:
    writer.quiet_from_now()
    while True:
        events = await stream.next_events(cursor)
        if events is None:
            return
        if not events:
            await writer.chunk(HEARTBEAT)
            continue
        cursor = events[-1].seq
        await writer.chunk(
            b"".join(
                encode_event(e.data, event="message", event_id=stream.event_id(e.seq))
                for e in events
            )
        )


def parse_event_id(value: str) -> tuple[str, int] | None:
    """(stream key, sequence number) from a ``Last-Event-ID``, or None if malformed."""
    key, dot, seq = value.strip().rpartition(".")
    if not dot or not key or not seq.isdigit() or len(seq) > 18:
        return None
    return key, int(seq)


async def answer_plainly(
    send: Send,
    stream: OutboundStream,
    responses: list[Event],
    batch: bool,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """The replies as one JSON body: an object, or an array for a batch."""
    if not responses:
        if stream.closed:
            await respond_error(send, 404, INVALID_REQUEST, "the session ended")
        else:
            # The client cancelled every request: no reply is owed, and none is sent.
            await respond(send, 202, b"", headers=headers)
        return
    datas = [event.data for event in responses]
    payload = "[" + ",".join(datas) + "]" if batch else datas[0]
    await respond(send, 200, payload.encode(), content_type=b"application/json", headers=headers)


class RepliesOwner(StreamOwner, Protocol):
    """A session whose POST's replies are served: it lets go of a stream answered as
    one JSON body (its client has no event id to resume it with)."""

    def forget_stream(self, stream: OutboundStream) -> None: ...


async def serve_replies(
    session: RepliesOwner,
    stream: OutboundStream,
    scope: Scope,
    receive: Receive,
    send: Send,
    settings: Settings,
    *,
    json_ok: bool,
    sse_ok: bool,
    batch: bool,
    headers: list[tuple[bytes, bytes]],
    preamble: bytes,
) -> None:
    """Answer a Streamable HTTP POST with its requests' replies: one JSON body when the
    client takes one and the replies come soon enough (``json_reply_wait``, unbounded
    for a client that takes no event stream), else the stream (``stream`` was held
    until this decided: see ``OutboundStream.hold``).

    A client that leaves meanwhile is not watched for: the handlers go on either way,
    and this ends with them (or with the session). A slower answer comes as a stream,
    which heartbeats keep alive through proxies and which the client can resume if its
    connection drops."""
    if json_ok:
        wait = settings.json_reply_wait if sse_ok else math.inf
        responses = None
        with trio.move_on_after(wait):
            responses = await stream.plain_responses()
        # Sent outside the wait's scope: its deadline must not cut a body half sent,
        # after which the event stream below could not start.
        if responses is not None:
            session.forget_stream(stream)
            await answer_plainly(send, stream, responses, batch, headers)
            return
        stream.stop_holding()
    await serve_stream(
        session,
        stream,
        receive,
        send,
        settings,
        cursor=0,
        preamble=preamble,
        headers=STREAM_HEADERS + headers,
        take_over=False,
        scope=scope,
    )
