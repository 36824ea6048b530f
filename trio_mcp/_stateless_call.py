"""Serving one request of the stateless wire (MCP 2026-07-28), whatever carries it.

No session exists: everything a handler may learn about its client comes with the
request (``_meta``), and everything it sends goes back on that request's own response.
A handler's :class:`~trio_mcp.Context` talks to a :class:`CallPort` that lives exactly
as long as the request: progress and log notifications go to the response (logs only
when the request asked for a level), and an ask for the client's input ends the round
with ``input_required`` (see :mod:`trio_mcp._input`). The transport runs
:meth:`StatelessService.answer` in the request's own task, so closing the response
cancels the handler like any trio task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._caching import CacheHint
from ._context import LOG_LEVELS, Context
from ._input import (
    CAPABILITY_OF,
    Answers,
    InputRequired,
    lacking_capabilities,
    merge_input_required,
)
from ._jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    JSON,
    SERVER_BUSY,
    JSONRPCError,
    Request,
    RequestId,
    dumps,
    error_message,
    notification_message,
    result_message,
)
from ._sealing import Binding, InvalidState, StateSealer, digest_arguments
from ._stateless import (
    MISSING_REQUIRED_CAPABILITY,
    REMOVED_METHODS,
    RequestMeta,
    check_headers,
    check_version_header,
    complete,
    discover_result,
    method_not_found,
    read_meta,
)
from ._task_store import StoreUnavailable
from ._tasks import TASK_METHODS, TASKS_EXTENSION, TasksFull, declares_tasks, missing_extension

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._server import Server
    from ._task_runner import TaskRunner

log = logging.getLogger("trio_mcp")

#: Requests that may end a round with ``input_required`` (SEP-2322).
ASKING_METHODS: Final = frozenset({"tools/call", "prompts/get", "resources/read"})
#: Notifications a handler may send on its request's response: the rest (list changes,
#: resource updates) belong to ``subscriptions/listen`` streams.
REQUEST_NOTIFICATIONS: Final = frozenset({"notifications/progress", "notifications/message"})
#: Methods a transport serves itself, before :meth:`StatelessService.answer`.
TRANSPORT_METHODS: Final = frozenset({"subscriptions/listen"})

Emit = Callable[[JSON], Awaitable[None]]
#: What a result reached by retrying carries: its inputs are not in any cache key.
RETRY_HINT: Final = CacheHint(0, "private")


@attrs.frozen
class Answer:
    """A response as JSON text, and its error's code when it is an error."""

    text: str
    error_code: int | None = None
    #: Set when the store the request needed could not be reached: the transport
    #: answers 503 with ``Retry-After`` this many seconds (the error's code is
    #: ``SERVER_BUSY``), so the client retries rather than gives up.
    retry_after: int | None = None


