"""Churn: hundreds of HTTP+SSE sessions call tools while a third of their streams drop
and resume at random. Every call gets exactly one reply, and nothing leaks.

Bounded: SESSIONS sessions for CHURN_SECONDS of calls, then a drain. Streams are raw
trio sockets (a few hundred httpx streams would cost more than the server); POSTs go
through one pooled httpx client. The random choices come from a seeded generator, so a
failing run can be replayed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Any

import httpx
import trio
from hosts import count_trio_tasks as count_tasks
from rawhttp import host_port
from test_leaks import open_fds

import trio_mcp

SESSIONS = 300
CHURN_SECONDS = 30.0
REPLY_TIMEOUT = 30.0
# Generous against the event loop's lag: server and clients share one busy process.
RESUME_GRACE = 10.0


class ResumableStream:
    """One session's GET /sse over a raw socket, reconnecting with ``Last-Event-ID``.

    Counts every reply by request id, so a reply lost or sent twice across a
    reconnection shows up in ``replies``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.endpoint = ""
        self.last_event_id: str | None = None
        self.replies: Counter[Any] = Counter()
        self.resumptions = 0
        self._arrived = trio.Event()
        self._socket: trio.SocketStream | None = None

    async def connect(self) -> None:
        """Open the stream (resuming after the last event seen) and read its endpoint."""
        host, port = host_port(self.url)
        self._socket = await trio.open_tcp_stream(host, port)
        resume = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
        await self._socket.send_all(
            f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\n{resume}\r\n".encode()
        )
        self._buffer = b""
        endpoint = await self._next_event()
        assert endpoint["event"] == "endpoint", endpoint
        if self.endpoint:
            # Resumed: the same session, named by the same URL.
            assert endpoint["data"] == self.endpoint, (endpoint, self.endpoint)
            self.resumptions += 1
        self.endpoint = endpoint["data"]

    async def drop(self) -> None:
        """Vanish without a word, as a lost connection does."""
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.aclose()

    async def read(self) -> None:
        """Count replies until the connection is dropped."""
        try:
            while True:
                event = await self._next_event()
                message = json.loads(event["data"])
                if "method" not in message:
                    self.replies[message["id"]] += 1
                    self._arrived.set()
                    self._arrived = trio.Event()
        except (trio.ClosedResourceError, trio.BrokenResourceError, EOFError):
            pass

    async def reply(self, request_id: Any) -> None:
        with trio.fail_after(REPLY_TIMEOUT):
            while request_id not in self.replies:
                await self._arrived.wait()

    async def _next_event(self) -> dict[str, str]:
        assert self._socket is not None
        while True:
            if (match := re.search(rb"\r?\n\r?\n", self._buffer)) is not None:
                block = self._buffer[: match.start()].decode()
                self._buffer = self._buffer[match.end() :]
                fields: dict[str, str] = {}
                for line in block.splitlines():
                    if line.startswith(":") or ":" not in line or line.startswith("HTTP/"):
                        continue  # heartbeats, and the response head's lines
                    name, _, value = line.partition(":")
                    fields[name.lower()] = value.removeprefix(" ")
                if "data" in fields:
                    if "id" in fields:
                        self.last_event_id = fields["id"]
                    return {"event": fields.get("event", "message"), "data": fields["data"]}
                continue
            chunk = await self._socket.receive_some(65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk


async def post(http: httpx.AsyncClient, url: str, endpoint: str, message: Any) -> None:
    response = await http.post(url + endpoint, json=message)
    assert response.status_code == 202, response.text


def call(request_id: int, rng: random.Random) -> dict[str, Any]:
    # A third of the calls are slow enough to be in flight when a stream drops.
    if rng.random() < 1 / 3:
        tool = {"name": "sleep", "arguments": {"seconds": rng.uniform(0.05, 0.5)}}
    else:
        tool = {"name": "echo", "arguments": {"text": f"call {request_id}"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": tool}


async def churn_one(
    http: httpx.AsyncClient, url: str, index: int, deadline: float, sent: list[int]
) -> ResumableStream:
    """One session's life: initialize, call until ``deadline``, and (for a third of the
    sessions) drop and resume the stream at random meanwhile."""
    rng = random.Random(index)
    await trio.sleep(index * 0.01)  # clients arrive over a few seconds, not all at once
    stream = ResumableStream(url)
    await stream.connect()
    async with trio.open_nursery() as nursery:
        reading = trio.CancelScope()

        async def read() -> None:
            with reading:
                await stream.read()

        nursery.start_soon(read)
        params = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}}
        await post(
            http,
            url,
            stream.endpoint,
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        )
        await stream.reply(0)
        await post(
            http, url, stream.endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"}
        )

        async def chaos() -> None:
            nonlocal reading
            while trio.current_time() < deadline - 1:
                await trio.sleep(rng.uniform(0.5, 4.0))
                reading.cancel()
                await stream.drop()
                await trio.sleep(rng.uniform(0, 0.5))  # replies keep coming meanwhile
                await stream.connect()
                reading = trio.CancelScope()
                nursery.start_soon(read)

        if index % 3 == 0:
            nursery.start_soon(chaos)
        request_id = index * 10_000
        while trio.current_time() < deadline:
            request_id += 1
            sent.append(request_id)
            await post(http, url, stream.endpoint, call(request_id, rng))
            await stream.reply(request_id)
            await trio.sleep(rng.uniform(0, 0.3))
        nursery.cancel_scope.cancel()
    await stream.drop()
    return stream


async def test_churning_sessions_get_every_reply_exactly_once_and_leak_nothing(
    serve_app: Any,
) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(resume_grace=RESUME_GRACE))
    async with serve_app(app) as url:
        await trio.sleep(0.2)  # the server's own tasks are all up
        tasks, fds = count_tasks(), open_fds()
        sent: list[int] = []
        streams: list[ResumableStream] = []
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=REPLY_TIMEOUT, limits=limits) as http:
            deadline = trio.current_time() + CHURN_SECONDS

            async def one(index: int) -> None:
                streams.append(await churn_one(http, url, index, deadline, sent))

            async with trio.open_nursery() as nursery:
                for index in range(SESSIONS):
                    nursery.start_soon(one, index)

        replies: Counter[Any] = Counter()
        for stream in streams:
            replies.update(stream.replies)
        calls = Counter(sent)
        resumptions = sum(stream.resumptions for stream in streams)
        print(f"{SESSIONS} sessions, {len(sent)} calls, {resumptions} resumptions")
        assert len(streams) == SESSIONS
        assert len(sent) > 5 * SESSIONS, "too few calls to call this churn"
        assert resumptions > SESSIONS // 3
        assert replies - Counter({0: SESSIONS}) == calls  # every call once, nothing else

        # Every stream is gone: the sessions end after their grace, taking all with them.
        with trio.move_on_after(RESUME_GRACE + 10):
            while (len(app.supervisor.store), count_tasks(), open_fds()) != (0, tasks, fds):
                await trio.sleep(0.1)
        assert (len(app.supervisor.store), count_tasks(), open_fds()) == (0, tasks, fds)
