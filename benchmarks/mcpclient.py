"""MCP clients for the load generator: a session over HTTP+SSE or Streamable HTTP, and a
client of MCP 2026-07-28's stateless wire.

Each session does what a real client does and nothing more: open (a stream, or
``initialize`` first on ``/mcp``), initialize, send ``notifications/initialized``, then
hold its stream or make ``tools/call`` requests. On the stateless wire there is nothing
to open: a client asks ``server/discover`` once, then every request is a POST of its
own, and what it holds idle is a ``subscriptions/listen`` stream. The same code drives
every server under test, so any difference in the figures is the server's.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Final

import trio

from .config import STATELESS
from .httpclient import Connection, ConnectionClosed, Head, ProtocolError, request_bytes
from .sse import SseDecoder, SseEvent

#: The revision each transport's client asks for.
PROTOCOLS: Final = {"sse": "2024-11-05", "mcp": "2025-06-18", STATELESS: "2026-07-28"}

CLIENT_INFO: Final = {"name": "trio-mcp-benchmark", "version": "1"}


#: Seconds one session may take to open and initialize before it counts as failed.
ESTABLISH_TIMEOUT: Final = 60.0


class McpFailure(Exception):
    """The server answered, but not as MCP says it should."""


#: What a client of the load generator counts as a failure of its own (and goes on).
FAILURES: Final = (OSError, ConnectionClosed, ProtocolError, McpFailure, ValueError, KeyError)


def failure_name(exc: BaseException) -> str:
    """A failure's kind and the start of its message, short enough to count by."""
    text = str(exc).split(":", 1)[0][:60]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Target:
    """Where the server listens, and which loopback source addresses to connect from."""

    __slots__ = ("host", "port", "sources")

    def __init__(self, host: str, port: int, sources: list[str]) -> None:
        self.host = host
        self.port = port
        self.sources = sources

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def source(self, index: int) -> str | None:
        return self.sources[index % len(self.sources)] if self.sources else None


class HoldStats:
    """What the streams saw while held: heartbeats, and streams the server ended."""

    __slots__ = ("beats", "closed_by_server", "intervals", "recording")

    def __init__(self) -> None:
        self.recording = False
        self.beats = 0
        self.intervals: list[float] = []
        self.closed_by_server = 0

    def start_recording(self) -> None:
        self.recording = True
        self.beats = 0
        self.intervals = []


