"""Prompts: named message templates with string arguments, rendered by a coroutine.

A prompt function's parameters are its arguments (a default makes one optional; MCP
prompt arguments are always strings). It returns a ``str`` (one user message), a content
object (one user message with it), a :class:`PromptMessage`, or a list of these.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs

from ._content import CONTENT_TYPES, Content, TextContent
from ._context import Context
from ._input import InputRequired
from ._jsonrpc import INVALID_PARAMS, JSON, JSONRPCError
from ._protocol import version_at_least
from ._schema import parse_docstring
from ._tools import Icon

PromptFunction = Callable[..., Awaitable[Any]]


@attrs.frozen
class PromptMessage:
    role: Literal["user", "assistant"]
    content: Content

    def to_json(self, version: str) -> JSON:
        return {"role": self.role, "content": self.content.to_json(version)}


@attrs.frozen
class PromptArgument:
    name: str
    description: str | None
    required: bool

    def to_json(self) -> JSON:
        out: JSON = {"name": self.name, "required": self.required}
        if self.description:
            out["description"] = self.description
        return out


class Prompt:
    def __init__(
        self,
        fn: PromptFunction,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"prompt {fn.__name__!r} must be an 'async def' function")
        self.fn = fn
        self.name = name or fn.__name__
        self.title = title
        self.icons = icons
        self.meta = meta
        summary, docs = parse_docstring(inspect.getdoc(fn))
        self.description = description if description is not None else summary
        hints = typing.get_type_hints(fn)
        self._context_param: str | None = None
        self.arguments: list[PromptArgument] = []
        for param in inspect.signature(fn).parameters.values():
            if hints.get(param.name) is Context:
                self._context_param = param.name
                continue
            required = param.default is param.empty
            self.arguments.append(PromptArgument(param.name, docs.get(param.name), required))

    def describe(self, version: str) -> JSON:
        out: JSON = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.arguments:
            out["arguments"] = [argument.to_json() for argument in self.arguments]
        if self.title and version_at_least(version, "2025-06-18"):
            out["title"] = self.title
        if self.icons and version_at_least(version, "2025-11-25"):
            out["icons"] = [icon.to_json() for icon in self.icons]
        if self.meta is not None and version_at_least(version, "2025-06-18"):
            out["_meta"] = self.meta
        return out

    async def render(self, arguments: JSON, context: Context) -> JSON:
        known = {argument.name for argument in self.arguments}
        missing = [a.name for a in self.arguments if a.required and a.name not in arguments]
        if missing:
            raise JSONRPCError(
                INVALID_PARAMS,
                f"prompt {self.name!r} needs argument(s): {', '.join(missing)}",
                {"missing": missing},
            )
        unexpected = sorted(set(arguments) - known)
        if unexpected:
            raise JSONRPCError(
                INVALID_PARAMS, f"prompt {self.name!r} has no argument(s): {', '.join(unexpected)}"
            )
        wrong = [name for name, value in arguments.items() if not isinstance(value, str)]
        if wrong:
            raise JSONRPCError(INVALID_PARAMS, f"prompt arguments are strings: {', '.join(wrong)}")
        kwargs: dict[str, Any] = dict(arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        value = await self.fn(**kwargs)
        if isinstance(value, InputRequired):
            raise value
        version = context.protocol_version
        result: JSON = {"messages": [m.to_json(version) for m in _as_messages(value)]}
        if self.description:
            result["description"] = self.description
        return result


def _as_messages(value: Any) -> list[PromptMessage]:
    items = value if isinstance(value, list | tuple) else [value]
    messages = []
    for item in items:
        if isinstance(item, PromptMessage):
            messages.append(item)
        elif isinstance(item, str):
            messages.append(PromptMessage("user", TextContent(item)))
        elif isinstance(item, CONTENT_TYPES):
            messages.append(PromptMessage("user", item))
        else:
            raise TypeError(
                f"a prompt returned {type(item).__name__}; return str, content or PromptMessage"
            )
    return messages
