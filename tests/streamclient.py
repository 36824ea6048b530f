"""A small raw Streamable HTTP client for tests: real HTTP, every message schema-checked.

It shows the wire the official client hides: statuses, headers, the priming event,
event ids, and which stream carried what.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcpschema import validate_server_message
from sseclient import Event, parse_events

BOTH = "application/json, text/event-stream"


class McpClient:
    """One Streamable HTTP session: POSTs, GET streams and DELETE on one endpoint."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.session_id: str | None = None
        self.version = "2025-11-25"
        self._next_id = 0
        self._methods: dict[Any, str] = {}

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def headers(self, accept: str = BOTH, **extra: str) -> dict[str, str]:
        headers = {"accept": accept, "content-type": "application/json"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = self.version
        headers.update({name.replace("_", "-"): value for name, value in extra.items()})
        return headers

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id(), "method": method}
        if params is not None:
            message["params"] = params
        self._methods[message["id"]] = method
        return message

    def check(self, message: dict[str, Any]) -> dict[str, Any]:
        method = None if "method" in message else self._methods.get(message.get("id"))
        validate_server_message(self.version, message, method)
        return message

    async def post(self, payload: Any, accept: str = BOTH, **headers: str) -> httpx.Response:
        return await self.http.post(
            self.url, content=json.dumps(payload), headers=self.headers(accept, **headers)
        )

    @asynccontextmanager
    async def post_stream(
        self, payload: Any, accept: str = BOTH, **headers: str
    ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[Event]]]:
        """POST and read the answer as it comes: (response, its SSE events)."""
        async with self.http.stream(
            "POST", self.url, content=json.dumps(payload), headers=self.headers(accept, **headers)
        ) as response:
            yield response, parse_events(response.aiter_lines(), [])

    @asynccontextmanager
    async def get_stream(
        self, **headers: str
    ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[Event]]]:
        async with self.http.stream(
            "GET", self.url, headers=self.headers("text/event-stream", **headers)
        ) as response:
            yield response, parse_events(response.aiter_lines(), [])

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request answered as one JSON body (the client accepts only JSON)."""
        response = await self.post(self.request(method, params), accept="application/json")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return self.check(response.json())

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.post(
            self.request(
                "initialize",
                {
                    "protocolVersion": version,
                    "capabilities": {"sampling": {}} if capabilities is None else capabilities,
                    "clientInfo": {"name": "raw-streamable-client", "version": "1"},
                },
            )
        )
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        reply = response.json()
        self.version = reply["result"]["protocolVersion"]
        self.check(reply)
        notified = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert notified.status_code == 202, notified.text
        return dict(reply)


@asynccontextmanager
async def open_client(base: str, path: str = "/mcp") -> AsyncIterator[McpClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield McpClient(http, base + path)


def messages(events: list[Event]) -> list[dict[str, Any]]:
    """The JSON-RPC messages among events (priming events carry no data)."""
    return [event.json() for event in events if event.data]
