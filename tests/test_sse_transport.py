"""The HTTP+SSE transport (2024-11-05) over real HTTP: statuses, events, JSON-RPC errors.

Every message the server sends is checked against the official schema of the session's
negotiated revision by :class:`sseclient.SseSession`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from sseclient import SseSession, open_sse

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


@pytest.fixture
async def session(demo_url: str) -> AsyncIterator[SseSession]:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        yield sse


# -- the stream -------------------------------------------------------------------------


async def test_get_sse_answers_an_event_stream_that_proxies_must_not_buffer(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        assert sse.response is not None
        headers = sse.response.headers
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"


async def test_first_event_names_a_session_url_with_128_random_bits(demo_url: str) -> None:
    async with open_sse(demo_url) as first, open_sse(demo_url) as second:
        assert re.fullmatch(r"/messages/\?session_id=[0-9a-f]{32}", first.endpoint)
        assert first.session_id != second.session_id


async def test_heartbeat_comments_keep_an_idle_stream_alive(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(heartbeat_interval=0.1))
    async with serve_app(app) as url:
        opened = trio.current_time()
        async with open_sse(url) as sse:
            with trio.fail_after(10):  # a busy machine may delay them, never lose them
                while len(sse.comments) < 3:
                    await trio.sleep(0.01)
            arrived = trio.current_time() - opened
    assert set(sse.comments) == {": ping"}
    assert arrived >= 0.2  # paced by the interval, not sent as fast as possible


# -- POST statuses ------------------------------------------------------------------------


async def test_a_message_is_accepted_with_202_and_answered_on_the_stream(
    session: SseSession,
) -> None:
    reply = await session.call("ping")
    assert reply == {"jsonrpc": "2.0", "id": reply["id"], "result": {}}


async def test_invalid_json_is_refused_with_400_and_a_parse_error(session: SseSession) -> None:
    response = await session.http.post(
        session.base + session.endpoint,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == trio_mcp.PARSE_ERROR


async def test_a_message_without_method_is_refused_with_400_and_invalid_request(
    session: SseSession,
) -> None:
    response = await session.post({"jsonrpc": "2.0", "id": 5})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == trio_mcp.INVALID_REQUEST
    assert body["id"] == 5


async def test_a_wrong_jsonrpc_version_is_refused_with_invalid_request(session: SseSession) -> None:
    response = await session.post({"jsonrpc": "1.0", "id": 1, "method": "ping"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == trio_mcp.INVALID_REQUEST


async def test_an_unknown_session_is_404(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            demo_url + "/messages/?session_id=" + "0" * 32,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        )
    assert response.status_code == 404


async def test_a_missing_session_id_is_400(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            demo_url + "/messages/", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
        )
    assert response.status_code == 400
    assert "session_id" in response.json()["error"]["message"]


async def test_a_post_that_is_not_json_content_is_415(session: SseSession) -> None:
    response = await session.http.post(
        session.base + session.endpoint, content=b"{}", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


async def test_the_wrong_method_on_an_endpoint_is_405(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(demo_url + "/messages/")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        response = await http.post(demo_url + "/sse", json={})
        assert response.status_code == 405


async def test_a_body_larger_than_the_limit_is_413(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(max_body_bytes=1000))
    async with serve_app(app) as url, open_sse(url) as sse:
        response = await sse.post(
            {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "y" * 2000}}
        )
        assert response.status_code == 413
        assert (await sse.call("ping"))["result"] == {}


# -- JSON-RPC ------------------------------------------------------------------------------


async def test_requests_before_initialize_get_invalid_request(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        reply = await sse.call("tools/list")
        assert reply["error"]["code"] == trio_mcp.INVALID_REQUEST
        assert "initialize" in reply["error"]["message"]


async def test_ping_answers_exactly_an_empty_object_before_and_after_initialize(
    demo_url: str,
) -> None:
    async with open_sse(demo_url) as sse:
        assert (await sse.call("ping"))["result"] == {}
        await sse.initialize()
        assert (await sse.call("ping"))["result"] == {}


async def test_an_unknown_method_is_method_not_found(session: SseSession) -> None:
    reply = await session.call("tools/frobnicate")
    assert reply["error"]["code"] == trio_mcp.METHOD_NOT_FOUND


async def test_an_unknown_tool_is_invalid_params(session: SseSession) -> None:
    reply = await session.call("tools/call", {"name": "nope", "arguments": {}})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


async def test_tool_arguments_that_are_not_an_object_are_invalid_params(
    session: SseSession,
) -> None:
    reply = await session.call("tools/call", {"name": "echo", "arguments": ["x"]})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


async def test_string_and_integer_ids_are_both_echoed(session: SseSession) -> None:
    for request_id in ("abc-1", 77):
        assert (await session.post_request(request_id, "ping")).status_code == 202
        assert (await session.reply_to(request_id))["result"] == {}  # type: ignore[arg-type]


async def test_notifications_are_never_answered(session: SseSession) -> None:
    await session.notify("notifications/roots/list_changed")
    await session.notify("notifications/something/unknown")
    request_id = await session.send_request("ping")
    assert (await session.receive())["id"] == request_id


async def test_a_request_id_in_flight_cannot_be_reused(session: SseSession) -> None:
    params = {"name": "sleep", "arguments": {"seconds": 1}}
    await session.post_request(9, "tools/call", params)
    await session.post_request(9, "tools/call", params)
    first = await session.receive()
    assert first["id"] == 9
    assert first["error"]["code"] == trio_mcp.INVALID_REQUEST


async def test_a_second_initialize_is_refused(session: SseSession) -> None:
    reply = await session.call(
        "initialize",
        {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "x", "version": "1"},
        },
    )
    assert reply["error"]["code"] == trio_mcp.INVALID_REQUEST


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
async def test_a_batch_is_served_on_revisions_that_have_batches(
    demo_url: str, version: str
) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize(version)
        batch = [
            {"jsonrpc": "2.0", "id": 100, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
            {
                "jsonrpc": "2.0",
                "id": 101,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "b"}},
            },
        ]
        sse.expect({100: "ping", 101: "tools/call"})
        assert (await sse.post(batch)).status_code == 202
        replies = {(await sse.receive())["id"] for _ in range(2)}
        assert replies == {100, 101}


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
async def test_a_batch_is_refused_on_revisions_without_batches(demo_url: str, version: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize(version)
        response = await sse.post([{"jsonrpc": "2.0", "id": 100, "method": "ping"}])
        assert response.status_code == 400
        assert response.json()["error"]["code"] == trio_mcp.INVALID_REQUEST


async def test_a_batch_with_an_invalid_member_is_refused_whole(session: SseSession) -> None:
    session.version = "2025-03-26"
    async with open_sse(session.base) as sse:
        await sse.initialize("2025-03-26")
        response = await sse.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"id": 2}])
        assert response.status_code == 400
        errors = response.json()
        assert [e["error"]["code"] for e in errors] == [trio_mcp.INVALID_REQUEST]
        reply = await sse.call("ping")
        assert reply["id"] != 1  # the valid member was not acted on


# -- lifecycle and schema, per revision ----------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_initialize_negotiates_the_clients_revision(demo_url: str, version: str) -> None:
    async with open_sse(demo_url) as sse:
        reply = await sse.initialize(version)
        assert reply["result"]["protocolVersion"] == version
        assert reply["result"]["capabilities"]["tools"] == {"listChanged": True}


async def test_initialize_with_an_unknown_revision_answers_the_latest(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        reply = await sse.initialize("1999-01-01")
        assert reply["result"]["protocolVersion"] == trio_mcp.LATEST_VERSION


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_demo_message_matches_the_negotiated_schema(
    demo_url: str, version: str
) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize(version)
        await sse.call("tools/list")
        await sse.call("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        await sse.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        await sse.call("tools/call", {"name": "add", "arguments": {"a": 1}})
        await sse.call(
            "tools/call",
            {"name": "sleep", "arguments": {"seconds": 0.3}, "_meta": {"progressToken": "p1"}},
        )
        await sse.call("logging/setLevel", {"level": "debug"})
        await sse.call("ping")
        methods = [m.get("method") for m in sse.messages]
        assert "notifications/progress" in methods
        assert len(sse.messages) >= 9


@pytest.mark.parametrize("version", VERSIONS)
async def test_structured_content_appears_only_from_2025_06_18(demo_url: str, version: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize(version)
        result = (await sse.call("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}))[
            "result"
        ]
        assert json.loads(result["content"][0]["text"]) == 5
        assert ("structuredContent" in result) == (version >= "2025-06-18")


# -- sessions ---------------------------------------------------------------------------------


async def test_sessions_are_isolated(demo_url: str) -> None:
    async with open_sse(demo_url) as alice, open_sse(demo_url) as bob:
        await alice.initialize()
        await bob.initialize()
        await alice.call("tools/call", {"name": "echo", "arguments": {"text": "for alice"}})
        await bob.call("tools/call", {"name": "echo", "arguments": {"text": "for bob"}})
        assert "for bob" not in json.dumps(alice.messages)
        assert "for alice" not in json.dumps(bob.messages)


async def test_without_a_grace_period_a_dropped_stream_ends_the_session_and_posts_get_404(
    serve_app: Any,
) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(resume_grace=0))
    async with serve_app(app) as url:
        async with open_sse(url) as sse:
            await sse.initialize()
            endpoint = sse.endpoint
            assert len(app.supervisor.store) == 1
        with trio.fail_after(5):
            while len(app.supervisor.store):
                await trio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            response = await http.post(
                url + endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
            )
    assert response.status_code == 404
