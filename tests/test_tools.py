"""Tools without a socket: the schema a signature promises, strict structuring of the
arguments, and the result each kind of return value (or failure) becomes."""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any, Literal

import attrs
import pytest
import trio
import trio.testing

import trio_mcp
from trio_mcp._context import Context
from trio_mcp._converter import ArgumentError, structure_argument
from trio_mcp._schema import schema_for
from trio_mcp._tools import Tool


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@attrs.frozen
class Point:
    """A point on the plane."""

    x: int
    y: int = 0


class Port:
    """Just enough of a session for a tool call: the negotiated revision."""

    protocol_version = "2025-11-25"
    client_capabilities: dict[str, Any] = {}
    log_level = None
    subscriptions: set[str] = set()


def context() -> Context:
    return Context(Port(), 1, None)  # type: ignore[arg-type]


async def call(tool: Tool, **arguments: Any) -> dict[str, Any]:
    return await tool.call(arguments, context())


# -- schemas from hints --


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (str, {"type": "string"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Colour, {"type": "string", "enum": ["red", "green"]}),
        (Annotated[int, "how many"], {"type": "integer", "description": "how many"}),
    ],
)
def test_each_supported_hint_has_its_json_schema(hint: Any, schema: dict[str, Any]) -> None:
    assert schema_for(hint) == schema


def test_an_attrs_class_is_an_object_of_its_fields_and_nothing_else() -> None:
    assert schema_for(Point) == {
        "type": "object",
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
        "required": ["x"],
        "additionalProperties": False,
        "description": "A point on the plane.",
    }


@pytest.mark.parametrize("hint", [set[int], dict[int, str], bytes, object])
def test_a_hint_with_no_json_schema_is_refused_at_registration(hint: Any) -> None:
    with pytest.raises(TypeError):
        schema_for(hint)


def test_the_input_schema_comes_from_parameters_defaults_and_the_docstring() -> None:
    async def forecast(ctx: trio_mcp.Context, city: str, days: int = 3) -> str:
        """Forecast for a city.

        Args:
            city: the city's name.
            days: how many days ahead.
        """
        return city

    tool = Tool(forecast)
    assert tool.description == "Forecast for a city."
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city's name."},
            "days": {"type": "integer", "description": "how many days ahead.", "default": 3},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_a_tool_must_be_a_coroutine_function() -> None:
    def blocking(text: str) -> str:
        return text

    with pytest.raises(TypeError, match="async def"):
        Tool(blocking)  # type: ignore[arg-type]


# -- strict structuring --


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1", int),
        (True, int),
        (1.5, int),
        ("no", bool),
        (0, bool),
        (1, str),
        ("abc", list[str]),
        ({"x": "1"}, Point),
        ({"x": 1, "z": 2}, Point),
        ("blue", Colour),
        ("c", Literal["a", "b"]),
        (None, int),
        ("1.5", float),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(value: Any, hint: Any) -> None:
    with pytest.raises(ArgumentError, match="'arg'"):
        structure_argument("arg", value, hint)


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (2.0, int, 2),  # JSON Schema counts 2.0 as an integer
        (3, float, 3.0),
        ("red", Colour, Colour.RED),
        ({"x": 1}, Point, Point(1)),
        (None, int | None, None),
        ([1, 2], list[int], [1, 2]),
    ],
)
def test_a_value_of_the_right_json_type_is_structured(value: Any, hint: Any, expected: Any) -> None:
    assert structure_argument("arg", value, hint) == expected


@pytest.mark.parametrize("value", [math.inf, -math.inf, 10**400], ids=["inf", "-inf", "10**400"])
def test_a_number_beyond_a_floats_range_is_refused_not_passed_on(value: Any) -> None:
    # 1e400 in JSON reads as infinity in Python; an integer of 400 digits overflows a float.
    with pytest.raises(ArgumentError, match="'seconds': expected a number within"):
        structure_argument("seconds", value, float)


def test_a_refusal_names_the_argument_and_what_was_expected() -> None:
    with pytest.raises(ArgumentError) as refused:
        structure_argument("days", "3", int)
    assert "days" in str(refused.value) and "integer" in str(refused.value)


# -- calls and results --


async def test_a_wrong_argument_is_a_tool_error_naming_it() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    result = await call(Tool(add), a=1, b="2")
    assert result["isError"] is True
    assert "'b'" in result["content"][0]["text"]


async def test_an_unknown_or_missing_argument_is_a_tool_error() -> None:
    async def echo(text: str) -> str:
        return text

    assert (await call(Tool(echo), text="x", extra=1))["isError"] is True
    assert (await call(Tool(echo)))["isError"] is True


async def test_a_structured_return_travels_as_text_and_structured_content() -> None:
    async def origin() -> Point:
        return Point(0)

    tool = Tool(origin)
    result = await call(tool)
    assert result["structuredContent"] == {"x": 0, "y": 0}
    assert result["content"] == [{"type": "text", "text": '{"x": 0, "y": 0}'}]
    assert tool.output_schema == schema_for(Point)


async def test_an_optional_return_of_none_still_keeps_its_output_schema_promise() -> None:
    async def maybe() -> int | None:
        return None

    tool = Tool(maybe)
    assert tool.output_schema is not None
    assert (await call(tool))["structuredContent"] == {"result": None}


async def test_an_optional_string_return_is_structured_as_declared() -> None:
    async def maybe() -> str | None:
        return "here"

    assert (await call(Tool(maybe)))["structuredContent"] == {"result": "here"}


async def test_an_empty_list_of_content_blocks_is_no_content() -> None:
    async def nothing() -> list[trio_mcp.TextContent]:
        return []

    assert await call(Tool(nothing)) == {"content": []}


async def test_a_plain_string_is_one_text_block_with_no_structured_content() -> None:
    async def hello() -> str:
        return "hello"

    assert await call(Tool(hello)) == {"content": [{"type": "text", "text": "hello"}]}


async def test_an_exception_is_a_tool_error_with_its_message_and_no_traceback() -> None:
    async def broken() -> str:
        raise RuntimeError("the disk is on fire")

    result = await call(Tool(broken))
    assert result["isError"] is True
    assert "the disk is on fire" in result["content"][0]["text"]
    assert "Traceback" not in result["content"][0]["text"]


async def test_a_tool_error_fails_with_exactly_its_message() -> None:
    async def refuse() -> str:
        raise trio_mcp.ToolError("no, thank you")

    assert await call(Tool(refuse)) == {
        "content": [{"type": "text", "text": "no, thank you"}],
        "isError": True,
    }


async def test_a_call_past_its_timeout_is_cancelled_and_fails_saying_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = False

    async def slow() -> str:
        nonlocal cancelled
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            cancelled = True
            raise
        return "done"

    result = await Tool(slow, timeout=5).call({}, context())
    assert cancelled
    assert result == {
        "content": [{"type": "text", "text": "Tool 'slow' timed out after 5 s"}],
        "isError": True,
    }


async def test_the_servers_default_timeout_applies_to_a_tool_without_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow() -> str:
        await trio.sleep(60)
        return "done"

    tool = Tool(slow)
    assert (await tool.call({}, context(), default_timeout=10))["isError"] is True
    assert (await tool.call({}, context(), default_timeout=math.inf)) == {
        "content": [{"type": "text", "text": "done"}]
    }


def test_a_timeout_must_be_positive() -> None:
    async def tool() -> str:
        return ""

    with pytest.raises(ValueError, match="timeout"):
        Tool(tool, timeout=0)
