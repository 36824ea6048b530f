"""Tools: a trio coroutine function plus the schema its type hints promise.

Registration does all the inspection (signature, hints, docstring) once; a call only
structures the arguments with the strict converter, awaits the function, and turns its
return value into a ``CallToolResult``. Anything the tool does wrong becomes a result
with ``isError: true`` that the model can read and act on, never a traceback.
"""

from __future__ import annotations

import enum
import inspect
import json
import logging
import math
import re
import sys
import types
import typing
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from ._content import CONTENT_TYPES, TextContent
from ._context import Context
from ._converter import ArgumentError, structure_argument, unstructure
from ._input import InputRequired, merge_input_required
from ._jsonrpc import JSONRPCError
from ._protocol import version_at_least
from ._schema import Schema, object_schema, parse_docstring, schema_for
from ._stateless import header_param_problems
from ._tasks import TaskMode, check_mode

log = logging.getLogger("trio_mcp")

JSON = dict[str, Any]
ToolFunction = Callable[..., Awaitable[Any]]
#: ``before_task(arguments, ctx)``: runs on the request before the call may become a task.
BeforeTask = Callable[[JSON, Context], Awaitable[Any]]


@attrs.frozen
class ToolAnnotations:
    """Hints about a tool's behaviour (2025-03-26 and later). Clients must not trust them
    for security decisions; they help a host decide what to confirm with the user."""

    title: str | None = None
    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None

    def to_json(self) -> JSON:
        names = {
            "title": self.title,
            "readOnlyHint": self.read_only_hint,
            "destructiveHint": self.destructive_hint,
            "idempotentHint": self.idempotent_hint,
            "openWorldHint": self.open_world_hint,
        }
        return {k: v for k, v in names.items() if v is not None}


@attrs.frozen
class Icon:
    src: str
    mime_type: str | None = None
    sizes: list[str] | None = None

    def to_json(self) -> JSON:
        out: JSON = {"src": self.src}
        if self.mime_type:
            out["mimeType"] = self.mime_type
        if self.sizes:
            out["sizes"] = list(self.sizes)
        return out


class ToolError(Exception):
    """Raise from a tool to fail the call with exactly this message (``isError: true``)."""


