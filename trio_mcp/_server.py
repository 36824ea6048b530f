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

from ._caching import CACHEABLE_METHODS, DEFAULT_LIST_HINT, DEFAULT_READ_HINT, CacheHint
from ._content import Annotations
from ._context import LOG_LEVELS, Context
from ._input import InputRequired
from ._jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    JSON,
    METHOD_NOT_FOUND,
    JSONRPCError,
    Notification,
    Request,
)
from ._prompts import Prompt, PromptFunction
from ._protocol import ServerIdentity, version_at_least
from ._resources import Reader, Resource, ResourceTemplate
from ._tasks import TaskMode
from ._tools import BeforeTask, Icon, Tool, ToolAnnotations, ToolFunction
from ._uritemplate import UriTemplate

if TYPE_CHECKING:
    from ._app import App
    from ._config import Settings
    from ._registry import SessionStore
    from ._task_store import TaskStore

F = TypeVar("F", bound=ToolFunction)
R = TypeVar("R", bound=Reader)
P = TypeVar("P", bound=PromptFunction)
Handler = Callable[[JSON, Context], Awaitable[JSON]]
#: ``listener(event, detail)``: ("list_changed", "tools"|"resources"|"prompts") or
#: ("resource_updated", uri).
ServerListener = Callable[[str, str], None]
Completer = Callable[[str, str, dict[str, str]], Awaitable[list[str]]]
C = TypeVar("C", bound=Completer)
#: The spec caps one completion reply at 100 values.
MAX_COMPLETIONS = 100
#: Rounds of asking the client a handler may take on a session before it is stopped:
#: a handler that never has enough is a bug, and must not ask forever.
MAX_INPUT_ROUNDS = 16


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
    the opaque ``nextCursor``. ``tool_timeout`` bounds every tool call (seconds; a tool
    may set its own): a call past it is cancelled and fails with ``isError``.
    ``cache`` is the caching hint the stateless wire puts on ``server/discover`` and the
    lists (by default a minute, public); :meth:`set_cache` overrides it per method, and
    a resource's own ``cache=`` its reads (by default 0 ms, private).
    """

    def __init__(
        self,
        name: str,
        version: str = "0.1.0",
        *,
        title: str | None = None,
        instructions: str | None = None,
        page_size: int = 100,
        tool_timeout: float = 600.0,
        cache: CacheHint = DEFAULT_LIST_HINT,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if not tool_timeout > 0:
            raise ValueError("tool_timeout must be positive seconds (or math.inf)")
        self.tool_timeout = tool_timeout
        self.identity = ServerIdentity(name, version, title, instructions)
        self.page_size = page_size
        self._tools: dict[str, Tool] = {}
        self._resources: dict[str, Resource] = {}
        self._templates: dict[str, ResourceTemplate] = {}
        self._prompts: dict[str, Prompt] = {}
        self._completers: dict[tuple[str, str], Completer] = {}
        self._listeners: set[ServerListener] = set()
        self._cache: dict[str, CacheHint] = dict.fromkeys(CACHEABLE_METHODS, cache)
        self._cache["resources/read"] = DEFAULT_READ_HINT
        self._methods: dict[str, Handler] = {
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
            "resources/list": self._list_resources,
            "resources/templates/list": self._list_templates,
            "resources/read": self._read_resource,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "prompts/list": self._list_prompts,
            "prompts/get": self._get_prompt,
            "completion/complete": self._complete,
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
        input_schema: JSON | None = None,
        timeout: float | None = None,
        task: TaskMode = "never",
        before_task: BeforeTask | None = None,
    ) -> Callable[[F], F]:
        """Register an ``async def`` function as a tool; its hints become its schema.

        ``input_schema`` replaces the derived schema with one written by hand; the tool
        then receives the arguments as they came (declare ``**arguments``), unchecked.
        ``timeout`` (seconds, ``math.inf`` for none) overrides the server's
        ``tool_timeout`` for this tool.

        ``task`` says whether a call may become a task (the ``io.modelcontextprotocol/
        tasks`` extension, MCP 2026-07-28): ``"never"`` (the default) runs every call
        on its request; ``"optional"`` answers a client that declared the extension
        on the request with a task at once, and runs the call inline for one that did
        not; ``"required"`` does the former and refuses the latter with -32021. A task
        runs the same coroutine in the app's task nursery, past the end of its request:
        ``ctx.elicit`` and the other asks park it in ``input_required`` until the
        client's ``tasks/update`` answers, then it resumes where it waited;
        ``tasks/cancel`` cancels it like any trio task. Its progress and log
        notifications are dropped (the spec supports neither on tasks).

        ``before_task`` is ``async def before(arguments: dict, ctx) -> Any``, run on
        the request before the call becomes a task: what it asks with ``ctx`` is asked
        by multi round-trip (``input_required`` and retry, SEP-2322), so the task is
        created only once it has its answers. Its return value reaches the tool as
        ``ctx.prepared``. It runs for inline calls too, so the tool sees the same
        ``ctx.prepared`` either way; raising :class:`~trio_mcp.ToolError` ends the
        call with that ``isError`` result before any task exists.
        """

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
                input_schema=input_schema,
                timeout=timeout,
                task=task,
                before_task=before_task,
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

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        annotations: Annotations | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
        cache: CacheHint | None = None,
    ) -> Callable[[R], R]:
        """Register a reader for ``uri``; a URI with ``{variables}`` is a template whose
        variables become the reader's arguments. ``cache`` is the caching hint its reads
        carry on the stateless wire (by default the server's: 0 ms, private)."""

        def register(fn: R) -> R:
            self.add_resource(
                uri,
                fn,
                name=name,
                title=title,
                description=description,
                mime_type=mime_type,
                annotations=annotations,
                icons=icons,
                meta=meta,
                cache=cache,
            )
            return fn

        return register

    def add_resource(self, uri: str, fn: Reader, **options: Any) -> Resource | ResourceTemplate:
        if UriTemplate.is_template(uri):
            if uri in self._templates:
                raise ValueError(f"a resource template {uri!r} is already registered")
            template = ResourceTemplate(uri, fn, **options)
            self._templates[uri] = template
            self._changed("resources")
            return template
        if uri in self._resources:
            raise ValueError(f"a resource {uri!r} is already registered")
        resource = Resource(uri, fn, **options)
        self._resources[uri] = resource
        self._changed("resources")
        return resource

    def remove_resource(self, uri: str) -> None:
        if self._resources.pop(uri, None) is None:
            del self._templates[uri]
        self._changed("resources")

    def prompt(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        icons: list[Icon] | None = None,
        meta: JSON | None = None,
    ) -> Callable[[P], P]:
        """Register an ``async def`` prompt; its parameters are the prompt's arguments."""

        def register(fn: P) -> P:
            self.add_prompt(
                fn, name=name, title=title, description=description, icons=icons, meta=meta
            )
            return fn

        return register

    def add_prompt(self, fn: PromptFunction, **options: Any) -> Prompt:
        prompt = Prompt(fn, **options)
        if prompt.name in self._prompts:
            raise ValueError(f"a prompt named {prompt.name!r} is already registered")
        self._prompts[prompt.name] = prompt
        self._changed("prompts")
        return prompt

    def remove_prompt(self, name: str) -> None:
        del self._prompts[name]
        self._changed("prompts")

    @property
    def prompts(self) -> dict[str, Prompt]:
        return dict(self._prompts)

    def completion(
        self, *, prompt: str | None = None, resource_template: str | None = None
    ) -> Callable[[C], C]:
        """Register ``async def complete(argument, value, context_arguments) -> list[str]``
        for a prompt's arguments or a resource template's variables."""
        if (prompt is None) == (resource_template is None):
            raise TypeError("name exactly one of prompt= or resource_template=")
        key = ("ref/prompt", prompt) if prompt is not None else ("ref/resource", resource_template)

        def register(fn: C) -> C:
            self._completers[key] = fn  # type: ignore[index]
            return fn

        return register

    # -- caching hints (stateless wire) ---------------------------------------------------

    def set_cache(self, method: str, hint: CacheHint) -> None:
        """The caching hint of ``method``'s results (one of the lists,
        ``server/discover``, or ``resources/read`` for resources without their own)."""
        if method not in CACHEABLE_METHODS:
            raise ValueError(
                f"{method!r} results carry no caching hint; use one of "
                + ", ".join(sorted(CACHEABLE_METHODS))
            )
        self._cache[method] = hint

    @property
    def discover_cache(self) -> CacheHint:
        return self._cache["server/discover"]

    def cache_hint(self, method: str, params: JSON) -> CacheHint | None:
        """The hint a complete result of ``method`` carries, or None for none."""
        if method == "resources/read":
            uri = params.get("uri")
            resource = self._resources.get(uri) if isinstance(uri, str) else None
            if resource is not None and resource.cache is not None:
                return resource.cache
            for template in self._templates.values():
                if template.cache is not None and isinstance(uri, str) and template.match(uri):
                    return template.cache
        return self._cache.get(method)

    # -- change notification ------------------------------------------------------------

    def subscribe_changes(self, listener: ServerListener) -> None:
        """Call ``listener(event, detail)`` on list changes and resource updates."""
        self._listeners.add(listener)

    def unsubscribe_changes(self, listener: ServerListener) -> None:
        self._listeners.discard(listener)

    def _changed(self, kind: str) -> None:
        self._broadcast("list_changed", kind)

    def notify_resource_updated(self, uri: str) -> None:
        """Tell every session subscribed to ``uri`` that it changed."""
        self._broadcast("resource_updated", uri)

    def broadcast_change(self, event: str, detail: str) -> None:
        """Tell every subscriber of a change made elsewhere (another worker on the
        same Redis): ``event`` is ``"list_changed"`` or ``"resource_updated"``."""
        self._broadcast(event, detail)

    def _broadcast(self, event: str, detail: str) -> None:
        for listener in list(self._listeners):
            listener(event, detail)

    # -- protocol -----------------------------------------------------------------------

    def capabilities(self, version: str) -> JSON:
        """What ``initialize`` declares: only what is registered, plus logging."""
        capabilities: JSON = {"logging": {}}
        if self._tools:
            capabilities["tools"] = {"listChanged": True}
        if self._resources or self._templates:
            capabilities["resources"] = {"subscribe": True, "listChanged": True}
        if self._prompts:
            capabilities["prompts"] = {"listChanged": True}
        if (self._prompts or self._templates) and version_at_least(version, "2025-03-26"):
            capabilities["completions"] = {}
        return capabilities

    async def handle_request(self, request: Request, context: Context) -> JSON:
        """Serve a request whose client is asked for input as it goes (a session, a
        task): a handler that raises :class:`~trio_mcp.InputRequired` has its requests
        sent to the client through ``context`` and runs again with the answers."""
        for _ in range(MAX_INPUT_ROUNDS):
            try:
                return await self.dispatch(request, context)
            except InputRequired as need:
                if context.time_limit is not None:
                    # The client's answers are not the handler's time (each round of
                    # the handler has its own).
                    context.time_limit.pause()
                for key, asked in need.requests.items():
                    context.input_responses[key] = await context.send_request(
                        asked["method"], asked.get("params"), key=key
                    )
                context.request_state = need.state
        # The handler's fault, not the client's: it asked and asked and never finished.
        raise JSONRPCError(
            INTERNAL_ERROR,
            f"{request.method} still needed input after {MAX_INPUT_ROUNDS} rounds of asking",
        )

    async def dispatch(self, request: Request, context: Context) -> JSON:
        """Run the handler of ``request`` once; :class:`~trio_mcp.InputRequired` is
        the caller's to answer."""
        handler = self._methods.get(request.method)
        if handler is None or not self._offers(request.method):
            raise JSONRPCError(METHOD_NOT_FOUND, f"Method not found: {request.method}")
        return await handler(request.params or {}, context)

    def change_kinds(self) -> set[str]:
        """The lists whose changes this server announces (those it has)."""
        kinds = set()
        if self._tools:
            kinds.add("tools")
        if self._resources or self._templates:
            kinds.add("resources")
        if self._prompts:
            kinds.add("prompts")
        return kinds

    def serves(self, method: str) -> bool:
        """Whether ``method`` is one this server answers (its feature is registered)."""
        return method in self._methods and self._offers(method)

    def tool_input_schema(self, name: str) -> JSON | None:
        tool = self._tools.get(name)
        return tool.input_schema if tool is not None else None

    async def handle_notification(self, notification: Notification, context: Context) -> None:
        """Client notifications with no built-in meaning are accepted and ignored."""

    def _offers(self, method: str) -> bool:
        # A method of a feature the server does not declare does not exist for the client.
        feature = method.split("/", 1)[0]
        offered = {
            "tools": bool(self._tools),
            "resources": bool(self._resources or self._templates),
            "prompts": bool(self._prompts),
            "completion": bool(self._prompts or self._templates),
        }
        return offered.get(feature, True)

    def asgi_app(
        self,
        settings: Settings | None = None,
        *,
        store: SessionStore | None = None,
        task_store: TaskStore | None = None,
    ) -> App:
        """The ASGI app serving this server; run it with ``hypercorn -k trio``."""
        from ._app import App  # the app is the layer above; imported only when asked for

        return App(self, settings, store=store, task_store=task_store)

    # -- methods ------------------------------------------------------------------------

    async def _list_tools(self, params: JSON, context: Context) -> JSON:
        version = context.protocol_version
        page, next_cursor = paginate(list(self._tools.values()), params, self.page_size)
        return _page("tools", [tool.describe(version) for tool in page], next_cursor)

    async def _call_tool(self, params: JSON, context: Context) -> JSON:
        name = params.get("name")
        if not isinstance(name, str):
            raise _params_error("tools/call needs a string 'name'")
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise _params_error("tools/call 'arguments' must be an object")
        tool = self._tool_of(params)
        failed = await tool.prepare(arguments, context)
        if failed is not None:
            return failed
        return await tool.call(arguments, context, default_timeout=self.tool_timeout)

    def _tool_of(self, params: JSON) -> Tool:
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise _params_error(f"Unknown tool: {name}", {"name": name})
        return tool

    def task_mode(self, params: JSON) -> TaskMode:
        """How the ``tools/call`` with ``params`` may run as a task (``never`` for a
        tool that does not exist: the call then fails as usual)."""
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        return "never" if tool is None else tool.task

    def has_task_tools(self) -> bool:
        return any(tool.task != "never" for tool in self._tools.values())

    async def prepare_task(self, params: JSON, context: Context) -> JSON | None:
        """Run the tool's ``before_task`` on the request, before the call becomes a
        task: None, or the ``isError`` result that ends the call instead."""
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise _params_error("tools/call 'arguments' must be an object")
        return await self._tool_of(params).prepare(arguments, context)

    async def _list_resources(self, params: JSON, context: Context) -> JSON:
        version = context.protocol_version
        page, next_cursor = paginate(list(self._resources.values()), params, self.page_size)
        return _page("resources", [r.describe(version) for r in page], next_cursor)

    async def _list_templates(self, params: JSON, context: Context) -> JSON:
        version = context.protocol_version
        page, next_cursor = paginate(list(self._templates.values()), params, self.page_size)
        return _page("resourceTemplates", [t.describe(version) for t in page], next_cursor)

    def _uri(self, params: JSON) -> str:
        uri = params.get("uri")
        if not isinstance(uri, str) or not uri:
            raise _params_error("'uri' must be a non-empty string")
        return uri

    async def _read_resource(self, params: JSON, context: Context) -> JSON:
        uri = self._uri(params)
        resource = self._resources.get(uri)
        if resource is not None:
            return {"contents": await resource.read(context)}
        for template in self._templates.values():
            variables = template.match(uri)
            if variables is not None:
                return {"contents": await template.read(uri, variables, context)}
        raise _params_error(f"Resource not found: {uri}", {"uri": uri})

    def _known_uri(self, uri: str) -> bool:
        return uri in self._resources or any(
            t.match(uri) is not None for t in self._templates.values()
        )

    async def _subscribe(self, params: JSON, context: Context) -> JSON:
        uri = self._uri(params)
        if not self._known_uri(uri):
            raise _params_error(f"Resource not found: {uri}", {"uri": uri})
        context.session.subscriptions.add(uri)
        return {}

    async def _unsubscribe(self, params: JSON, context: Context) -> JSON:
        context.session.subscriptions.discard(self._uri(params))
        return {}

    async def _list_prompts(self, params: JSON, context: Context) -> JSON:
        version = context.protocol_version
        page, next_cursor = paginate(list(self._prompts.values()), params, self.page_size)
        return _page("prompts", [p.describe(version) for p in page], next_cursor)

    async def _get_prompt(self, params: JSON, context: Context) -> JSON:
        name = params.get("name")
        if not isinstance(name, str):
            raise _params_error("prompts/get needs a string 'name'")
        prompt = self._prompts.get(name)
        if prompt is None:
            raise _params_error(f"Unknown prompt: {name}", {"name": name})
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise _params_error("prompts/get 'arguments' must be an object")
        return await prompt.render(arguments, context)

    async def _complete(self, params: JSON, context: Context) -> JSON:
        ref, argument = params.get("ref"), params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise _params_error("completion/complete needs 'ref' and 'argument' objects")
        name, value = argument.get("name"), argument.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise _params_error("'argument' needs a string 'name' and 'value'")
        kind = ref.get("type")
        if kind == "ref/prompt":
            target = ref.get("name")
            prompt = self._prompts.get(target) if isinstance(target, str) else None
            if prompt is None:
                raise _params_error(f"Unknown prompt: {target}", {"name": target})
            if name not in {a.name for a in prompt.arguments}:
                raise _params_error(f"prompt {target!r} has no argument {name!r}")
        elif kind == "ref/resource":
            target = ref.get("uri")
            template = self._templates.get(target) if isinstance(target, str) else None
            if template is None:
                raise _params_error(f"Unknown resource template: {target}", {"uri": target})
            if name not in template.template.variables:
                raise _params_error(f"template {target!r} has no variable {name!r}")
        else:
            raise _params_error("'ref.type' must be 'ref/prompt' or 'ref/resource'")
        completer = self._completers.get((kind, str(target)))
        raw_context = params.get("context") or {}
        arguments = raw_context.get("arguments") if isinstance(raw_context, dict) else None
        known = {k: v for k, v in (arguments or {}).items() if isinstance(v, str)}
        values = list(await completer(name, value, known)) if completer is not None else []
        return {
            "completion": {
                "values": values[:MAX_COMPLETIONS],
                "total": len(values),
                "hasMore": len(values) > MAX_COMPLETIONS,
            }
        }

    async def _set_log_level(self, params: JSON, context: Context) -> JSON:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise _params_error(f"'level' must be one of {', '.join(LOG_LEVELS)}")
        context.session.set_log_level(level)
        return {}


T = TypeVar("T")


def _page(key: str, items: list[JSON], next_cursor: str | None) -> JSON:
    result: JSON = {key: items}
    if next_cursor is not None:
        result["nextCursor"] = next_cursor
    return result


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
