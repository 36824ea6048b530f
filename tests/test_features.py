"""Every server feature over HTTP+SSE, with the official client and the raw, schema-checking
one, against examples/everything.py and small purpose-built servers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import mcp_types as types
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from sseclient import SseSession, open_sse

import trio_mcp

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


@asynccontextmanager
async def official(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with sse_client(url + "/sse") as (read, write):
        async with ClientSession(read, write, **callbacks) as session:
            await session.initialize()
            yield session


async def tool(sse: SseSession, name: str, **arguments: Any) -> dict[str, Any]:
    reply = await sse.call("tools/call", {"name": name, "arguments": arguments})
    return reply["result"]  # type: ignore[no-any-return]


# -- tools --


async def test_tools_list_carries_every_fixture_tool(everything_url: str) -> None:
    async with official(everything_url) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"test_simple_text", "test_image_content", "test_sampling", "test_elicitation"} <= names


async def test_a_hand_written_input_schema_is_listed_verbatim(everything_url: str) -> None:
    import everything

    async with open_sse(everything_url) as sse:
        await sse.initialize()
        tools = (await sse.call("tools/list"))["result"]["tools"]
    [listed] = [t for t in tools if t["name"] == "json_schema_2020_12_tool"]
    assert listed["inputSchema"] == everything.ADDRESS_SCHEMA


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("test_simple_text", ["text"]),
        ("test_image_content", ["image"]),
        ("test_audio_content", ["audio"]),
        ("test_embedded_resource", ["resource"]),
        ("test_multiple_content_types", ["text", "image", "resource"]),
    ],
)
async def test_each_content_type_reaches_the_client(
    everything_url: str, name: str, kinds: list[str]
) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        result = await tool(sse, name)
    assert [block["type"] for block in result["content"]] == kinds


async def test_image_data_is_base64_of_the_png(everything_url: str) -> None:
    async with official(everything_url) as client:
        result = await client.call_tool("test_image_content", {})
    image = result.content[0]
    assert isinstance(image, types.ImageContent)
    assert base64.b64decode(image.data).startswith(b"\x89PNG")


async def test_a_resource_link_degrades_to_text_before_2025_06_18(serve_app: Any) -> None:
    server = trio_mcp.Server("links")

    @server.tool()
    async def link() -> trio_mcp.ResourceLink:
        return trio_mcp.ResourceLink("test://x", "x", mime_type="text/plain")

    async with serve_app(server.asgi_app()) as url:
        for version, kind in (("2025-03-26", "text"), ("2025-06-18", "resource_link")):
            async with open_sse(url) as sse:
                await sse.initialize(version)
                assert (await tool(sse, "link"))["content"][0]["type"] == kind


async def test_tool_metadata_is_listed_for_2025_11_25(serve_app: Any) -> None:
    server = trio_mcp.Server("meta")

    @server.tool(
        title="Lookup",
        annotations=trio_mcp.ToolAnnotations(read_only_hint=True, open_world_hint=False),
        icons=[trio_mcp.Icon("https://example.com/i.png", "image/png", ["48x48"])],
        meta={"example.com/owner": "team"},
    )
    async def lookup(key: str) -> dict[str, str]:
        return {"key": key}

    async with serve_app(server.asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize("2025-11-25")
        [listed] = (await sse.call("tools/list"))["result"]["tools"]
    assert listed["title"] == "Lookup"
    assert listed["annotations"] == {"readOnlyHint": True, "openWorldHint": False}
    assert listed["icons"][0]["sizes"] == ["48x48"]
    assert listed["_meta"] == {"example.com/owner": "team"}
    assert listed["outputSchema"] == {"type": "object", "additionalProperties": {"type": "string"}}


@attrs.frozen
class Weather:
    city: str
    celsius: float


async def test_an_attrs_return_value_is_structured_content_with_its_schema(serve_app: Any) -> None:
    server = trio_mcp.Server("attrs")

    @server.tool()
    async def weather(city: str) -> Weather:
        return Weather(city, 21.5)

    async with serve_app(server.asgi_app()) as url, official(url) as client:
        listed = (await client.list_tools()).tools[0]
        result = await client.call_tool("weather", {"city": "Oslo"})
    assert listed.output_schema is not None
    assert listed.output_schema["required"] == ["city", "celsius"]
    assert result.structured_content == {"city": "Oslo", "celsius": 21.5}


# -- progress, logging, cancellation --


def slow_tool(timeout: float) -> trio_mcp.Server:
    """A server whose one tool, ``slow``, runs for far longer than its ``timeout``."""
    server = trio_mcp.Server("timeouts")

    @server.tool(timeout=timeout)
    async def slow() -> str:
        await trio.sleep(30)
        return "done"

    return server


async def test_a_tool_past_its_timeout_is_answered_saying_so(serve_app: Any) -> None:
    async with serve_app(slow_tool(0.2).asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize()
        started = trio.current_time()
        result = await tool(sse, "slow")
        assert trio.current_time() - started < 5
    assert result == {
        "content": [{"type": "text", "text": "Tool 'slow' timed out after 0.2 s"}],
        "isError": True,
    }


async def test_a_cancelled_call_with_a_timeout_is_not_answered(serve_app: Any) -> None:
    async with serve_app(slow_tool(0.5).asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize()
        call = await sse.send_request("tools/call", {"name": "slow", "arguments": {}})
        await sse.notify("notifications/cancelled", {"requestId": call})
        await trio.sleep(1)  # past the timeout: still no answer
        assert [m for m in sse.messages if m.get("id") == call] == []
        assert (await sse.call("ping"))["result"] == {}


async def test_the_clients_time_to_answer_is_not_the_tools(serve_app: Any) -> None:
    """A tool's timeout bounds each of its rounds, not the client's answers between them
    (here the client takes twice the tool's timeout to answer)."""
    server = trio_mcp.Server("rounds")

    @server.tool(timeout=0.5)
    async def confirm(ctx: trio_mcp.Context) -> str:
        answer = ctx.input_responses.get("ok")
        if answer is None:
            params = {"message": "sure?", "requestedSchema": {"type": "object", "properties": {}}}
            raise trio_mcp.InputRequired({"ok": {"method": "elicitation/create", "params": params}})
        return str(answer["action"])

    async with serve_app(server.asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize("2025-11-25", {"elicitation": {"form": {}}})
        call = await sse.send_request("tools/call", {"name": "confirm", "arguments": {}})
        asked = await sse.receive()
        assert asked["method"] == "elicitation/create"
        await trio.sleep(1)
        await sse.post({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept"}})
        reply = await sse.reply_to(call)
    assert reply["result"]["content"] == [{"type": "text", "text": "accept"}]
    assert reply["result"].get("isError", False) is False


async def test_progress_is_sent_only_when_the_client_asked_for_it(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        await tool(sse, "sleep", seconds=0.3)
    assert not [m for m in sse.messages if m.get("method") == "notifications/progress"]


async def test_progress_carries_the_token_and_increases(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        params = {
            "name": "test_tool_with_progress",
            "arguments": {},
            "_meta": {"progressToken": "tok"},
        }
        await sse.call("tools/call", params)
    progress = [m["params"] for m in sse.messages if m.get("method") == "notifications/progress"]
    assert [p["progress"] for p in progress] == [0, 50, 100]
    assert {p["progressToken"] for p in progress} == {"tok"}


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")
async def test_log_messages_reach_the_client_after_set_level(everything_url: str) -> None:
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with official(everything_url, logging_callback=on_log) as client:
        await client.set_logging_level("debug")
        await client.call_tool("test_tool_with_logging", {})
        await trio.sleep(0.1)
    assert [p.data for p in received] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]


@pytest.mark.parametrize(("level", "expected"), [(None, 0), ("error", 0), ("info", 3)])
async def test_messages_below_the_level_are_not_sent(
    everything_url: str, level: str | None, expected: int
) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        if level is not None:
            await sse.call("logging/setLevel", {"level": level})
        await tool(sse, "test_tool_with_logging")
    logs = [m for m in sse.messages if m.get("method") == "notifications/message"]
    assert len(logs) == expected


async def test_an_unknown_log_level_is_invalid_params(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call("logging/setLevel", {"level": "loud"})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


# -- server-to-client requests --


async def test_sampling_goes_to_the_client_and_its_answer_comes_back(everything_url: str) -> None:
    asked: list[types.CreateMessageRequestParams] = []

    async def sample(
        context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="test-model",
        )

    async with official(everything_url, sampling_callback=sample) as client:
        result = await client.call_tool("test_sampling", {"prompt": "the answer?"})
    assert result.content[0].text == "LLM response: forty-two"  # type: ignore[union-attr]
    assert asked[0].max_tokens == 100
    assert asked[0].messages[0].content.text == "the answer?"  # type: ignore[union-attr]


async def test_sampling_without_the_capability_is_a_clear_tool_error(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        result = await tool(sse, "test_sampling", prompt="x")
    assert result["isError"] is True
    assert "'sampling' capability" in result["content"][0]["text"]
    assert not [m for m in sse.messages if m.get("method") == "sampling/createMessage"]


async def test_form_elicitation_round_trips_through_the_client(everything_url: str) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert params.requested_schema["required"] == ["username", "email"]  # type: ignore[union-attr]
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "a@x.org"})

    async with official(everything_url, elicitation_callback=elicit) as client:
        result = await client.call_tool("test_elicitation", {"message": "who are you?"})
    assert "ada" in result.content[0].text  # type: ignore[union-attr]


async def test_url_elicitation_needs_the_url_capability(serve_app: Any) -> None:
    server = trio_mcp.Server("url-elicitation")

    @server.tool()
    async def consent(ctx: trio_mcp.Context) -> str:
        result = await ctx.elicit_url("Authorize access", "https://example.com/consent", "e-1")
        return str(result["action"])

    async with serve_app(server.asgi_app()) as url:
        async with open_sse(url) as sse:
            await sse.initialize("2025-11-25", {"elicitation": {"form": {}}})
            result = await tool(sse, "consent")
            assert result["isError"] is True and "URL-mode" in result["content"][0]["text"]
        async with open_sse(url) as sse:
            await sse.initialize("2025-11-25", {"elicitation": {"url": {}}})
            call = await sse.send_request("tools/call", {"name": "consent", "arguments": {}})
            request = await sse.receive()
            assert request["params"]["mode"] == "url"
            assert request["params"]["elicitationId"] == "e-1"
            await sse.post({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept"}})
            reply = await sse.reply_to(call)
            assert reply["result"]["content"][0]["text"] == "accept"


async def test_elicitation_is_refused_on_revisions_before_it_existed(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize("2025-03-26", {"elicitation": {}})
        result = await tool(sse, "test_elicitation", message="hi")
    assert result["isError"] is True
    assert "2025-06-18" in result["content"][0]["text"]


async def test_roots_are_listed_from_the_client(serve_app: Any) -> None:
    server = trio_mcp.Server("roots")

    @server.tool()
    async def roots(ctx: trio_mcp.Context) -> list[str]:
        return [root["uri"] for root in await ctx.list_roots()]

    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///project", name="project")])

    async with (
        serve_app(server.asgi_app()) as url,
        official(url, list_roots_callback=list_roots) as client,
    ):
        result = await client.call_tool("roots", {})
    assert result.structured_content == {"result": ["file:///project"]}


# -- resources --


async def test_resources_and_templates_are_listed_apart(everything_url: str) -> None:
    async with official(everything_url) as client:
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = [
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        ]
    assert "test://static-text" in resources
    assert templates == ["test://template/{id}/data"]


async def test_text_and_binary_resources_are_read(everything_url: str) -> None:
    async with official(everything_url) as client:
        text = (await client.read_resource("test://static-text")).contents[0]
        blob = (await client.read_resource("test://static-binary")).contents[0]
    assert isinstance(text, types.TextResourceContents) and text.text.startswith(
        "This is the content"
    )
    assert isinstance(blob, types.BlobResourceContents)
    assert base64.b64decode(blob.blob).startswith(b"\x89PNG")


async def test_a_template_passes_its_variables_to_the_reader(everything_url: str) -> None:
    async with official(everything_url) as client:
        contents = (await client.read_resource("test://template/123/data")).contents[0]
    assert isinstance(contents, types.TextResourceContents)
    assert '"id": "123"' in contents.text
    assert str(contents.uri) == "test://template/123/data"


async def test_an_unknown_uri_is_invalid_params_naming_the_uri(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call("resources/read", {"uri": "test://nope"})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS
    assert reply["error"]["data"] == {"uri": "test://nope"}


async def test_a_subscriber_is_told_when_the_resource_changes(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        await sse.call("resources/subscribe", {"uri": "test://watched-resource"})
        await tool(sse, "touch_watched_resource")
        with trio.fail_after(5):
            while not [
                m for m in sse.messages if m.get("method") == "notifications/resources/updated"
            ]:
                await trio.sleep(0.01)
        [updated] = [
            m for m in sse.messages if m.get("method") == "notifications/resources/updated"
        ]
    assert updated["params"] == {"uri": "test://watched-resource"}


async def test_after_unsubscribe_no_update_is_sent(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        await sse.call("resources/subscribe", {"uri": "test://watched-resource"})
        await sse.call("resources/unsubscribe", {"uri": "test://watched-resource"})
        await tool(sse, "touch_watched_resource")
        await sse.call("ping")
        await trio.sleep(0.1)
    assert not [m for m in sse.messages if m.get("method") == "notifications/resources/updated"]


async def test_subscribing_to_an_unknown_uri_is_invalid_params(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call("resources/subscribe", {"uri": "test://unknown"})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


# -- prompts and completion --


async def test_prompts_are_listed_with_their_arguments(everything_url: str) -> None:
    async with official(everything_url) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    arguments = prompts["test_prompt_with_arguments"].arguments or []
    assert [(a.name, a.required) for a in arguments] == [("arg1", True), ("arg2", True)]


async def test_a_prompt_is_rendered_from_its_arguments(everything_url: str) -> None:
    async with official(everything_url) as client:
        result = await client.get_prompt("test_prompt_with_arguments", {"arg1": "A", "arg2": "B"})
    text = result.messages[0].content.text  # type: ignore[union-attr]
    assert "'A'" in text and "'B'" in text


async def test_a_missing_required_prompt_argument_is_invalid_params(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call(
            "prompts/get", {"name": "test_prompt_with_arguments", "arguments": {"arg1": "A"}}
        )
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS
    assert "arg2" in reply["error"]["message"]


async def test_prompts_can_embed_resources_and_images(everything_url: str) -> None:
    async with official(everything_url) as client:
        embedded = await client.get_prompt(
            "test_prompt_with_embedded_resource", {"resourceUri": "test://r"}
        )
        image = await client.get_prompt("test_prompt_with_image", {})
    assert embedded.messages[0].content.type == "resource"
    assert image.messages[0].content.type == "image"


async def test_completion_suggests_prompt_argument_values(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call(
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "tes"},
            },
        )
    assert reply["result"]["completion"] == {
        "values": ["test", "testing", "tested"],
        "total": 3,
        "hasMore": False,
    }


async def test_completion_suggests_template_variables(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call(
            "completion/complete",
            {
                "ref": {"type": "ref/resource", "uri": "test://template/{id}/data"},
                "argument": {"name": "id", "value": "1"},
            },
        )
    assert reply["result"]["completion"]["values"] == ["1", "123"]


async def test_completion_for_an_unknown_prompt_is_invalid_params(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "a", "value": ""}},
        )
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


# -- lists: capabilities, pagination, changes --


async def test_capabilities_declare_what_is_registered(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        capabilities = (await sse.initialize())["result"]["capabilities"]
    assert capabilities == {
        "logging": {},
        "tools": {"listChanged": True},
        "resources": {"subscribe": True, "listChanged": True},
        "prompts": {"listChanged": True},
        "completions": {},
    }


async def test_a_feature_that_is_not_registered_is_method_not_found(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        reply = await sse.call("prompts/list")
    assert reply["error"]["code"] == trio_mcp.METHOD_NOT_FOUND


@pytest.mark.parametrize("method", ["tools/list", "resources/list", "prompts/list"])
async def test_every_list_pages_with_opaque_cursors(serve_app: Any, method: str) -> None:
    server = trio_mcp.Server("paged", page_size=2)
    for n in range(5):

        async def item(n: int = n) -> str:
            return str(n)

        server.add_tool(item, name=f"t{n}")
        server.add_resource(f"test://r{n}", item, name=f"r{n}")
        server.add_prompt(item, name=f"p{n}")
    key = method.split("/")[0]
    async with serve_app(server.asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize()
        seen, cursor, pages = [], None, 0
        while True:
            result = (await sse.call(method, {"cursor": cursor} if cursor else {}))["result"]
            seen += [entry["name"] for entry in result[key]]
            pages += 1
            cursor = result.get("nextCursor")
            if cursor is None:
                break
    assert pages == 3
    assert seen == [f"{key[0]}{n}" for n in range(5)]


async def test_a_bad_cursor_is_invalid_params(everything_url: str) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize()
        reply = await sse.call("tools/list", {"cursor": "not-a-cursor!"})
    assert reply["error"]["code"] == trio_mcp.INVALID_PARAMS


@pytest.mark.parametrize("kind", ["resources", "prompts"])
async def test_adding_at_run_time_notifies_list_changed(serve_app: Any, kind: str) -> None:
    server = trio_mcp.Server("changing")

    async def first() -> str:
        return "1"

    server.add_resource("test://first", first)
    server.add_prompt(first)
    async with serve_app(server.asgi_app()) as url, open_sse(url) as sse:
        await sse.initialize()

        async def later() -> str:
            return "2"

        if kind == "resources":
            server.add_resource("test://later", later)
        else:
            server.add_prompt(later)
        notification = await sse.receive()
    assert notification["method"] == f"notifications/{kind}/list_changed"


# -- the schema, per revision --


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_tour_of_every_feature_matches_the_negotiated_schema(
    everything_url: str, version: str
) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize(version, {"sampling": {}, "roots": {"listChanged": True}})
        await sse.call("logging/setLevel", {"level": "debug"})
        for name in (
            "test_simple_text",
            "test_image_content",
            "test_audio_content",
            "test_embedded_resource",
            "test_multiple_content_types",
            "test_error_handling",
            "test_tool_with_logging",
        ):
            await tool(sse, name)
        await sse.call(
            "tools/call",
            {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": 1}},
        )
        call = await sse.send_request(
            "tools/call", {"name": "test_sampling", "arguments": {"prompt": "p"}}
        )
        request = await sse.receive()
        assert request["method"] == "sampling/createMessage"
        sampled = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
        await sse.post({"jsonrpc": "2.0", "id": request["id"], "result": sampled})
        await sse.reply_to(call)
        for method, params in (
            ("tools/list", {}),
            ("resources/list", {}),
            ("resources/templates/list", {}),
            ("resources/read", {"uri": "test://static-text"}),
            ("resources/read", {"uri": "test://static-binary"}),
            ("resources/read", {"uri": "test://template/7/data"}),
            ("resources/subscribe", {"uri": "test://watched-resource"}),
            ("prompts/list", {}),
            ("prompts/get", {"name": "test_simple_prompt"}),
            (
                "prompts/get",
                {
                    "name": "test_prompt_with_embedded_resource",
                    "arguments": {"resourceUri": "test://x"},
                },
            ),
            ("prompts/get", {"name": "test_prompt_with_image"}),
        ):
            reply = await sse.call(method, params)
            assert "result" in reply, reply
        await tool(sse, "touch_watched_resource")
        if version >= "2025-03-26":
            reply = await sse.call(
                "completion/complete",
                {
                    "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                    "argument": {"name": "arg1", "value": "t"},
                },
            )
            assert "result" in reply
        await sse.call("ping")
    assert len(sse.messages) > 25