def _unwrap_annotated(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _is_context(hint: Any) -> bool:
    return _unwrap_annotated(hint) is Context


def _is_content_hint(hint: Any) -> bool:
    hint = _unwrap_annotated(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_is_content_hint(arg) for arg in typing.get_args(hint))
    return isinstance(hint, type) and issubclass(hint, CONTENT_TYPES)


def _is_content_list_hint(hint: Any) -> bool:
    hint = _unwrap_annotated(hint)
    args = typing.get_args(hint)
    return typing.get_origin(hint) is list and bool(args) and _is_content_hint(args[0])


def _output_schema(hint: Any) -> tuple[Schema | None, bool]:
    """(schema, wrapped): ``wrapped`` means the value travels as ``{"result": value}``,
    because ``structuredContent`` must be an object."""
    hint = _unwrap_annotated(hint)
    if hint in (inspect.Signature.empty, None, type(None), str, Any):
        return None, False
    if _is_content_hint(hint) or _is_content_list_hint(hint):
        return None, False
    origin = typing.get_origin(hint)
    try:
        schema = schema_for(hint)
    except TypeError:
        return None, False
    if schema.get("type") == "object" and "properties" in schema:
        return schema, False
    if hint is dict or origin is dict:
        return schema, False
    wrapped = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
    return wrapped, True


class Tool:
    """A registered tool. Built by :meth:`trio_mcp.Server.tool`; rarely made by hand."""

    def __init__(
        self,
        fn: ToolFunction,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
        structured_output: bool | None = None,
        input_schema: Schema | None = None,
        timeout: float | None = None,
        task: TaskMode = "never",
        before_task: BeforeTask | None = None,
    ) -> None:
        if before_task is not None and not inspect.iscoroutinefunction(before_task):
            raise TypeError("before_task must be an 'async def' function (arguments, ctx)")
        #: Whether a call may (``optional``) or must (``required``) run as a task.
        self.task: TaskMode = check_mode(task)
        self.before_task = before_task
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"a tool's timeout must be positive seconds (or math.inf), not {timeout!r}"
            )
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"tool {getattr(fn, '__name__', fn)!r} must be an 'async def' function; for "
                "blocking work, call trio.to_thread.run_sync inside one"
            )
        self.fn = fn
        self.name = name or fn.__name__
        _check_name(self.name)
        self.title = title
        self.annotations = annotations
        self.icons = icons
        self.meta = meta
        #: Seconds a call may run before it fails; None takes the server's default.
        self.timeout = timeout
        summary, arg_docs = parse_docstring(inspect.getdoc(fn))
        self.description = description if description is not None else summary
        hints = typing.get_type_hints(fn, include_extras=True)
        signature = inspect.signature(fn)
        self._context_param: str | None = None
        self._params: dict[str, tuple[Any, Any]] = {}
        #: With a hand-written schema the tool takes the arguments as given (**kwargs).
        self._raw_arguments = input_schema is not None
        for param in signature.parameters.values():
            if param.kind is param.VAR_KEYWORD and self._raw_arguments:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"tool {self.name!r}: *args and **kwargs have no schema; pass input_schema="
                )
            hint = hints.get(param.name, Any)
            if _is_context(hint):
                self._context_param = param.name
                continue
            default = attrs.NOTHING if param.default is param.empty else param.default
            self._params[param.name] = (hint, default)
        self.input_schema = input_schema or object_schema(
            [(n, h, d) for n, (h, d) in self._params.items()], arg_docs
        )
        problems = header_param_problems(self.input_schema)
        if problems:
            # A client must drop such a tool from its list: refuse it here instead.
            raise ValueError(f"tool {self.name!r}: " + "; ".join(problems))
        returns = hints.get("return", inspect.Signature.empty)
        #: An empty list from a tool declared to return content blocks is no content.
        self._returns_content = _is_content_hint(returns) or _is_content_list_hint(returns)
        if structured_output is False:
            self.output_schema, self._wrap_output = None, False
        else:
            self.output_schema, self._wrap_output = _output_schema(returns)

    def describe(self, version: str) -> JSON:
        """The tool as ``tools/list`` shows it to a client on ``version``."""
        out: JSON = {"name": self.name, "inputSchema": self.input_schema}
        if self.description:
            out["description"] = self.description
        modern = version_at_least(version, "2025-06-18")
        if self.title and modern:
            out["title"] = self.title
        if self.annotations is not None and version_at_least(version, "2025-03-26"):
            out["annotations"] = self.annotations.to_json()
        if self.output_schema is not None and modern:
            out["outputSchema"] = self.output_schema
        if self.icons and version_at_least(version, "2025-11-25"):
            out["icons"] = [icon.to_json() for icon in self.icons]
        if self.meta is not None and modern:
            out["_meta"] = self.meta
        return out

    async def call(
        self, arguments: JSON, context: Context, *, default_timeout: float = math.inf
    ) -> JSON:
        """Run the tool; always returns a ``CallToolResult`` (errors included).

        A call that runs past the tool's timeout (``default_timeout`` unless the tool
        has its own) is cancelled, as any trio task is, and fails with a message that
        says so: the model learns the tool gave up rather than that it failed.
        """
        version = context.protocol_version
        try:
            kwargs = self._structure(arguments)
        except ArgumentError as exc:
            # The client's mistake, not the server's: one line in the log, no traceback.
            log.info("tool %r: invalid arguments: %s", self.name, exc)
            return error_result(f"Invalid arguments for tool {self.name!r}: {exc}")
        if self._context_param is not None:
            kwargs[self._context_param] = context
        timeout = self.timeout if self.timeout is not None else default_timeout
        try:
            if timeout == math.inf:
                # No cancel scope for a deadline that can never pass (~7 µs a call).
                value = await self.fn(**kwargs)
            elif context.time_limit is not None:
                # The request's own scope carries the deadline: a scope of its own cost
                # 4-5 % of a /sse call under uvicorn. Past it, the session answers with
                # _timed_out's result.
                context.time_limit.start(timeout, partial(self._timed_out, timeout))
                value = await self.fn(**kwargs)
            else:
                with trio.move_on_after(timeout) as deadline:
                    value = await self.fn(**kwargs)
                if deadline.cancelled_caught:
                    return self._timed_out(timeout)
        except JSONRPCError:
            raise  # a deliberate protocol error, answered as such
        except ToolError as exc:
            # A failure the tool meant, with its own message: a line, not a traceback.
            log.info("tool %r failed: %s", self.name, exc)
            return error_result(str(exc))
        except Exception as exc:
            merged = merge_input_required(exc) if isinstance(exc, ExceptionGroup) else None
            if merged is not None:
                # Asks made at once from a nursery's tasks: one round asks them all.
                raise merged from None
            # The model gets the message so it can adapt; the operator gets the traceback.
            log.exception("tool %r raised", self.name)
            return error_result(f"Tool {self.name!r} failed: {type(exc).__name__}: {exc}")
        if isinstance(value, InputRequired):
            raise value
        try:
            return self._result(value, version)
        except (TypeError, ValueError) as exc:
            # The message says all a traceback would (it would show only the encoder).
            why = _unsendable(value, exc)
            log.warning("tool %r returned a value that cannot be sent: %s", self.name, why)
            return error_result(f"Tool {self.name!r} returned an unsupported value: {why}")

    def _timed_out(self, timeout: float) -> JSON:
        log.warning("tool %r timed out after %g s", self.name, timeout)
        return error_result(f"Tool {self.name!r} timed out after {timeout:g} s")

    async def prepare(self, arguments: JSON, context: Context) -> JSON | None:
        """Run ``before_task`` (once per call) and keep its value in ``ctx.prepared``;
        None, or the ``isError`` result the call ends with when it failed.
        :class:`~trio_mcp.InputRequired` and JSON-RPC errors are the caller's."""
        if self.before_task is None or context.prepared_ready:
            return None
        try:
            context.prepared = await self.before_task(dict(arguments), context)
        except JSONRPCError:
            raise
        except ToolError as exc:
            log.info("tool %r: before_task failed: %s", self.name, exc)
            return error_result(str(exc))
        except Exception as exc:
            log.exception("tool %r: before_task raised", self.name)
            return error_result(f"Tool {self.name!r} failed: {type(exc).__name__}: {exc}")
        context.prepared_ready = True
        return None

    def _structure(self, arguments: JSON) -> dict[str, Any]:
        if self._raw_arguments:
            return dict(arguments)
        unexpected = sorted(set(arguments) - set(self._params))
        if unexpected:
            raise ArgumentError(f"unexpected argument(s): {', '.join(map(repr, unexpected))}")
        kwargs: dict[str, Any] = {}
        for name, (hint, default) in self._params.items():
            if name in arguments:
                kwargs[name] = structure_argument(name, arguments[name], hint)
            elif default is attrs.NOTHING:
                raise ArgumentError(f"missing required argument {name!r}")
        return kwargs

    def _result(self, value: Any, version: str) -> JSON:
        # A declared output schema is a promise of structuredContent, None and str too.
        content = None if self.output_schema is not None else _as_content(value)
        if (
            content is None
            and self._returns_content
            and isinstance(value, list | tuple)
            and not value
        ):
            content = []
        if content is not None:
            return {"content": [block.to_json(version) for block in content]}
        data = _plain(value)
        # Structured results also travel as JSON text, for clients older than 2025-06-18.
        result: JSON = {"content": [TextContent(_text_of(data)).to_json(version)]}
        structured = {"result": data} if self._wrap_output else data
        if isinstance(structured, dict) and version_at_least(version, "2025-06-18"):
            result["structuredContent"] = structured
        return result


