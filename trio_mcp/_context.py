"""What a running handler may do besides returning: the :class:`Context`.

A tool asks for it by annotating a parameter with :class:`Context`. Everything it sends
goes through the session it belongs to (the :class:`SessionPort`), tagged with the request
it serves so a transport can put it on that request's stream. The context is only valid
while its handler runs; when the client cancels the request, the handler's cancel scope
is cancelled and any await on the context raises :class:`trio.Cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from ._jsonrpc import JSON, JSONRPCError, RequestId
from ._protocol import version_at_least

#: The first revision on which the client's input comes back by retry (SEP-2322), and
#: a capability the client lacks is a protocol error rather than a tool's failure.
STATELESS_ERA: Final = "2026-07-28"
#: MissingRequiredClientCapability (2026-07-28).
MISSING_REQUIRED_CAPABILITY: Final = -32021

LOG_LEVELS: Final = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


class ClientError(Exception):
    """The client answered a server-to-client request with a JSON-RPC error.

    Deliberately not a :class:`JSONRPCError`: the client's error describes *its* side of
    a nested exchange, so it must not become the error of the request being served.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class MissingCapability(Exception):
    """The client did not declare the capability a server-to-client request needs."""


class TimeLimit(Protocol):
    """A request's time limit, kept by whoever runs its handler (a session does, on the
    cancel scope the handler already runs in, which costs less than a scope of its own).
    Past it the handler is cancelled and the request answered with ``on_expiry()``."""

    def start(self, seconds: float, on_expiry: Callable[[], JSON]) -> None:
        """From now, ``seconds`` at most (a fresh limit, whatever ran before)."""

    def pause(self) -> None:
        """No limit until the next :meth:`start` (the handler waits on the client)."""


class SessionPort(Protocol):
    """The session as a handler sees it: send messages, read negotiated state."""

    @property
    def protocol_version(self) -> str: ...

    @property
    def client_capabilities(self) -> JSON: ...

    @property
    def log_level(self) -> str | None: ...

    def set_log_level(self, level: str) -> None: ...

    @property
    def subscriptions(self) -> set[str]: ...

    async def notify(
        self, method: str, params: JSON | None, *, related_request: RequestId | None
    ) -> None: ...

    async def request(
        self,
        method: str,
        params: JSON | None,
        *,
        related_request: RequestId | None,
        timeout: float | None,
        key: str | None = None,
    ) -> JSON: ...


