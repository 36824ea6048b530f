"""Everything an MCP server can offer, in one trio-mcp server.

Tools with every kind of content, progress, logging, sampling and elicitation;
resources, a resource template and a subscribable resource; prompts with arguments and
completion. Its names are the ones the official MCP conformance suite asks for, so the
suite can be pointed at it::

    python examples/everything.py --port 8000
"""

from __future__ import annotations

import argparse
import base64
import io
import struct
import wave
import zlib
from typing import Any

import trio

import trio_mcp
from trio_mcp import (
    AudioContent,
    Context,
    EmbeddedResource,
    ImageContent,
    PromptMessage,
    TextContent,
    TextResourceContents,
)

server = trio_mcp.Server(
    "trio-mcp-everything",
    "1.0.0",
    title="trio-mcp: everything",
    instructions="A tour of every MCP server feature, served by trio-mcp.",
)


def tiny_png() -> bytes:
    """A 1x1 red pixel, built here so the example needs no image file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def short_wav() -> bytes:
    """A tenth of a second of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


PNG = tiny_png()
WAV = short_wav()


# -- tools: content of every kind ---------------------------------------------------------


@server.tool()
async def test_simple_text() -> str:
    """Answers with plain text."""
    return "This is a simple text response for testing."


@server.tool()
async def test_image_content() -> ImageContent:
    """Answers with a PNG image."""
    return ImageContent(PNG, "image/png")


@server.tool()
async def test_audio_content() -> AudioContent:
    """Answers with a WAV clip."""
    return AudioContent(WAV, "audio/wav")


@server.tool()
async def test_embedded_resource() -> EmbeddedResource:
    """Answers with a resource embedded in the result."""
    return EmbeddedResource(
        TextResourceContents(
            "test://embedded-resource", "This is an embedded resource.", "text/plain"
        )
    )


@server.tool()
async def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Answers with text, an image and an embedded resource together."""
    return [
        TextContent("Multiple content types test:"),
        ImageContent(PNG, "image/png"),
        EmbeddedResource(
            TextResourceContents(
                "test://mixed-content-resource",
                '{"test": "data", "value": 123}',
                "application/json",
            )
        ),
    ]


@server.tool()
async def test_error_handling() -> str:
    """Always fails, to show how a tool reports an error the model can read."""
    raise trio_mcp.ToolError("This tool intentionally returns an error for testing")


# -- tools: talking back while running ---------------------------------------------------------


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress at 0, 50 and 100 percent."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"step {step // 50 + 1} of 3")
        await trio.sleep(0.05)
    return "Progress test completed"


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log messages to the client while it runs."""
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(text)
        await trio.sleep(0.05)
    return "Logging test completed"


@server.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's LLM to answer a prompt.

    Args:
        prompt: what to ask the LLM.
    """
    result = await ctx.sample(prompt, max_tokens=100)
    content = result.get("content", {})
    text = content.get("text", "") if isinstance(content, dict) else str(content)
    return f"LLM response: {text}"


@server.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user for a username and an email address.

    Args:
        message: what to tell the user.
    """
    result = await ctx.elicit(
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return f"User response: action={result.get('action')}, content={result.get('content')}"


@server.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Asks for input whose fields all have defaults (SEP-1034)."""
    result = await ctx.elicit(
        "Please review and update the form fields with defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verified", "default": True},
            },
        },
    )
    return f"Elicitation completed: action={result.get('action')}, content={result.get('content')}"


@server.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Asks for choices in each enum style of SEP-1330."""
    choices = ["option1", "option2", "option3"]
    titled = [{"const": c, "title": f"Option {c[-1]}"} for c in choices]
    result = await ctx.elicit(
        "Please select options from the enum fields",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": choices},
                "titledSingle": {"type": "string", "oneOf": titled},
                "legacyEnum": {
                    "type": "string",
                    "enum": choices,
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {"type": "array", "items": {"type": "string", "enum": choices}},
                "titledMulti": {"type": "array", "items": {"anyOf": titled}},
            },
        },
    )
    return f"Elicitation completed: action={result.get('action')}, content={result.get('content')}"


