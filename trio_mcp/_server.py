"""The server: what is registered, and the MCP methods that serve it.

A :class:`Server` is a registry plus a method table. It knows nothing of sessions'
plumbing or HTTP: each request arrives with a :class:`~trio_mcp.Context` through which
the handler can talk back, and its return value (or :class:`JSONRPCError`) is the reply.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._context import LOG_LEVELS, Context
from ._jsonrpc import INVALID_PARAMS, JSON, METHOD_NOT_FOUND, JSONRPCError, Notification, Request
from ._protocol import ServerIdentity
from ._tools import Icon, Tool, ToolAnnotations, ToolFunction

if TYPE_CHECKING:
    from ._app import App
    from ._config import Settings

F = TypeVar("F", bound=ToolFunction)
Handler = Callable[[JSON, Context], Awaitable[JSON]]
ChangeListener = Callable[[str], None]


def _params_error(message: str, data: Any = None) -> JSONRPCError:
    return JSONRPCError(INVALID_PARAMS, message, data)


class Server:
    """An MCP server: register tools on it, then serve it with :meth:`asgi_app`.

    ::

        server = trio_mcp.Server("weather")

        @server.tool()
        async def forecast(city: str, days: int = 3) -> str:
            \"\"\"Forecast for a city.\"\"\"
            ...

    ``page_size`` bounds how many items one ``*/list`` reply carries; clients page with
    the opaque ``nextCursor``.
    """

    def __init__(
        self,
        name: str,
        version: str = "0.1.0",
        *,
        title: str | None = None,
        instructions: str | None = None,
        page_size: int = 100,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.identity = ServerIdentity(name, version, title, instructions)
        self.page_size = page_size
        self._tools: dict[str, Tool] = {}
        self._listeners: set[ChangeListener] = set()
        self._methods: dict[str, Handler] = {
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
            "logging/setLevel": self._set_log_level,
        }

    # -- registration -------------------------------------------------------------------

    def tool(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
        structured_output: bool | None = None,
    ) -> Callable[[F], F]:
        """Register an ``async def`` function as a tool; its hints become its schema."""

        def register(fn: F) -> F:
            self.add_tool(
                fn,
                name=name,
                title=title,
                description=description,
                annotations=annotations,
                icons=icons,
                meta=meta,
                structured_output=structured_output,
            )
            return fn

        return register

    def add_tool(self, fn: ToolFunction, **options: Any) -> Tool:
        tool = Tool(fn, **options)
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        self._changed("tools")
        return tool

    def remove_tool(self, name: str) -> None:
        del self._tools[name]
        self._changed("tools")

    @property
    def tools(self) -> dict[str, Tool]:
        return dict(self._tools)

    # -- change notification ------------------------------------------------------------

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Call ``listener(kind)`` ("tools", ...) whenever that list changes."""
        self._listeners.add(listener)

    def unsubscribe_changes(self, listener: ChangeListener) -> None:
        self._listeners.discard(listener)

    def _changed(self, kind: str) -> None:
        for listener in list(self._listeners):
            listener(kind)

    # -- protocol -----------------------------------------------------------------------

    def capabilities(self, version: str) -> JSON:
        """What ``initialize`` declares: only what is registered, plus logging."""
        capabilities: JSON = {"logging": {}}
        if self._tools:
            capabilities["tools"] = {"listChanged": True}
        return capabilities

    async def handle_request(self, request: Request, context: Context) -> JSON:
        handler = self._methods.get(request.method)
        if handler is None or not self._offers(request.method):
            raise JSONRPCError(METHOD_NOT_FOUND, f"Method not found: {request.method}")
        return await handler(request.params or {}, context)

    async def handle_notification(self, notification: Notification, context: Context) -> None:
        """Client notifications with no built-in meaning are accepted and ignored."""

    def _offers(self, method: str) -> bool:
        # A method of a feature the server does not declare does not exist for the client.
        feature = method.split("/", 1)[0]
        return feature != "tools" or bool(self._tools)

    def asgi_app(self, settings: Settings | None = None) -> App:
        """The ASGI app serving this server; run it with ``hypercorn -k trio``."""
        from ._app import App  # the app is the layer above; imported only when asked for

        return App(self, settings)

    # -- methods ------------------------------------------------------------------------

    async def _list_tools(self, params: JSON, context: Context) -> JSON:
        page, next_cursor = paginate(list(self._tools.values()), params, self.page_size)
        result: JSON = {"tools": [tool.describe(context.protocol_version) for tool in page]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def _call_tool(self, params: JSON, context: Context) -> JSON:
        name = params.get("name")
        if not isinstance(name, str):
            raise _params_error("tools/call needs a string 'name'")
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise _params_error("tools/call 'arguments' must be an object")
        tool = self._tools.get(name)
        if tool is None:
            raise _params_error(f"Unknown tool: {name}", {"name": name})
        return await tool.call(arguments, context)

    async def _set_log_level(self, params: JSON, context: Context) -> JSON:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise _params_error(f"'level' must be one of {', '.join(LOG_LEVELS)}")
        context.session.set_log_level(level)
        return {}


T = TypeVar("T")


def paginate(items: Sequence[T], params: JSON, page_size: int) -> tuple[Sequence[T], str | None]:
    """One page of ``items`` after ``params['cursor']``, and the cursor of the next page."""
    start = _decode_cursor(params.get("cursor"))
    end = start + page_size
    next_cursor = _encode_cursor(end) if end < len(items) else None
    return items[start:end], next_cursor


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii")


def _decode_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        kind, _, number = text.partition(":")
        offset = int(number)
        if kind != "o" or offset < 0:
            raise ValueError(text)
    except (AttributeError, ValueError, UnicodeError, binascii.Error):
        raise _params_error("Invalid cursor: pass back a nextCursor exactly as received") from None
    return offset
