"""What a running handler may do besides returning: the :class:`Context`.

A tool asks for it by annotating a parameter with :class:`Context`. Everything it sends
goes through the session it belongs to (the :class:`SessionPort`), tagged with the request
it serves so a transport can put it on that request's stream. The context is only valid
while its handler runs; when the client cancels the request, the handler's cancel scope
is cancelled and any await on the context raises :class:`trio.Cancelled`.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ._jsonrpc import JSON, RequestId
from ._protocol import version_at_least

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


class SessionPort(Protocol):
    """The session as a handler sees it: send messages, read negotiated state."""

    @property
    def protocol_version(self) -> str: ...

    @property
    def client_capabilities(self) -> JSON: ...

    @property
    def log_level(self) -> str | None: ...

    def set_log_level(self, level: str) -> None: ...

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
    ) -> JSON: ...


class Context:
    """A handler's view of its request and session.

    Attributes:
        request_id: the JSON-RPC id of the request being served.
        meta: the request's ``params._meta`` (empty when none was sent).
    """

    def __init__(self, port: SessionPort, request_id: RequestId, meta: JSON | None) -> None:
        self._port = port
        self.request_id = request_id
        self.meta: JSON = meta or {}

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
        self, method: str, params: JSON | None = None, *, timeout: float | None = 60.0
    ) -> JSON:
        """Send a request to the client and wait for its result.

        Raises :class:`ClientError` when the client answers with an error and
        :class:`trio.TooSlowError` when it does not answer within ``timeout`` seconds.
        """
        return await self._port.request(
            method, params, related_request=self.request_id, timeout=timeout
        )