class CallPort:
    """The :class:`~trio_mcp._context.SessionPort` of one stateless request."""

    __slots__ = ("_answers", "_emit", "_meta", "subscriptions")

    def __init__(self, meta: RequestMeta, emit: Emit, answers: Answers) -> None:
        self._meta = meta
        self._emit = emit
        self._answers = answers
        #: ``resources/subscribe`` does not exist on this wire: always empty.
        self.subscriptions: set[str] = set()

    @property
    def protocol_version(self) -> str:
        return self._meta.protocol_version

    @property
    def client_capabilities(self) -> JSON:
        return self._meta.client_capabilities

    @property
    def log_level(self) -> str | None:
        return self._meta.log_level

    def set_log_level(self, level: str) -> None:
        """Unreachable: ``logging/setLevel`` was removed; each request names its level."""

    async def notify(
        self, method: str, params: JSON | None, *, related_request: RequestId | None = None
    ) -> None:
        if method in REQUEST_NOTIFICATIONS:
            await self._emit(notification_message(method, params))

    async def request(
        self,
        method: str,
        params: JSON | None,
        *,
        related_request: RequestId | None = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        if method not in CAPABILITY_OF:
            raise JSONRPCError(INTERNAL_ERROR, f"{method} cannot be asked of a client on this wire")
        return self._answers.lookup(method, params, self._answers.key_for(method, key))


class StatelessService:
    """Admits and answers stateless requests for one :class:`~trio_mcp.Server`."""

    def __init__(
        self, server: Server, sealer: StateSealer, tasks: TaskRunner | None = None
    ) -> None:
        """``tasks`` runs the calls that become tasks and serves ``tasks/*``; without
        it the extension is neither advertised nor served."""
        self._server = server
        self._sealer = sealer
        self._tasks = tasks

    def admit(self, request: Request, headers: Mapping[str, str]) -> RequestMeta:
        """The request's ``_meta`` once it may be served, else a
        :class:`~trio_mcp._stateless.Refusal` saying why and with what status."""
        check_version_header(request, headers.get("mcp-protocol-version"))
        meta = read_meta(request, LOG_LEVELS)
        check_headers(request, meta, headers, self._server.tool_input_schema)
        method = request.method
        if method in REMOVED_METHODS or not (
            method == "server/discover"
            or method in TRANSPORT_METHODS
            or self._server.serves(method)
            or (method in TASK_METHODS and self._tasks is not None)
        ):
            raise method_not_found(method)
        return meta

    async def answer(
        self, request: Request, meta: RequestMeta, principal: str | None, emit: Emit
    ) -> Answer:
        """The response to ``request``: its result, ``input_required``, or a JSON-RPC
        error. Notifications the handler sends meanwhile go to ``emit``. A handler's
        failure is logged and answered as an internal error, never raised. Encoding
        happens here, so a result that is not JSON fails this request alone."""
        try:
            result = await self._result(request, meta, principal, emit)
            return Answer(dumps(result_message(request.id, result)))
        except JSONRPCError as exc:
            try:
                return Answer(dumps(error_message(request.id, exc)), exc.code)
            except (TypeError, ValueError):
                plain = JSONRPCError(exc.code, exc.message)
                return Answer(dumps(error_message(request.id, plain)), exc.code)
        except StoreUnavailable as exc:
            busy = JSONRPCError(SERVER_BUSY, str(exc))
            return Answer(dumps(error_message(request.id, busy)), SERVER_BUSY, exc.retry_after)
        except Exception:
            log.exception("stateless %s failed", request.method)
            internal = JSONRPCError(INTERNAL_ERROR, "Internal error")
            return Answer(dumps(error_message(request.id, internal)), INTERNAL_ERROR)

    async def _result(
        self, request: Request, meta: RequestMeta, principal: str | None, emit: Emit
    ) -> JSON:
        server = self._server
        method = request.method
        if method == "server/discover":
            capabilities = server.capabilities(meta.protocol_version)
            if self._tasks is not None and server.has_task_tools():
                capabilities["extensions"] = {TASKS_EXTENSION: {}}
            return discover_result(server.identity, capabilities, server.discover_cache)
        params = request.params or {}
        if method in TASK_METHODS and self._tasks is not None:
            if not declares_tasks(meta.client_capabilities):
                raise missing_extension(method)
            return complete(await self._tasks.serve(method, params, principal), server.identity)
        as_task = False
        if method == "tools/call":
            mode = server.task_mode(params)
            declared = self._tasks is not None and declares_tasks(meta.client_capabilities)
            if mode == "required" and not declared:
                raise missing_extension(f"tool {params.get('name')!r}")
            as_task = mode != "never" and declared
        if method not in ASKING_METHODS:
            context = Context(CallPort(meta, emit, Answers({})), request.id, meta.raw)
            result = await server.dispatch(request, context)
            return complete(result, server.identity, server.cache_hint(method, params))
        binding = _binding(request, principal)
        answers, state = self._unseal(params, binding)
        context = Context(CallPort(meta, emit, answers), request.id, meta.raw)
        context.input_responses = answers.given
        context.request_state = state
        try:
            if as_task:
                return await self._start_task(request, meta, principal, context)
            result = await server.dispatch(request, context)
        except InputRequired as need:
            return self._input_required(need, answers, meta, binding)
        except ExceptionGroup as group:
            # Asks made at once from a nursery's tasks: one round asks them all.
            merged = merge_input_required(group)
            if merged is None:
                raise
            return self._input_required(merged, answers, meta, binding)
        if "inputResponses" in params or "requestState" in params:
            # A retry's result depends on answers outside the cache key: never cached.
            return complete(result, server.identity, RETRY_HINT)
        return complete(result, server.identity, server.cache_hint(method, params))

    async def _start_task(
        self, request: Request, meta: RequestMeta, principal: str | None, context: Context
    ) -> JSON:
        """Gather on the request what the tool's ``before_task`` asks (multi round-trip:
        this raises :class:`InputRequired`), then create the task and answer with it."""
        assert self._tasks is not None
        params = request.params or {}
        failed = await self._server.prepare_task(params, context)
        if failed is not None:
            return complete(failed, self._server.identity)
        try:
            created = await self._tasks.start(
                request,
                protocol_version=meta.protocol_version,
                capabilities=meta.client_capabilities,
                meta=meta.raw,
                principal=principal,
                prepared=context.prepared,
                prepared_ready=context.prepared_ready,
            )
        except (TasksFull, StoreUnavailable):
            if self._server.task_mode(params) == "required":
                raise
            # At a task limit, or with the task store out of reach, an optional tool
            # runs inline, as for a client without the extension (``before_task`` has
            # run: it is not run again).
            return complete(await self._server.dispatch(request, context), self._server.identity)
        return complete(created, self._server.identity)

    def _unseal(self, params: JSON, binding: Binding) -> tuple[Answers, Any]:
        """Earlier rounds' answers and the author's state from ``requestState``, with
        this round's ``inputResponses`` (only those for the keys last asked) added."""
        responses = params.get("inputResponses")
        if not isinstance(responses, dict):
            responses = {}
        token = params.get("requestState")
        if token is None:
            # No earlier round to build on: answers count only if the handler asks for
            # them, so that nothing unasked is ever sealed into the next round's state.
            return Answers(responses, trusted=()), None
        try:
            sealed = self._sealer.open(token, binding)
        except InvalidState as exc:
            raise JSONRPCError(INVALID_PARAMS, f"Invalid requestState: {exc}") from None
        if not isinstance(sealed, dict):
            raise JSONRPCError(INVALID_PARAMS, "Invalid requestState: not issued by this server")
        given: dict[str, Any] = dict(sealed.get("a") or {})
        given.update({key: responses[key] for key in sealed.get("k") or () if key in responses})
        return Answers(given, trusted=given), sealed.get("s")

    def _input_required(
        self, need: InputRequired, answers: Answers, meta: RequestMeta, binding: Binding
    ) -> JSON:
        lacking = lacking_capabilities(need.requests.values(), meta.client_capabilities)
        if lacking:
            raise JSONRPCError(
                MISSING_REQUIRED_CAPABILITY,
                "the request needs the client's "
                + ", ".join(sorted(lacking))
                + " capability, which it did not declare in clientCapabilities",
                {"requiredCapabilities": lacking},
            )
        sealed = {"a": answers.kept(), "k": sorted(need.requests), "s": need.state}
        result: JSON = {"resultType": "input_required"}
        if need.requests:
            result["inputRequests"] = need.requests
        try:
            result["requestState"] = self._sealer.seal(sealed, binding)
        except ValueError as exc:
            log.warning("%s: cannot seal its requestState: %s", binding.method, exc)
            raise JSONRPCError(
                INTERNAL_ERROR,
                "the answers gathered so far are too large to carry in requestState: ask "
                "for less per request",
            ) from None
        return complete(result, self._server.identity)


def _binding(request: Request, principal: str | None) -> Binding:
    params = request.params or {}
    name_key = "uri" if request.method == "resources/read" else "name"
    name = params.get(name_key)
    arguments = params.get("arguments") if request.method != "resources/read" else None
    return Binding(
        principal=principal,
        method=request.method,
        name=name if isinstance(name, str) else "",
        arguments_digest=digest_arguments(arguments if isinstance(arguments, dict) else {}),
    )