class Context:
    """A handler's view of its request and session.

    Attributes:
        request_id: the JSON-RPC id of the request being served (None while serving a
            notification, whose messages then belong to no request).
        meta: the request's ``params._meta`` (empty when none was sent).
        input_responses: the client's answers so far to what the handler asked by
            raising :class:`~trio_mcp.InputRequired`, by key (empty in the first round).
        request_state: the ``state`` the handler put in its last
            :class:`~trio_mcp.InputRequired`, or None.
        prepared: what the tool's ``before_task`` returned (see
            :meth:`~trio_mcp.Server.tool`), or None for a tool without one.
    """

    def __init__(self, port: SessionPort, request_id: RequestId | None, meta: JSON | None) -> None:
        self._port = port
        self.request_id = request_id
        self.meta: JSON = meta or {}
        self.input_responses: dict[str, Any] = {}
        self.request_state: Any = None
        self.prepared: Any = None
        #: Whether ``before_task`` already ran for this call (on the request, when the
        #: call became a task): the handler then must not run it again.
        self.prepared_ready = False
        #: The time limit of the request's handler where its runner keeps one (a
        #: session); None where a tool's timeout needs a cancel scope of its own.
        self.time_limit: TimeLimit | None = None

    @property
    def session(self) -> SessionPort:
        """The session this request belongs to."""
        return self._port

    @property
    def protocol_version(self) -> str:
        return self._port.protocol_version

    @property
    def client_capabilities(self) -> JSON:
        return self._port.client_capabilities

    @property
    def progress_token(self) -> str | int | None:
        token = self.meta.get("progressToken")
        return token if isinstance(token, str | int) and not isinstance(token, bool) else None

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Tell the client how far along the request is.

        A no-op when the client sent no progress token: the spec allows progress only
        for requests that asked for it. ``progress`` must increase with each call.
        """
        token = self.progress_token
        if token is None:
            return
        params: JSON = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None and version_at_least(self.protocol_version, "2025-03-26"):
            params["message"] = message
        await self._port.notify("notifications/progress", params, related_request=self.request_id)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send a log message to the client, if it asked for this level or above.

        Before the client calls ``logging/setLevel`` nothing is sent: the spec leaves the
        default to the server, and silence is the polite one.
        """
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {LOG_LEVELS}")
        threshold = self._port.log_level
        if threshold is None or LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
            return
        params: JSON = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self._port.notify("notifications/message", params, related_request=self.request_id)

    async def debug(self, data: Any) -> None:
        await self.log("debug", data)

    async def info(self, data: Any) -> None:
        await self.log("info", data)

    async def warning(self, data: Any) -> None:
        await self.log("warning", data)

    async def error(self, data: Any) -> None:
        await self.log("error", data)

    async def send_request(
        self,
        method: str,
        params: JSON | None = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        """Ask the client and wait for its result.

        On a session this is a server-to-client request. On the stateless wire it ends
        the round with ``input_required`` under ``key`` (by default numbered in the
        order the handler asks) unless the client's retry brought the answer, which is
        then returned at once: see :class:`~trio_mcp.InputRequired`.

        Raises :class:`ClientError` when the client answers with an error and
        :class:`trio.TooSlowError` when it does not answer within ``timeout`` seconds
        (by default the app's ``client_request_timeout``).
        """
        return await self._port.request(
            method, params, related_request=self.request_id, timeout=timeout, key=key
        )

    def _missing(self, why: str, required: JSON) -> Exception:
        """What to raise when the client lacks ``required``: on the stateless wire a
        protocol error (-32021: capabilities come with each request, and the client must
        say it can), on a session a :class:`MissingCapability` the tool may handle."""
        if version_at_least(self.protocol_version, STATELESS_ERA):
            return JSONRPCError(
                MISSING_REQUIRED_CAPABILITY,
                f"{why}: declare it in clientCapabilities",
                {"requiredCapabilities": required},
            )
        return MissingCapability(why)

    def _require(self, capability: str, minimum_version: str) -> JSON:
        if version_at_least(self.protocol_version, STATELESS_ERA):
            declared = self.client_capabilities.get(capability)
            if not isinstance(declared, dict):
                raise self._missing(
                    f"this request needs the client's {capability!r} capability",
                    {capability: {}},
                )
            return declared
        if not version_at_least(self.protocol_version, minimum_version):
            raise MissingCapability(
                f"{capability} needs MCP {minimum_version} or later; this session speaks "
                f"{self.protocol_version}"
            )
        declared = self.client_capabilities.get(capability)
        if not isinstance(declared, dict):
            raise MissingCapability(
                f"the client did not declare the {capability!r} capability, so it cannot be asked"
            )
        return declared

    async def sample(
        self,
        messages: str | list[JSON],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: list[str] | None = None,
        model_preferences: JSON | None = None,
        include_context: str | None = None,
        metadata: JSON | None = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        """Ask the client's LLM for a completion (``sampling/createMessage``).

        ``messages`` is a list of ``{"role", "content"}`` objects, or a string that becomes
        one user text message. Returns the client's ``CreateMessageResult``. Raises
        :class:`MissingCapability` if the client cannot sample.
        """
        self._require("sampling", "2024-11-05")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": {"type": "text", "text": messages}}]
        params: JSON = {"messages": messages, "maxTokens": max_tokens}
        optional = {
            "systemPrompt": system_prompt,
            "temperature": temperature,
            "stopSequences": stop_sequences,
            "modelPreferences": model_preferences,
            "includeContext": include_context,
            "metadata": metadata,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        return await self.send_request("sampling/createMessage", params, timeout=timeout, key=key)

    async def elicit(
        self,
        message: str,
        requested_schema: JSON,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        """Ask the user for structured input through the client (form mode).

        ``requested_schema`` is a flat JSON Schema object of primitive properties. Returns
        the ``ElicitResult``: ``{"action": "accept"|"decline"|"cancel", "content": ...}``.
        """
        declared = self._require("elicitation", "2025-06-18")
        # An empty object declares form mode alone (it predates modes).
        if declared and "form" not in declared and "url" in declared:
            raise self._missing(
                "the client did not declare form-mode elicitation",
                {"elicitation": {"form": {}}},
            )
        params: JSON = {"message": message, "requestedSchema": requested_schema}
        if version_at_least(self.protocol_version, "2025-11-25"):
            params["mode"] = "form"
        return await self.send_request("elicitation/create", params, timeout=timeout, key=key)

    async def elicit_url(
        self,
        message: str,
        url: str,
        elicitation_id: str,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        """Send the user to ``url`` (URL-mode elicitation, 2025-11-25): for interactions
        that must not pass through the client, such as a third party's OAuth consent."""
        declared = self._require("elicitation", "2025-11-25")
        if "url" not in declared:
            raise self._missing(
                "the client did not declare URL-mode elicitation", {"elicitation": {"url": {}}}
            )
        params: JSON = {
            "mode": "url",
            "message": message,
            "url": url,
            "elicitationId": elicitation_id,
        }
        return await self.send_request("elicitation/create", params, timeout=timeout, key=key)

    async def list_roots(
        self, *, timeout: float | None = None, key: str | None = None
    ) -> list[JSON]:
        """The client's roots (``roots/list``): the directories or files it shares."""
        self._require("roots", "2024-11-05")
        result = await self.send_request("roots/list", None, timeout=timeout, key=key)
        roots = result.get("roots")
        return roots if isinstance(roots, list) else []