def encode(message_id: int | None, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if message_id is not None:
        message["id"] = message_id
    if params is not None:
        message["params"] = params
    return json.dumps(message, separators=(",", ":")).encode()


def initialize_params(transport: str) -> dict[str, Any]:
    return {
        "protocolVersion": PROTOCOLS[transport],
        "capabilities": {},
        "clientInfo": CLIENT_INFO,
    }


def check_reply(reply: Any, message_id: int) -> dict[str, Any]:
    """The result of a successful reply to ``message_id``; McpFailure otherwise."""
    if not isinstance(reply, dict) or reply.get("id") != message_id:
        raise McpFailure(f"not the reply to request {message_id}: {str(reply)[:200]}")
    result = reply.get("result")
    if not isinstance(result, dict):
        raise McpFailure(f"an error reply: {str(reply.get('error'))[:200]}")
    if result.get("isError"):
        raise McpFailure(f"a tool error: {str(result)[:200]}")
    return result


class Poster:
    """One keep-alive connection for POSTs, reopened when the server has closed it."""

    __slots__ = ("_conn", "_index", "_target")

    def __init__(self, target: Target, index: int) -> None:
        self._target = target
        self._index = index
        self._conn: Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[Head, bytes]:
        raw = request_bytes("POST", path, self._target.authority, headers, body)
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = await Connection.open(
                    self._target.host, self._target.port, self._target.source(self._index)
                )
            conn = self._conn
            try:
                await conn.send(raw)
                head = await conn.read_head()
                payload = await conn.read_body(head)
            except ConnectionClosed:
                self.close()
                # A kept-alive connection the server closed while idle: try a fresh one.
                if reused and attempt == 1:
                    continue
                raise
            if head.headers.get(b"connection", b"").lower() == b"close":
                self.close()
            return head, payload
        raise AssertionError("unreachable")


class PosterPool:
    """Keep-alive connections shared by many sessions while they initialize."""

    def __init__(self, target: Target, size: int) -> None:
        self._send, self._receive = trio.open_memory_channel[Poster](size)
        self._posters = [Poster(target, index) for index in range(size)]
        for poster in self._posters:
            self._send.send_nowait(poster)

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[Head, bytes]:
        poster = await self._receive.receive()
        try:
            return await poster.post(path, body, headers)
        finally:
            self._send.send_nowait(poster)

    def close(self) -> None:
        for poster in self._posters:
            poster.close()


PostFn = Any  # Poster.post or PosterPool.post


class _Stream:
    """A held-open event stream: its connection, decoder and undelivered events."""

    __slots__ = ("conn", "decoder", "last_beat", "pending")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.decoder = SseDecoder()
        self.pending: deque[SseEvent] = deque()
        self.last_beat: float | None = None

    async def next_event(self, stats: HoldStats | None) -> SseEvent:
        """The next event that is not a heartbeat; heartbeats are counted on the way."""
        while True:
            while self.pending:
                event = self.pending.popleft()
                if not event.heartbeat:
                    return event
                now = trio.current_time()
                if stats is not None and stats.recording:
                    stats.beats += 1
                    if self.last_beat is not None:
                        stats.intervals.append(now - self.last_beat)
                self.last_beat = now
            chunk = await self.conn.read_chunk()
            if chunk is None:
                raise ConnectionClosed("the server ended the stream")
            self.pending.extend(self.decoder.feed(chunk))

    async def hold(self, stats: HoldStats) -> None:
        """Read until the server ends the stream (counted) or the caller cancels."""
        try:
            while True:
                await self.next_event(stats)
        except ConnectionClosed:
            stats.closed_by_server += 1


async def _open_stream(
    target: Target,
    index: int,
    path: str,
    headers: dict[str, str],
    receive_buffer: int | None = None,
    body: bytes | None = None,
) -> _Stream:
    """A held-open event stream on a connection of its own: ``GET path``, or a POST of
    ``body`` whose answer is the stream (``subscriptions/listen``)."""
    method = "GET" if body is None else "POST"
    conn = await Connection.open(target.host, target.port, target.source(index), receive_buffer)
    try:
        await conn.send(request_bytes(method, path, target.authority, headers, body))
        head = await conn.read_head()
        if head.status != 200 or head.content_type != b"text/event-stream":
            payload = b"" if head.chunked else await conn.read_body(head)
            raise McpFailure(
                f"{method} {path}: {head.status} {head.content_type!r} {payload[:200]!r}"
            )
        if not head.chunked:
            raise McpFailure(f"{method} {path}: the event stream is not chunked")
    except BaseException:
        conn.close()
        raise
    return _Stream(conn)


class SseSession:
    """A client of the HTTP+SSE transport: ``GET /sse``, then POSTs to its endpoint."""

    transport = "sse"

    def __init__(
        self, target: Target, index: int, post: PostFn, receive_buffer: int | None = None
    ) -> None:
        self._target = target
        self._index = index
        self._post = post
        #: The stream socket's SO_RCVBUF, for clients that mean to stop reading.
        self._receive_buffer = receive_buffer
        self._stream: _Stream | None = None
        self._endpoint = ""
        self._next_id = 0

    async def establish(self, *, hold_stream: bool = True) -> None:
        del hold_stream  # the stream is the session on this transport
        stream = await _open_stream(
            self._target,
            self._index,
            "/sse",
            {"Accept": "text/event-stream"},
            self._receive_buffer,
        )
        self._stream = stream
        event = await stream.next_event(None)
        if event.event != "endpoint":
            raise McpFailure(f"the first event is {event.event!r}, not the endpoint")
        self._endpoint = event.data
        await self._request("initialize", initialize_params("sse"))
        await self._send(encode(None, "notifications/initialized"))

    async def _send(self, body: bytes) -> None:
        head, payload = await self._post(self._endpoint, body)
        if head.status != 202:
            raise McpFailure(f"POST answered {head.status}: {payload[:200]!r}")

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._stream is not None
        self._next_id += 1
        message_id = self._next_id
        await self._send(encode(message_id, method, params))
        while True:
            event = await self._stream.next_event(None)
            if event.event == "message":
                reply = json.loads(event.data)
                if reply.get("id") == message_id:
                    return check_reply(reply, message_id)

    async def call(self, text: str) -> None:
        await self._request("tools/call", {"name": "echo", "arguments": {"text": text}})

    async def send_request(self, method: str, params: dict[str, Any]) -> int:
        """POST a request and return its id without waiting for the reply (which comes
        on the stream, for whoever reads it: a client that stops reading never does)."""
        self._next_id += 1
        await self._send(encode(self._next_id, method, params))
        return self._next_id

    @property
    def stream_connection(self) -> Connection:
        assert self._stream is not None
        return self._stream.conn

    async def hold(self, stats: HoldStats) -> None:
        assert self._stream is not None
        await self._stream.hold(stats)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.conn.close()


class StreamableSession:
    """A client of Streamable HTTP: ``initialize`` by POST, then its ``GET /mcp`` stream."""

    transport = "mcp"

    def __init__(
        self, target: Target, index: int, post: PostFn, *, establish_post: PostFn | None = None
    ) -> None:
        self._target = target
        self._index = index
        self._post = post
        #: Where ``initialize`` and ``notifications/initialized`` go, when not where the
        #: calls go: the worker that answers initialize owns the session.
        self._establish_post = establish_post or post
        self._stream: _Stream | None = None
        self._headers = {"Accept": "application/json, text/event-stream"}
        self._next_id = 0

    async def establish(self, *, hold_stream: bool = True) -> None:
        self._next_id += 1
        head, payload = await self._establish_post(
            "/mcp", encode(self._next_id, "initialize", initialize_params("mcp")), self._headers
        )
        session_id = head.headers.get(b"mcp-session-id")
        if head.status != 200 or session_id is None:
            raise McpFailure(f"initialize answered {head.status}: {payload[:200]!r}")
        check_reply(_reply_in(head, payload, self._next_id), self._next_id)
        self._headers = {
            **self._headers,
            "Mcp-Session-Id": session_id.decode(),
            "MCP-Protocol-Version": PROTOCOLS["mcp"],
        }
        head, payload = await self._establish_post(
            "/mcp", encode(None, "notifications/initialized"), self._headers
        )
        if head.status != 202:
            raise McpFailure(f"notifications/initialized answered {head.status}")
        if hold_stream:
            self._stream = await _open_stream(
                self._target,
                self._index,
                "/mcp",
                {**self._headers, "Accept": "text/event-stream"},
            )

    async def call(self, text: str) -> None:
        self._next_id += 1
        message_id = self._next_id
        body = encode(message_id, "tools/call", {"name": "echo", "arguments": {"text": text}})
        head, payload = await self._post("/mcp", body, self._headers)
        if head.status != 200:
            raise McpFailure(f"tools/call answered {head.status}: {payload[:200]!r}")
        check_reply(_reply_in(head, payload, message_id), message_id)

    async def hold(self, stats: HoldStats) -> None:
        assert self._stream is not None
        await self._stream.hold(stats)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.conn.close()


class StatelessSession:
    """A client of MCP 2026-07-28's stateless wire on ``/mcp``: no initialize, no session.

    Every request is a POST of its own, carrying the revision in the
    ``MCP-Protocol-Version`` header and in ``params._meta`` (with the client's info and
    capabilities), its method in ``Mcp-Method`` and, for ``tools/call``, the tool's name
    in ``Mcp-Name``; the answer is a JSON body or an event stream that ends with the
    reply. ``establish`` asks ``server/discover`` once, as a client that wants to know
    the server speaks the revision before using it does (the Python SDK's client probes
    it by default); with ``hold_stream`` it then opens the client's one long-lived
    stream, a ``subscriptions/listen`` for tools-list changes, on a connection of its
    own, and checks that the stream starts with the acknowledgement. ``hold`` reads that stream
    (heartbeats counted) until the server ends it or the caller cancels.
    """

    transport = STATELESS

    def __init__(self, target: Target, index: int, post: PostFn) -> None:
        self._target = target
        self._index = index
        self._post = post
        self._stream: _Stream | None = None
        self._next_id = 0

    def _request(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """A request's id, headers and body, the revision's envelope in ``_meta``."""
        self._next_id += 1
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOLS[STATELESS],
            "Mcp-Method": method,
        }
        if "name" in params:
            headers["Mcp-Name"] = params["name"]
        body = encode(self._next_id, method, {**params, "_meta": STATELESS_META})
        return self._next_id, headers, body

    async def _ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        message_id, headers, body = self._request(method, params)
        head, payload = await self._post("/mcp", body, headers)
        if head.status != 200:
            raise McpFailure(f"{method} answered {head.status}: {payload[:200]!r}")
        return check_reply(_reply_in(head, payload, message_id), message_id)

    async def establish(self, *, hold_stream: bool = True) -> None:
        found = await self._ask("server/discover", {})
        versions = found.get("supportedVersions")
        if not isinstance(versions, list) or PROTOCOLS[STATELESS] not in versions:
            raise McpFailure(f"server/discover: {PROTOCOLS[STATELESS]} not among {found}")
        if not hold_stream:
            return
        _, headers, body = self._request("subscriptions/listen", LISTEN_PARAMS)
        stream = await _open_stream(self._target, self._index, "/mcp", headers, body=body)
        self._stream = stream
        event = await stream.next_event(None)
        first = json.loads(event.data) if event.data else None
        if not isinstance(first, dict) or first.get("method") != LISTEN_ACKNOWLEDGED:
            raise McpFailure(f"the listen stream starts with {event.data[:200]!r}")

    async def call(self, text: str) -> None:
        await self._ask("tools/call", {"name": "echo", "arguments": {"text": text}})

    async def hold(self, stats: HoldStats) -> None:
        assert self._stream is not None
        await self._stream.hold(stats)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.conn.close()


#: What every request on the stateless wire carries in ``params._meta``.
STATELESS_META: Final = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOLS[STATELESS],
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    "io.modelcontextprotocol/clientCapabilities": {},
}
#: The idle client's subscription: the one change a client of a tool server cares for.
LISTEN_PARAMS: Final = {"notifications": {"toolsListChanged": True}}
LISTEN_ACKNOWLEDGED: Final = "notifications/subscriptions/acknowledged"


def _reply_in(head: Head, payload: bytes, message_id: int) -> Any:
    """The JSON-RPC reply in a POST's answer: a JSON body, or an event in an SSE body."""
    if head.content_type == b"text/event-stream":
        for event in SseDecoder().feed(payload):
            if event.event == "message" and event.data:
                reply = json.loads(event.data)
                if isinstance(reply, dict) and reply.get("id") == message_id:
                    return reply
        raise McpFailure(f"no reply to {message_id} in the event stream: {payload[:200]!r}")
    return json.loads(payload)


SESSION_TYPES: Final = {"sse": SseSession, "mcp": StreamableSession, STATELESS: StatelessSession}
