"""Streamable HTTP on /mcp over real HTTP, with a raw client that shows every status,
header and event, each message checked against the negotiated revision's schema."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from hosts import in_server_run
from streamclient import BOTH, McpClient, messages, open_client

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@pytest.fixture
async def client(demo_url: str) -> AsyncIterator[McpClient]:
    async with open_client(demo_url) as mcp:
        await mcp.initialize()
        yield mcp


def sleep_call(mcp: McpClient, seconds: float, token: str | None = "t") -> dict[str, Any]:
    params: dict[str, Any] = {"name": "sleep", "arguments": {"seconds": seconds}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return mcp.request("tools/call", params)


# -- sessions --


async def test_initialize_returns_a_session_id_of_128_random_bits(demo_url: str) -> None:
    async with open_client(demo_url) as first, open_client(demo_url) as second:
        await first.initialize()
        await second.initialize()
    for mcp in (first, second):
        assert mcp.session_id is not None
        assert re.fullmatch(r"[0-9a-f]{32}", mcp.session_id)
    assert first.session_id != second.session_id


async def test_a_request_without_a_session_id_is_400(demo_url: str) -> None:
    async with open_client(demo_url) as mcp:
        response = await mcp.post(mcp.request("tools/list"))
    assert response.status_code == 400
    assert "Mcp-Session-Id" in response.json()["error"]["message"]


async def test_an_unknown_session_id_is_404(demo_url: str) -> None:
    async with open_client(demo_url) as mcp:
        mcp.session_id = "0" * 32
        response = await mcp.post(mcp.request("tools/list"))
    assert response.status_code == 404


async def test_a_refused_initialize_creates_no_session(
    demo_app: trio_mcp.App, demo_url: str
) -> None:
    async with open_client(demo_url) as mcp:
        response = await mcp.post({**INITIALIZE, "params": {"capabilities": {}}})
    assert response.status_code == 200
    assert response.json()["error"]["code"] == trio_mcp.INVALID_PARAMS
    assert "mcp-session-id" not in response.headers
    assert len(demo_app.supervisor.store) == 0


async def test_an_unsupported_protocol_version_header_is_400(client: McpClient) -> None:
    response = await client.post(client.request("ping"), mcp_protocol_version="1999-01-01")
    assert response.status_code == 400
    assert "MCP-Protocol-Version" in response.json()["error"]["message"]


async def test_delete_ends_the_session_and_later_requests_get_404(
    demo_app: trio_mcp.App, client: McpClient
) -> None:
    response = await client.http.delete(client.url, headers=client.headers())
    assert response.status_code == 200
    assert len(demo_app.supervisor.store) == 0
    assert (await client.post(client.request("tools/list"))).status_code == 404


async def test_an_http_sse_session_id_is_not_a_streamable_one(demo_url: str) -> None:
    from sseclient import open_sse

    async with open_sse(demo_url) as sse, open_client(demo_url) as mcp:
        await sse.initialize()
        mcp.session_id = sse.session_id
        response = await mcp.post(mcp.request("tools/list"))
    assert response.status_code == 404


# -- POST: how replies come back --


async def test_notifications_alone_are_accepted_with_202_and_no_body(client: McpClient) -> None:
    response = await client.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert response.status_code == 202
    assert response.content == b""


async def test_a_reply_with_nothing_before_it_is_plain_json(client: McpClient) -> None:
    response = await client.post(
        client.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["mcp-session-id"] == client.session_id
    assert client.check(response.json())["result"]["content"][0]["text"] == "hi"


async def test_progress_before_the_reply_makes_an_event_stream_that_ends_after_it(
    client: McpClient,
) -> None:
    request = sleep_call(client, 0.6)
    async with client.post_stream(request) as (response, events):
        assert response.headers["content-type"] == "text/event-stream"
        received = [event async for event in events]
    priming = received[0]
    assert priming.data == "" and priming.id is not None
    replies = [client.check(m) for m in messages(received)]
    assert [m.get("method") for m in replies[:-1]] == ["notifications/progress"] * (
        len(replies) - 1
    )
    assert len(replies) >= 3
    assert replies[-1]["id"] == request["id"] and "result" in replies[-1]


async def test_a_reply_slower_than_the_json_wait_comes_as_a_resumable_stream(
    serve_app: Any,
) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(json_reply_wait=0.2))
    async with serve_app(app) as url, open_client(url) as mcp:
        await mcp.initialize()
        request = sleep_call(mcp, 0.6, token=None)  # no progress: only the reply will come
        async with mcp.post_stream(request) as (response, events):
            assert response.headers["content-type"] == "text/event-stream"
            priming = await events.__anext__()
        assert priming.data == "" and priming.id is not None
        # The connection dropped with the call in flight; its reply is kept for resumption.
        async with mcp.get_stream(last_event_id=priming.id) as (response, events):
            assert response.status_code == 200
            rest = messages([event async for event in events])
        assert [mcp.check(m)["id"] for m in rest] == [request["id"]]


async def test_a_reply_within_the_json_wait_is_plain_json_however_long_it_took(
    client: McpClient,
) -> None:
    response = await client.post(sleep_call(client, 0.3, token=None))
    assert response.headers["content-type"] == "application/json"
    assert "result" in client.check(response.json())


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18"])
async def test_a_client_before_2025_11_25_gets_no_priming_event(
    demo_url: str, version: str
) -> None:
    async with open_client(demo_url) as mcp:
        await mcp.initialize(version)
        async with mcp.post_stream(sleep_call(mcp, 0.3), accept="text/event-stream") as (
            _,
            events,
        ):
            received = [event async for event in events]
    assert received and all(event.data for event in received)
    assert all(event.id for event in received)  # still resumable


async def test_a_client_that_takes_only_event_streams_gets_one(client: McpClient) -> None:
    async with client.post_stream(client.request("ping"), accept="text/event-stream") as (
        response,
        events,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        received = [event async for event in events]
    assert messages(received) == [{"jsonrpc": "2.0", "id": 2, "result": {}}]


async def test_a_client_that_takes_only_json_gets_json_and_its_progress_elsewhere(
    client: McpClient,
) -> None:
    progress: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery, client.get_stream() as (response, events):
        assert response.status_code == 200

        async def read_standalone() -> None:
            async for event in events:
                if event.data:
                    progress.append(client.check(event.json()))

        nursery.start_soon(read_standalone)
        request = sleep_call(client, 0.6)
        reply = await client.post(request, accept="application/json")
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["id"] == request["id"]
        nursery.cancel_scope.cancel()
    assert progress and all(m["method"] == "notifications/progress" for m in progress)


async def test_a_client_that_takes_neither_json_nor_event_streams_gets_406(
    client: McpClient,
) -> None:
    response = await client.post(client.request("ping"), accept="text/html")
    assert response.status_code == 406


async def test_requests_on_separate_posts_run_concurrently(client: McpClient) -> None:
    done: list[str] = []

    async def slow() -> None:
        async with client.post_stream(sleep_call(client, 1.0, token=None)) as (_, events):
            _ = [event async for event in events]
        done.append("slow")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow)
        await trio.sleep(0.1)
        await client.call("tools/call", {"name": "echo", "arguments": {"text": "fast"}})
        done.append("fast")
    assert done == ["fast", "slow"]


async def test_a_request_id_in_flight_cannot_be_reused(client: McpClient) -> None:
    request = sleep_call(client, 1.0, token=None)
    async with trio.open_nursery() as nursery:

        async def first() -> None:
            async with client.post_stream(request) as (_, events):
                _ = [event async for event in events]

        nursery.start_soon(first)
        await trio.sleep(0.2)
        again = await client.post(request)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == trio_mcp.INVALID_REQUEST


async def test_batches_are_answered_as_an_array_on_2025_03_26(demo_url: str) -> None:
    async with open_client(demo_url) as mcp:
        await mcp.initialize("2025-03-26")
        batch = [mcp.request("ping"), mcp.request("tools/list")]
        response = await mcp.post(batch)
    assert response.status_code == 200
    replies = response.json()
    assert [reply["id"] for reply in replies] == [batch[0]["id"], batch[1]["id"]]


async def test_batches_are_refused_from_2025_06_18_on(client: McpClient) -> None:
    response = await client.post([client.request("ping"), client.request("ping")])
    assert response.status_code == 400


async def test_invalid_json_is_400_with_a_parse_error(client: McpClient) -> None:
    response = await client.http.post(client.url, content=b"{nope", headers=client.headers())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == trio_mcp.PARSE_ERROR


# -- GET: the standalone stream --


async def test_a_get_without_a_session_is_400(demo_url: str) -> None:
    async with open_client(demo_url) as mcp, mcp.get_stream() as (response, _):
        assert response.status_code == 400


async def test_only_one_standalone_stream_at_a_time(client: McpClient) -> None:
    async with client.get_stream() as (first, _):
        assert first.status_code == 200
        async with client.get_stream() as (second, _):
            assert second.status_code == 409


async def test_server_notifications_go_to_the_standalone_stream(serve_app: Any) -> None:
    server = trio_mcp.Server("changing")

    @server.tool()
    async def one() -> str:
        """The first tool."""
        return "1"

    app = server.asgi_app()
    async with serve_app(app) as url, open_client(url) as mcp:
        await mcp.initialize()
        async with mcp.get_stream() as (response, events):
            assert response.headers["content-type"] == "text/event-stream"
            priming = await events.__anext__()
            assert priming.data == "" and priming.id

            async def two() -> str:
                """A second tool."""
                return "2"

            await in_server_run(app, partial(server.add_tool, two))
            with trio.fail_after(5):
                event = await events.__anext__()
    assert mcp.check(event.json())["method"] == "notifications/tools/list_changed"


# -- resumption --


async def test_a_dropped_post_stream_resumes_with_no_reply_lost_or_repeated(
    client: McpClient,
) -> None:
    request = sleep_call(client, 1.0)
    seen: list[dict[str, Any]] = []
    async with client.post_stream(request) as (_, events):
        last_id = None
        async for event in events:
            last_id = event.id
            if event.data:
                seen.append(event.json())
                break  # the connection drops after the first progress report
    assert last_id is not None
    async with client.get_stream(last_event_id=last_id) as (response, events):
        assert response.status_code == 200
        rest = [event async for event in events]
    seen += messages(rest)
    for message in seen:
        client.check(message)
    progress = [m["params"]["progress"] for m in seen if m.get("method")]
    assert progress == sorted(set(progress)), "a progress report was repeated or reordered"
    assert [m["id"] for m in seen if "result" in m] == [request["id"]]


async def test_an_event_id_of_another_session_resumes_nothing(demo_url: str) -> None:
    async with open_client(demo_url) as owner, open_client(demo_url) as other:
        await owner.initialize()
        await other.initialize()
        async with owner.post_stream(sleep_call(owner, 0.3)) as (_, events):
            stolen = (await events.__anext__()).id
        assert stolen is not None
        async with other.get_stream(last_event_id=stolen) as (response, events):
            assert response.status_code == 400
            assert [event async for event in events] == []


async def test_a_malformed_last_event_id_is_400(client: McpClient) -> None:
    async with client.get_stream(last_event_id="nonsense") as (response, _):
        assert response.status_code == 400


# -- security --


async def test_a_foreign_origin_is_403(client: McpClient) -> None:
    response = await client.post(client.request("ping"), origin="http://evil.example")
    assert response.status_code == 403


async def test_the_servers_own_origin_is_served(client: McpClient) -> None:
    own = "http://" + httpx.URL(client.url).netloc.decode()
    response = await client.post(client.request("ping"), origin=own)
    assert response.status_code == 200


async def test_a_foreign_host_on_loopback_is_refused_as_dns_rebinding(demo_url: str) -> None:
    async with open_client(demo_url) as mcp:
        response = await mcp.post(INITIALIZE, host="evil.example", origin="http://evil.example")
    assert response.status_code == 421


async def test_an_allowed_host_and_origin_are_served(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    settings = trio_mcp.Settings(
        allowed_hosts=["mcp.example"], allowed_origins=["https://app.example"]
    )
    async with serve_app(demo.asgi_app(settings)) as url, open_client(url) as mcp:
        response = await mcp.post(INITIALIZE, host="mcp.example", origin="https://app.example")
    assert response.status_code == 200


async def test_the_endpoint_answers_405_with_the_methods_it_has(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.put(demo_url + "/mcp", headers={"accept": BOTH})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, GET, DELETE"