ADDRESS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@server.tool(input_schema=ADDRESS_SCHEMA)
async def json_schema_2020_12_tool(**arguments: Any) -> str:
    """Takes arguments described by a hand-written JSON Schema 2020-12 document."""
    return f"Received: {sorted(arguments)}"


# -- resources ----------------------------------------------------------------------------------


# -- the stateless wire (MCP 2026-07-28) ------------------------------------------------

NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@server.tool()
async def test_missing_capability(ctx: Context) -> str:
    """Needs the client's sampling: a client that did not declare it is told so."""
    result = await ctx.sample("Say hello", max_tokens=20)
    return f"LLM said: {result.get('content')}"


@server.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Asks the user's name; on the stateless wire the question comes back as input_required."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA)
    return f"Hello, {(answer.get('content') or {}).get('name', 'stranger')}"


@server.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs three messages: sent only when the request asked for a log level."""
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(text)
    return "Logging test completed"


async def dynamic_tool() -> str:
    """A tool that comes and goes, to show list change notifications."""
    return "I am here for now"


async def dynamic_prompt() -> str:
    """A prompt that comes and goes, to show list change notifications."""
    return "I am here for now"


@server.tool()
async def test_trigger_tool_change() -> str:
    """Adds or removes the tool 'dynamic_tool', so the tool list changes."""
    if "dynamic_tool" in server.tools:
        server.remove_tool("dynamic_tool")
        return "dynamic_tool removed"
    server.add_tool(dynamic_tool)
    return "dynamic_tool added"


@server.tool()
async def test_trigger_prompt_change() -> str:
    """Adds or removes the prompt 'dynamic_prompt', so the prompt list changes."""
    if "dynamic_prompt" in server.prompts:
        server.remove_prompt("dynamic_prompt")
        return "dynamic_prompt removed"
    server.add_prompt(dynamic_prompt)
    return "dynamic_prompt added"


# -- input from the client, asked the same way on both wires (SEP-2322 on the new one) ----


@server.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """Asks the user's name (under the key 'user_name')."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return f"Hello, {(answer.get('content') or {}).get('name', 'stranger')}!"


@server.tool()
async def test_input_required_result_sampling(ctx: Context) -> str:
    """Asks the client's LLM a question (under the key 'capital_question')."""
    answer = await ctx.sample(
        "What is the capital of France?", max_tokens=100, key="capital_question"
    )
    content = answer.get("content")
    text = content.get("text", "") if isinstance(content, dict) else ""
    return f"The LLM answered: {text}"


@server.tool()
async def test_input_required_result_list_roots(ctx: Context) -> str:
    """Lists the client's roots (under the key 'client_roots')."""
    roots = await ctx.list_roots(key="client_roots")
    return "Roots: " + ", ".join(str(root.get("uri")) for root in roots)


@server.tool()
async def test_input_required_result_request_state(ctx: Context) -> str:
    """Keeps a state of its own across the round trip, and checks it came back."""
    if ctx.request_state != {"round": 1} or "user_name" not in ctx.input_responses:
        raise trio_mcp.InputRequired(
            {"user_name": elicitation("What is your name?")}, state={"round": 1}
        )
    return "state-ok: the request state came back intact"


def elicitation(message: str, schema: dict[str, Any] = NAME_SCHEMA) -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {"mode": "form", "message": message, "requestedSchema": schema},
    }


@server.tool()
async def test_input_required_result_multiple_inputs(ctx: Context) -> str:
    """Asks three questions at once: the user, the LLM and the roots."""
    wanted = {
        "user_name": elicitation("What is your name?"),
        "greeting": {
            "method": "sampling/createMessage",
            "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Greet me"}}],
                "maxTokens": 50,
            },
        },
        "client_roots": {"method": "roots/list"},
    }
    missing = {key: request for key, request in wanted.items() if key not in ctx.input_responses}
    if missing:
        raise trio_mcp.InputRequired(missing, state={"asked": sorted(missing)})
    return f"Got all {len(wanted)} answers"


@server.tool()
async def test_input_required_result_multi_round(ctx: Context) -> str:
    """Asks two questions, one round each."""
    name = await ctx.elicit("Step 1: What is your name?", NAME_SCHEMA, key="step1")
    color = await ctx.elicit(
        "Step 2: What is your favorite color?",
        {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]},
        key="step2",
    )
    who = (name.get("content") or {}).get("name")
    return f"{who} likes {(color.get('content') or {}).get('color')}"


