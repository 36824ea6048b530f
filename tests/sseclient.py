"""A small raw MCP-over-SSE client for tests: real HTTP, every event schema-checked.

Unlike the official client it shows the wire: statuses, headers, each event, comments.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio
from mcpschema import SCHEMAS, validate_server_message


@attrs.frozen
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def parse_events(lines: AsyncIterator[str], comments: list[str]) -> AsyncIterator[Event]:
    fields: dict[str, list[str]] = {}
    async for line in lines:
        if line == "":
            if "data" in fields:
                yield Event(
                    (fields.get("event") or ["message"])[0],
                    "\n".join(fields["data"]),
                    (fields.get("id") or [None])[0],
                )
            fields = {}
        elif line.startswith(":"):
            comments.append(line)
        else:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)


class SseSession:
    """One GET /sse stream plus the POSTs of its session."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.base = base
        self.endpoint = ""
        self.version = "2025-11-25"
        self.comments: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](1000)
        self._pending: dict[Any, str] = {}
        #: Replies met while waiting for another, by id, for their own reply_to.
        self._early_replies: dict[Any, list[dict[str, Any]]] = {}
        self._next_id = 0
        self.closed = trio.Event()
        self.response: httpx.Response | None = None

    @property
    def session_id(self) -> str:
        return self.endpoint.split("session_id=", 1)[1]

    async def _read(self, response: httpx.Response, task_status: Any) -> None:
        events = parse_events(response.aiter_lines(), self.comments)
        first = await events.__anext__()
        assert first.event == "endpoint", first
        self.endpoint = first.data
        task_status.started()
        try:
            async for event in events:
                assert event.event == "message", event
                message = event.json()
                method = (
                    self._pending.pop(message.get("id"), None) if "method" not in message else None
                )
                validate_server_message(self.version, message, method)
                self.messages.append(message)
                await self._send.send(message)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass
        finally:
            self.closed.set()

    async def post(self, payload: Any, **headers: str) -> httpx.Response:
        return await self.http.post(
            self.base + self.endpoint,
            content=json.dumps(payload),
            headers={"content-type": "application/json", **headers},
        )

    async def post_request(
        self, request_id: Any, method: str, params: Any = None
    ) -> httpx.Response:
        """POST a request with a chosen id, expecting its reply on the stream."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._pending[request_id] = method
        return await self.post(message)

    def expect(self, replies: dict[Any, str]) -> None:
        """Register ids (and their methods) of requests about to be POSTed by hand."""
        self._pending.update(replies)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send_request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = self.next_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._pending[request_id] = method
        response = await self.post(message)
        assert response.status_code == 202, response.text
        return request_id

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        response = await self.post(message)
        assert response.status_code == 202, response.text

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout):
            return await self._receive.receive()

    async def reply_to(self, request_id: int, timeout: float = 10) -> dict[str, Any]:
        """Wait for the response with this id. Responses to other requests met on the way
        are kept for their own ``reply_to`` (replies may come in any order); requests
        and notifications met on the way are dropped."""
        return (await self.replies_to([request_id], timeout))[request_id]

    async def replies_to(
        self, request_ids: list[int], timeout: float = 10
    ) -> dict[int, dict[str, Any]]:
        """The responses to these requests, by id, in whatever order they come."""
        replies: dict[int, dict[str, Any]] = {}
        for request_id in request_ids:
            kept = self._early_replies.get(request_id)
            if kept:
                replies[request_id] = kept.pop(0)
        with trio.fail_after(timeout):
            while len(replies) < len(request_ids):
                message = await self._receive.receive()
                if "method" in message or "id" not in message:
                    continue
                if message["id"] in request_ids and message["id"] not in replies:
                    replies[message["id"]] = message
                else:
                    self._early_replies.setdefault(message["id"], []).append(message)
        return replies

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.reply_to(await self.send_request(method, params))

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # Until the reply says otherwise, expect the revision asked for (or the latest).
        self.version = version if (SCHEMAS / version).is_dir() else "2025-11-25"
        reply = await self.call(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "raw-test-client", "version": "1"},
            },
        )
        self.version = reply["result"]["protocolVersion"]
        await self.notify("notifications/initialized")
        return reply


@asynccontextmanager
async def open_sse(base: str, path: str = "/sse") -> AsyncIterator[SseSession]:
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
        session = SseSession(http, base)
        async with http.stream("GET", base + path) as response:
            session.response = response
            assert response.status_code == 200, response.status_code
            await nursery.start(session._read, response)
            try:
                yield session
            finally:
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def event_stream(
    http: httpx.AsyncClient, url: str, last_event_id: str | None = None
) -> AsyncIterator[AsyncIterator[Event]]:
    """A bare GET /sse (resuming after ``last_event_id``, if given): its events, as they
    come, for tests that drop and resume the connection themselves."""
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    async with http.stream("GET", url + "/sse", headers=headers) as response:
        assert response.status_code == 200
        yield parse_events(response.aiter_lines(), [])
