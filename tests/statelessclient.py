"""A small raw client of MCP's stateless wire (2026-07-28) for tests: real HTTP, the
headers a conforming client sends derived from the body, every message the server
sends schema-checked against the 2026-07-28 schema.

It shows the wire the official client hides: statuses, content types, and which
notifications came on a request's own response before its answer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from mcpschema import validate_server_message
from sseclient import Event, parse_events

MODERN = "2026-07-28"
BOTH = "application/json, text/event-stream"
#: The parameter an ``Mcp-Name`` header mirrors, per method.
NAMED = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
#: Notifications of extensions (tasks), which the core schema does not define.
EXTENSION_NOTIFICATIONS = frozenset({"notifications/tasks"})
#: What a client that can do everything declares.
ALL_CAPABILITIES: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}


def header_value(value: str) -> str:
    """A header value as a client sends it: plain when it is printable ASCII, else in
    the ``=?base64?...?=`` sentinel."""
    if value.isascii() and value.isprintable() and value == value.strip():
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


class StatelessClient:
    """Requests on one ``/mcp`` endpoint, each carrying everything about its client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        capabilities: dict[str, Any] | None = None,
        auth: dict[str, str] | None = None,
    ) -> None:
        self.http = http
        self.url = url
        self.capabilities = ALL_CAPABILITIES if capabilities is None else capabilities
        self.auth = auth or {}
        self._next_id = 0
        self._methods: dict[Any, str] = {}

    def request(
        self, method: str, params: dict[str, Any] | None = None, **meta: Any
    ) -> dict[str, Any]:
        """A request whose ``_meta`` says the revision and the client's capabilities,
        plus ``meta`` (e.g. ``progressToken``; keys with a ``/`` go in as given)."""
        self._next_id += 1
        body = dict(params or {})
        body["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "raw-stateless-client", "version": "1"},
            **meta,
        }
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": body}
        self._methods[self._next_id] = method
        return message

    def headers(
        self, message: dict[str, Any], accept: str = BOTH, **extra: str | None
    ) -> dict[str, str]:
        """The headers that mirror ``message``; ``extra`` adds or (None) removes some."""
        headers = {
            "accept": accept,
            "content-type": "application/json",
            "mcp-protocol-version": MODERN,
            **self.auth,
        }
        method = message.get("method")
        if isinstance(method, str):
            headers["mcp-method"] = method
            named = NAMED.get(method)
            params = message.get("params") or {}
            if named is not None and isinstance(params.get(named), str):
                headers["mcp-name"] = header_value(params[named])
        for name, value in extra.items():
            name = name.replace("_", "-").lower()
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        return headers

    def check(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` once it validates against the 2026-07-28 schema."""
        method = None if "method" in message else self._methods.get(message.get("id"))
        validate_server_message(MODERN, message, method)
        return message

    async def post(self, message: Any, accept: str = BOTH, **headers: str | None) -> httpx.Response:
        mirrored = self.headers(message if isinstance(message, dict) else {}, accept, **headers)
        return await self.http.post(self.url, content=json.dumps(message), headers=mirrored)

    @asynccontextmanager
    async def post_stream(
        self, message: dict[str, Any], accept: str = BOTH, **headers: str | None
    ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[Event]]]:
        """POST and read the answer as it comes: (response, its SSE events)."""
        async with self.http.stream(
            "POST",
            self.url,
            content=json.dumps(message),
            headers=self.headers(message, accept, **headers),
        ) as response:
            yield response, parse_events(response.aiter_lines(), [])

    async def exchange(
        self, message: dict[str, Any], accept: str = BOTH, **headers: str | None
    ) -> tuple[httpx.Response, list[dict[str, Any]]]:
        """POST and read the whole answer: (response, every message it carried, in
        order, each schema-checked), whether a JSON body or an event stream."""
        response = await self.post(message, accept, **headers)
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            messages = [
                json.loads(line[len("data:") :].strip())
                for line in response.text.splitlines()
                if line.startswith("data:") and line[len("data:") :].strip()
            ]
        elif response.content:
            messages = [response.json()]
        else:
            messages = []
        return response, [self.check(m) for m in messages]

    async def call(
        self, method: str, params: dict[str, Any] | None = None, **meta: Any
    ) -> dict[str, Any]:
        """A request that must succeed: its result."""
        response, messages = await self.exchange(self.request(method, params, **meta))
        assert response.status_code == 200, response.text
        assert "result" in messages[-1], messages[-1]
        return dict(messages[-1]["result"])


@asynccontextmanager
async def open_stateless(
    base: str, path: str = "/mcp", **options: Any
) -> AsyncIterator[StatelessClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield StatelessClient(http, base + path, **options)


class Listening:
    """One open ``subscriptions/listen``: its messages as they come, schema-checked."""

    def __init__(
        self, client: StatelessClient, request: dict[str, Any], events: AsyncIterator[Event]
    ) -> None:
        self.client = client
        self.request = request
        self._events = events

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        with trio.fail_after(timeout):
            async for event in self._events:
                if event.data:
                    message = json.loads(event.data)
                    if message.get("method") in EXTENSION_NOTIFICATIONS:
                        return message  # an extension's: not in the core schema
                    if "result" in message:
                        # The listen request's result: checked as a SubscriptionsListenResult.
                        validate_server_message(MODERN, message, "subscriptions/listen")
                        return message
                    return self.client.check(message)
        raise AssertionError("the listen stream ended")


@asynccontextmanager
async def listen(
    client: StatelessClient, notifications: dict[str, Any]
) -> AsyncIterator[Listening]:
    request = client.request("subscriptions/listen", {"notifications": notifications})
    async with client.post_stream(request, accept="text/event-stream") as (response, events):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Listening(client, request, events)
