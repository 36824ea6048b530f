"""The official MCP Python client (PyPI ``mcp``) against the demo over real HTTP+SSE."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


async def test_official_client_initializes_and_lists_the_demo_tools(demo_url: str) -> None:
    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert init.server_info.name == "trio-mcp-demo"
        tools = await session.list_tools()
        assert {tool.name for tool in tools.tools} >= {"echo", "add", "sleep"}


async def test_official_client_calls_echo_and_add(demo_url: str) -> None:
    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        echoed = await session.call_tool("echo", {"text": "héllo"})
        assert not echoed.is_error
        assert echoed.content[0].text == "héllo"
        added = await session.call_tool("add", {"a": 2, "b": 40})
        assert not added.is_error
        assert added.structured_content == {"result": 42}


async def test_official_client_receives_progress_from_sleep(demo_url: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("sleep", {"seconds": 0.6}, progress_callback=on_progress)
        assert not result.is_error
    assert len(progress) >= 3
    assert progress == sorted(progress)


async def test_official_client_sees_a_wrong_argument_as_a_tool_error(demo_url: str) -> None:
    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("add", {"a": 1, "b": "2"})
        assert result.is_error
        assert "'b'" in result.content[0].text
        assert "integer" in result.content[0].text


async def test_official_client_pings(demo_url: str) -> None:
    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.send_ping()


async def test_a_fast_call_is_answered_while_a_slow_one_runs(demo_url: str) -> None:
    finished: list[str] = []

    async with (
        sse_client(demo_url + "/sse") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()

        async def slow() -> None:
            await session.call_tool("sleep", {"seconds": 2})
            finished.append("slow")

        async def fast() -> Any:
            await trio.sleep(0.2)
            await session.call_tool("echo", {"text": "quick"})
            finished.append("fast")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            nursery.start_soon(fast)
    assert finished == ["fast", "slow"]
