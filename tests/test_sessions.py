"""Session behaviour over real HTTP with purpose-built servers: errors, cancellation,
server-to-client requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from sseclient import SseSession, open_sse

import trio_mcp


class BrokenServer(trio_mcp.Server):
    """A server whose own code fails outside any tool: the internal-error path."""

    async def handle_request(self, request: Any, context: trio_mcp.Context) -> Any:
        if request.method == "tools/list":
            raise RuntimeError("secret internal detail")
        return await super().handle_request(request, context)


def build_server() -> trio_mcp.Server:
    server = BrokenServer("sessions-test")
    started = trio.Event()
    server.started = started  # type: ignore[attr-defined]

    @server.tool()
    async def explode() -> str:
        """Always fails."""
        raise KeyError("the tool's own message")

    @server.tool()
    async def refuse() -> str:
        """Fails on purpose."""
        raise trio_mcp.ToolError("not today")

    @server.tool()
    async def ask_roots(ctx: trio_mcp.Context) -> list[str]:
        """Ask the client for its roots."""
        result = await ctx.send_request("roots/list", timeout=5)
        return [root["uri"] for root in result["roots"]]

    @server.tool()
    async def ask_briefly(ctx: trio_mcp.Context) -> str:
        """Ask the client something it will not answer in time."""
        await ctx.send_request("roots/list", timeout=0.3)
        return "unreachable"

    @server.tool()
    async def wait_forever(ctx: trio_mcp.Context) -> str:
        """Run until cancelled."""
        started.set()
        await trio.sleep_forever()
        return "unreachable"

    return server


@pytest.fixture
async def session(serve_app: Any) -> AsyncIterator[SseSession]:
    server = build_server()
    async with serve_app(server.asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize()
        sse.server = server  # type: ignore[attr-defined]
        yield sse


async def call_tool(session: SseSession, name: str, arguments: dict[str, Any] | None = None) -> Any:
    return await session.call("tools/call", {"name": name, "arguments": arguments or {}})


async def test_a_tool_that_raises_gives_an_error_result_without_a_traceback(
    session: SseSession,
) -> None:
    result = (await call_tool(session, "explode"))["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "the tool's own message" in text
    assert "Traceback" not in text and ".py" not in text


async def test_a_tool_error_carries_exactly_its_message(session: SseSession) -> None:
    result = (await call_tool(session, "refuse"))["result"]
    assert result == {"content": [{"type": "text", "text": "not today"}], "isError": True}


async def test_the_server_goes_on_after_a_tool_fails(session: SseSession) -> None:
    await call_tool(session, "explode")
    assert (await session.call("ping"))["result"] == {}


async def test_a_failure_in_server_code_is_internal_error_without_details(
    session: SseSession,
) -> None:
    reply = await session.call("tools/list")
    assert reply["error"]["code"] == trio_mcp.INTERNAL_ERROR
    assert "secret" not in str(reply["error"])
    assert "data" not in reply["error"]


async def test_a_server_request_is_answered_by_the_clients_post(session: SseSession) -> None:
    call_id = await session.send_request("tools/call", {"name": "ask_roots", "arguments": {}})
    request = await session.receive()
    assert request["method"] == "roots/list"
    answer = {
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {"roots": [{"uri": "file:///tmp/x"}]},
    }
    assert (await session.post(answer)).status_code == 202
    reply = await session.reply_to(call_id)
    assert reply["result"]["structuredContent"] == {"result": ["file:///tmp/x"]}


async def test_a_clients_error_reply_reaches_the_waiting_tool(session: SseSession) -> None:
    call_id = await session.send_request("tools/call", {"name": "ask_roots", "arguments": {}})
    request = await session.receive()
    error = {
        "jsonrpc": "2.0",
        "id": request["id"],
        "error": {"code": -32601, "message": "no roots here"},
    }
    assert (await session.post(error)).status_code == 202
    result = (await session.reply_to(call_id))["result"]
    assert result["isError"] is True
    assert "no roots here" in result["content"][0]["text"]


async def test_an_unanswered_server_request_times_out_and_is_cancelled(session: SseSession) -> None:
    call_id = await session.send_request("tools/call", {"name": "ask_briefly", "arguments": {}})
    request = await session.receive()
    assert request["method"] == "roots/list"
    cancelled = await session.receive()
    assert cancelled["method"] == "notifications/cancelled"
    assert cancelled["params"]["requestId"] == request["id"]
    result = (await session.reply_to(call_id))["result"]
    assert result["isError"] is True


async def test_a_reply_to_an_unknown_request_is_accepted_and_ignored(session: SseSession) -> None:
    stray = {"jsonrpc": "2.0", "id": 12345, "result": {}}
    assert (await session.post(stray)).status_code == 202
    assert (await session.call("ping"))["result"] == {}


async def test_cancelled_notification_stops_the_handler_and_no_reply_is_sent(
    session: SseSession,
) -> None:
    call_id = await session.send_request("tools/call", {"name": "wait_forever", "arguments": {}})
    with trio.fail_after(5):
        await session.server.started.wait()  # type: ignore[attr-defined]
    await session.notify(
        "notifications/cancelled", {"requestId": call_id, "reason": "changed my mind"}
    )
    ping = await session.send_request("ping")
    assert (await session.receive())["id"] == ping  # the cancelled call sent nothing first
    with trio.move_on_after(0.3):
        message = await session.receive()
        pytest.fail(f"unexpected message after cancellation: {message}")


async def test_cancelling_the_demo_sleep_stops_its_progress(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        call_id = await sse.send_request(
            "tools/call",
            {"name": "sleep", "arguments": {"seconds": 5}, "_meta": {"progressToken": 7}},
        )
        assert (await sse.receive())["method"] == "notifications/progress"
        await sse.notify("notifications/cancelled", {"requestId": call_id})
        await trio.sleep(0.6)
        seen = len(sse.messages)
        await trio.sleep(0.6)
        assert len(sse.messages) == seen
        assert all(m.get("id") != call_id for m in sse.messages)


async def test_adding_a_tool_at_run_time_notifies_list_changed(session: SseSession) -> None:
    async def late() -> str:
        return "late"

    session.server.add_tool(late)  # type: ignore[attr-defined]
    notification = await session.receive()
    assert notification["method"] == "notifications/tools/list_changed"
    result = (await call_tool(session, "late"))["result"]
    assert result["content"] == [{"type": "text", "text": "late"}]


async def test_sessions_are_registered_in_the_store_the_app_was_given(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    store = trio_mcp.InMemorySessionStore()
    async with serve_app(demo.asgi_app(store=store)) as url, open_sse(url) as sse:
        await sse.initialize()
        session = store.get(sse.session_id)
        assert session is not None and session.id == sse.session_id