@server.tool()
async def test_input_required_result_tampered_state(ctx: Context) -> str:
    """Round trips a sealed state: a changed one is refused."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return f"Hello, {(answer.get('content') or {}).get('name', 'stranger')}!"


@server.tool()
async def test_input_required_result_capabilities(ctx: Context) -> str:
    """Asks the user when the client can elicit, else the client's LLM."""
    if "elicitation" in ctx.client_capabilities:
        answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
        return f"Hello, {(answer.get('content') or {}).get('name')}"
    answer = await ctx.sample("Invent a name", max_tokens=20, key="invented_name")
    return f"The LLM suggests: {answer.get('content')}"


REGION_SCHEMA = {
    "type": "object",
    "properties": {
        "region": {
            "type": "string",
            "description": "Where to run; mirrored in the Mcp-Param-Region header",
            "x-mcp-header": "Region",
        },
        "query": {"type": "string", "description": "What to run"},
    },
    "required": ["region", "query"],
}


@server.tool(input_schema=REGION_SCHEMA)
async def test_header_parameter(**arguments: Any) -> str:
    """Runs a query in a region; the region travels in a header as well as the body."""
    return f"ran {arguments.get('query')!r} in {arguments.get('region')}"


@server.resource("test://static-text", name="static-text", mime_type="text/plain")
async def static_text() -> str:
    """A fixed text resource."""
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", mime_type="image/png")
async def static_binary() -> bytes:
    """A fixed binary resource (a PNG image)."""
    return PNG


@server.resource("test://template/{id}/data", name="template-data", mime_type="application/json")
async def template_data(id: str) -> dict[str, Any]:
    """Data for any id, read through a URI template."""
    return {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}


@server.completion(resource_template="test://template/{id}/data")
async def complete_id(argument: str, value: str, context: dict[str, str]) -> list[str]:
    return [i for i in ("1", "2", "3", "123") if i.startswith(value)]


@server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
async def watched_resource() -> str:
    """A resource clients can subscribe to; touch_watched_resource changes it."""
    return f"Watched resource, version {_watched_version}"


_watched_version = 1


@server.tool()
async def touch_watched_resource() -> str:
    """Changes test://watched-resource, notifying its subscribers."""
    global _watched_version
    _watched_version += 1
    server.notify_resource_updated("test://watched-resource")
    return f"now at version {_watched_version}"


# -- prompts -------------------------------------------------------------------------------------


@server.prompt()
async def test_simple_prompt() -> str:
    """A prompt with no arguments."""
    return "This is a simple prompt for testing."


@server.prompt()
async def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt filled in from two arguments.

    Args:
        arg1: the first argument.
        arg2: the second argument.
    """
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.completion(prompt="test_prompt_with_arguments")
async def complete_prompt_argument(argument: str, value: str, context: dict[str, str]) -> list[str]:
    return [word for word in ("test", "testing", "tested", "other") if word.startswith(value)]


@server.prompt()
async def test_prompt_with_embedded_resource(resourceUri: str) -> list[PromptMessage]:
    """A prompt that embeds a resource.

    Args:
        resourceUri: the URI of the resource to embed.
    """
    resource = TextResourceContents(
        resourceUri, "Embedded resource content for testing.", "text/plain"
    )
    return [
        PromptMessage("user", EmbeddedResource(resource)),
        PromptMessage("user", TextContent("Please process the embedded resource above.")),
    ]


@server.prompt()
async def test_input_required_result_prompt(ctx: Context) -> str:
    """Asks the user for a topic before writing the prompt."""
    answer = await ctx.elicit(
        "What should the prompt be about?",
        {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
        key="topic",
    )
    return f"Write a short poem about {(answer.get('content') or {}).get('topic', 'trio')}."


@server.prompt()
async def test_prompt_with_image() -> list[PromptMessage]:
    """A prompt that shows an image."""
    return [
        PromptMessage("user", ImageContent(base64.b64encode(PNG).decode(), "image/png")),
        PromptMessage("user", TextContent("Please analyze the image above.")),
    ]


app = server.asgi_app()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    args = parser.parse_args()
    trio_mcp.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
