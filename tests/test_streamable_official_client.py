"""The official MCP Python client's Streamable HTTP transport against the demo and
everything servers over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


@asynccontextmanager
async def official(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url + "/mcp") as (read, write):
        async with ClientSession(read, write, **callbacks) as session:
            await session.initialize()
            yield session


async def test_official_client_initializes_lists_and_calls_the_demo_tools(demo_url: str) -> None:
    async with official(demo_url) as client:
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} >= {"echo", "add", "sleep"}
        echoed = await client.call_tool("echo", {"text": "héllo"})
        added = await client.call_tool("add", {"a": 2, "b": 40})
    assert echoed.content[0].text == "héllo"  # type: ignore[union-attr]
    assert added.structured_content == {"result": 42}


async def test_official_client_receives_progress_on_the_calls_stream(demo_url: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with official(demo_url) as client:
        result = await client.call_tool("sleep", {"seconds": 0.6}, progress_callback=on_progress)
    assert not result.is_error
    assert len(progress) >= 3 and progress == sorted(progress)


async def test_official_client_sees_a_wrong_argument_as_a_tool_error(demo_url: str) -> None:
    async with official(demo_url) as client:
        result = await client.call_tool("add", {"a": 1, "b": "2"})
    assert result.is_error
    assert "'b'" in result.content[0].text  # type: ignore[union-attr]


async def test_official_client_answers_sampling_on_the_calls_stream(everything_url: str) -> None:
    async def sample(
        context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="test-model",
        )

    async with official(everything_url, sampling_callback=sample) as client:
        result = await client.call_tool("test_sampling", {"prompt": "the answer?"})
    assert result.content[0].text == "LLM response: forty-two"  # type: ignore[union-attr]


async def test_official_client_ends_its_session_with_delete(
    demo_app: trio_mcp.App, demo_url: str
) -> None:
    async with official(demo_url) as client:
        await client.send_ping()
        assert len(demo_app.supervisor.store) == 1
    with trio.fail_after(5):
        while len(demo_app.supervisor.store):
            await trio.sleep(0.01)


async def test_a_fast_call_is_answered_while_a_slow_one_runs(demo_url: str) -> None:
    finished: list[str] = []
    async with official(demo_url) as client:

        async def slow() -> None:
            await client.call_tool("sleep", {"seconds": 1.5})
            finished.append("slow")

        async def fast() -> None:
            await trio.sleep(0.2)
            await client.call_tool("echo", {"text": "quick"})
            finished.append("fast")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            nursery.start_soon(fast)
    assert finished == ["fast", "slow"]