def _check_name(name: str) -> None:
    # 2025-11-25: 1-128 characters of A-Z a-z 0-9 _ - . ; kept to 64 for older clients.
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
        raise ValueError(
            f"tool name {name!r} must be 1-64 characters of letters, digits, '_', '-' or '.'"
        )


def _as_content(value: Any) -> list[Any] | None:
    """The value as content blocks, or None when it is data to be rendered."""
    if value is None:
        return []
    if isinstance(value, str):
        return [TextContent(value)]
    if isinstance(value, CONTENT_TYPES):
        return [value]
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, CONTENT_TYPES) for v in value)
    ):
        return list(value)
    return None


def _plain(value: Any) -> Any:
    if attrs.has(type(value)) or isinstance(value, enum.Enum | tuple):
        return unstructure(value)
    if isinstance(value, list | dict):
        return unstructure(value)
    if value is None or isinstance(value, int | float | bool | str):
        return value
    raise TypeError(
        f"cannot send a {type(value).__name__}: return str, a number, a dict or list, an "
        "attrs instance, or content objects"
    )


def _text_of(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _unsendable(value: Any, exc: TypeError | ValueError) -> str:
    """Why a tool's value cannot be sent, in the client's terms.

    Python's own messages for numbers JSON cannot carry name interpreter internals (an
    integer past ``sys.get_int_max_str_digits()`` digits asks the reader to raise that
    limit): those are said plainly instead. Runs only once encoding has failed."""
    limit = sys.get_int_max_str_digits()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif attrs.has(type(item)):
            pending.extend(attrs.astuple(item, recurse=False))
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not a number JSON can carry"
        elif isinstance(item, int) and limit and _digits(item) > limit:
            return f"an integer of about {_digits(item)} digits; at most {limit} are sent"
    return str(exc)


def _digits(number: int) -> int:
    """About how many decimal digits ``number`` has, without converting it to text."""
    return int(abs(number).bit_length() * math.log10(2)) + 1


def error_result(message: str) -> JSON:
    return {"content": [{"type": "text", "text": message}], "isError": True}
