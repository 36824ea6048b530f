"""HTTP+SSE streams resume: an EventSource that reconnects with its last event id gets
the same session, the same endpoint and every message it missed, within the grace."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from mcpschema import validate_server_message
from sseclient import event_stream

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


async def post(http: httpx.AsyncClient, url: str, endpoint: str, message: Any) -> None:
    response = await http.post(url + endpoint, json=message)
    assert response.status_code == 202, response.text


async def initialize(http: httpx.AsyncClient, url: str, endpoint: str) -> None:
    params = {
        "protocolVersion": "2024-11-05",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    await post(
        http, url, endpoint, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    )
    await post(http, url, endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"})


SLEEP = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "sleep", "arguments": {"seconds": 1.0}, "_meta": {"progressToken": 7}},
}


async def test_the_endpoint_event_carries_an_id_and_a_retry_delay(demo_url: str) -> None:
    async with httpx.AsyncClient() as http, http.stream("GET", demo_url + "/sse") as response:
        lines = response.aiter_lines()
        head = [await lines.__anext__() for _ in range(3)]
    assert head[0].startswith("id: ")
    assert head[1] == "event: endpoint"
    assert head[2] == f"retry: {trio_mcp.Settings().sse_retry_ms}"


async def test_a_dropped_stream_resumes_with_the_same_session_and_nothing_lost(
    demo_app: trio_mcp.App, demo_url: str
) -> None:
    seen: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as http:
        async with event_stream(http, demo_url) as events:
            endpoint_event = await events.__anext__()
            endpoint = endpoint_event.data
            await initialize(http, demo_url, endpoint)
            await post(http, demo_url, endpoint, SLEEP)
            last_id = endpoint_event.id
            async for event in events:
                last_id = event.id
                message = event.json()
                seen.append(message)
                if message.get("method") == "notifications/progress":
                    break  # the connection drops with the call in flight
        await trio.sleep(0.5)  # progress goes on while nobody listens
        assert len(demo_app.supervisor.store) == 1
        async with event_stream(http, demo_url, last_id) as events:
            again = await events.__anext__()
            assert (again.event, again.data) == ("endpoint", endpoint)
            async for event in events:
                message = event.json()
                seen.append(message)
                if message.get("id") == 1:
                    break
    for message in seen:
        validate_server_message(
            "2024-11-05",
            message,
            None if "method" in message else ("initialize" if message["id"] == 0 else "tools/call"),
        )
    progress = [m["params"]["progress"] for m in seen if m.get("method")]
    assert progress == sorted(set(progress)) and len(progress) >= 3
    assert [m["id"] for m in seen if "result" in m] == [0, 1]


async def test_an_unknown_last_event_id_starts_a_new_session(demo_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        async with event_stream(http, demo_url) as events:
            first = (await events.__anext__()).data
        forged = "0" * 32 + ".1"
        async with event_stream(http, demo_url, forged) as events:
            second = (await events.__anext__()).data
    assert first != second


async def test_after_the_grace_period_the_session_is_gone(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(resume_grace=0.2))
    async with serve_app(app) as url, httpx.AsyncClient(timeout=10) as http:
        async with event_stream(http, url) as events:
            endpoint_event = await events.__anext__()
        with trio.fail_after(5):
            while len(app.supervisor.store):
                await trio.sleep(0.02)
        response = await http.post(
            url + endpoint_event.data, json={"jsonrpc": "2.0", "method": "x"}
        )
        assert response.status_code == 404
        async with event_stream(http, url, endpoint_event.id) as events:
            assert (await events.__anext__()).data != endpoint_event.data


async def test_a_reconnection_takes_over_from_a_stream_still_open(demo_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        async with event_stream(http, demo_url) as old:
            endpoint_event = await old.__anext__()
            async with event_stream(http, demo_url, endpoint_event.id) as new:
                assert (await new.__anext__()).data == endpoint_event.data
                await initialize(http, demo_url, endpoint_event.data)
                reply = await new.__anext__()
                assert json.loads(reply.data)["id"] == 0
                # The old connection was ended rather than left to compete for events.
                assert [event async for event in old] == []
