"""The official MCP Python client (``mcp`` 2.3) against trio-mcp over real HTTP: in its
default ``auto`` mode it takes the stateless wire (MCP 2026-07-28), and answers a tool's
questions (elicitation, sampling, roots) through its callbacks, round by round; a
2025-11-25 session client shares the endpoint with it meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
import pytest
import trio
from mcp import Client

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


@pytest.fixture
async def served(serve_app: Any) -> AsyncIterator[tuple[trio_mcp.App, str]]:
    import everything

    app = everything.server.asgi_app()
    async with serve_app(app) as base:
        yield app, base + "/mcp"


async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def sample(
    context: Any, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="Paris"), model="m"
    )


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])


def text(result: types.CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, types.TextContent), content
    return content.text


async def test_the_official_client_in_auto_mode_takes_the_stateless_wire(
    served: tuple[trio_mcp.App, str],
) -> None:
    app, url = served
    async with Client(url) as client:
        assert client.protocol_version == "2026-07-28"
        assert client.session.discover_result is not None
        assert client.session.initialize_result is None
        assert client.server_info is not None and client.server_info.name == "trio-mcp-everything"
        tools = await client.list_tools()
        result = await client.call_tool("test_simple_text", {})
        # No initialize ever reached the server: it holds no session.
        assert len(app.supervisor.store) == 0
    assert "test_input_required_result_elicitation" in {tool.name for tool in tools.tools}
    assert text(result) == "This is a simple text response for testing."


async def test_the_official_client_answers_an_elicitation_through_its_callback(
    served: tuple[trio_mcp.App, str],
) -> None:
    _, url = served
    async with Client(url, elicitation_callback=elicit) as client:
        result = await client.call_tool("test_input_required_result_elicitation", {})
    assert text(result) == "Hello, Ada!"


async def test_the_official_client_answers_sampling_through_its_callback(
    served: tuple[trio_mcp.App, str],
) -> None:
    _, url = served
    async with Client(url, sampling_callback=sample) as client:
        result = await client.call_tool("test_input_required_result_sampling", {})
    assert text(result) == "The LLM answered: Paris"


async def test_the_official_client_lists_its_roots_through_its_callback(
    served: tuple[trio_mcp.App, str],
) -> None:
    _, url = served
    async with Client(url, list_roots_callback=roots) as client:
        result = await client.call_tool("test_input_required_result_list_roots", {})
    assert text(result) == "Roots: file:///work/project"


async def test_the_official_client_answers_two_rounds(served: tuple[trio_mcp.App, str]) -> None:
    _, url = served
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        field = "name" if "name" in params.message else "color"
        return types.ElicitResult(
            action="accept", content={field: "Ada" if field == "name" else "teal"}
        )

    async with Client(url, elicitation_callback=answer) as client:
        result = await client.call_tool("test_input_required_result_multi_round", {})
    assert asked == ["Step 1: What is your name?", "Step 2: What is your favorite color?"]
    assert text(result) == "Ada likes teal"


async def test_a_legacy_session_client_shares_the_endpoint_with_a_stateless_one(
    served: tuple[trio_mcp.App, str],
) -> None:
    app, url = served
    results: dict[str, str] = {}
    async with (
        Client(url, mode="legacy", elicitation_callback=elicit) as legacy,
        Client(url, elicitation_callback=elicit) as modern,
    ):
        assert legacy.session.initialize_result is not None
        assert legacy.protocol_version == "2025-11-25"
        assert modern.protocol_version == "2026-07-28"

        async def on(name: str, client: Client) -> None:
            result = await client.call_tool("test_input_required_result_elicitation", {})
            results[name] = text(result)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(on, "legacy", legacy)
            nursery.start_soon(on, "modern", modern)
        assert len(app.supervisor.store) == 1  # the legacy client's session only
    assert results == {"legacy": "Hello, Ada!", "modern": "Hello, Ada!"}
