"""The MCP lifecycle as a sans-io state machine.

One :class:`ProtocolState` per session. It is fed each inbound message and answers
with what the session should do about it: reply now, run a handler, cancel a handler,
deliver a reply to a waiting server-to-client request, or nothing. It owns everything
about a session that is pure bookkeeping (phase, negotiated version, client
capabilities, request ids in flight) and nothing that awaits.

Phases follow the spec's lifecycle: a session starts ``AWAITING_INITIALIZE``; the
``initialize`` request moves it to ``INITIALIZED`` (the reply is sent); the client's
``notifications/initialized`` moves it to ``READY``. Requests other than ``ping`` are
refused before ``initialize``; after it they are served even if the client's
``initialized`` notification is still in flight, because over HTTP the two may arrive
in either order.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from ._budget import ByteBudget
from ._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSON,
    SERVER_BUSY,
    ErrorResponse,
    JSONRPCError,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    valid_id,
)

#: Revisions this server negotiates through ``initialize``, oldest first.
SUPPORTED_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION: Final = SUPPORTED_VERSIONS[-1]
#: JSON-RPC batches were removed from MCP in 2025-06-18.
BATCHING_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26"})


def negotiate_version(requested: str) -> str:
    """The client's revision when we speak it, else our latest (the client may then leave)."""
    return requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION


def version_at_least(version: str, minimum: str) -> bool:
    # Revisions are ISO dates, so string order is time order.
    return version >= minimum


class Phase(enum.Enum):
    AWAITING_INITIALIZE = "awaiting initialize"
    INITIALIZED = "initialized"
    READY = "ready"


@attrs.frozen
class ServerIdentity:
    """What ``initialize`` tells the client about the server."""

    name: str
    version: str
    title: str | None = None
    instructions: str | None = None


# -- what the session should do ---------------------------------------------------------


@attrs.frozen
class Reply:
    """Send this result now; no handler needs to run."""

    request_id: RequestId
    result: JSON


@attrs.frozen
class ReplyError:
    """Send this error now."""

    request_id: RequestId
    error: JSONRPCError


@attrs.frozen
class Dispatch:
    """Run the handler for this request; call :meth:`ProtocolState.finish` when it is done."""

    request: Request


@attrs.frozen
class DispatchNotification:
    """Hand this client notification to the server (e.g. ``roots/list_changed``)."""

    notification: Notification


@attrs.frozen
class CancelRequest:
    """The client cancelled this in-flight request: cancel its handler, send nothing."""

    request_id: RequestId
    reason: str | None


@attrs.frozen
class DeliverResponse:
    """A reply to a server-to-client request: hand it to whoever waits on ``request_id``."""

    request_id: RequestId
    response: Response | ErrorResponse


@attrs.frozen
class Ignore:
    """Nothing to do (a notification with no effect, a stray reply)."""

    why: str


Action = (
    Reply | ReplyError | Dispatch | DispatchNotification | CancelRequest | DeliverResponse | Ignore
)


class ProtocolState:
    """The lifecycle and bookkeeping of one MCP session, free of I/O.

    ``capabilities`` is called when ``initialize`` arrives, so that a server whose
    registry changes before a client connects still declares the right capabilities.
    """

    # One per session, for the session's whole life: no instance dict.
    __slots__ = (
        "_budget",
        "_capabilities",
        "_identity",
        "_in_flight",
        "_max_in_flight",
        "client_capabilities",
        "client_info",
        "closing",
        "phase",
        "protocol_version",
        "server_capabilities",
    )

    def __init__(
        self,
        identity: ServerIdentity,
        capabilities: Any,
        *,
        max_in_flight: int = 1000,
        budget: ByteBudget | None = None,
    ) -> None:
        self._max_in_flight = max_in_flight
        #: What the session holds in bytes; a request is refused while it is spent.
        self._budget = budget
        #: Set when the server shuts down: why new requests are refused.
        self.closing: str | None = None
        self._identity = identity
        self._capabilities = capabilities
        self.phase = Phase.AWAITING_INITIALIZE
        self.protocol_version: str | None = None
        self.client_capabilities: JSON = {}
        self.client_info: JSON = {}
        #: What ``initialize`` declared; notifications of undeclared kinds are not sent.
        self.server_capabilities: JSON = {}
        self._in_flight: set[RequestId] = set()

    @property
    def batches_allowed(self) -> bool:
        """Batches are accepted before negotiation and on revisions that had them."""
        return self.protocol_version is None or self.protocol_version in BATCHING_VERSIONS

    def refuse_batch(self, items: list[Message]) -> str | None:
        """Why a batch of these messages cannot be accepted, or None if it can."""
        if not self.batches_allowed:
            return f"JSON-RPC batches are not part of MCP {self.protocol_version}"
        if any(isinstance(item, Request) and item.method == "initialize" for item in items):
            return "'initialize' must be sent alone, not in a batch"
        return None

    def receive(self, message: Message) -> Action:
        if isinstance(message, Request):
            return self._receive_request(message)
        if isinstance(message, Notification):
            return self._receive_notification(message)
        if message.id is None:
            return Ignore("an error reply without an id cannot be routed")
        return DeliverResponse(message.id, message)

    def finish(self, request_id: RequestId) -> None:
        """A dispatched request has been answered (or cancelled); its id may be reused."""
        self._in_flight.discard(request_id)

    def in_flight(self) -> int:
        return len(self._in_flight)

    def is_in_flight(self, request_id: RequestId) -> bool:
        return request_id in self._in_flight

    def _receive_request(self, request: Request) -> Action:
        if request.id in self._in_flight:
            return ReplyError(
                request.id,
                JSONRPCError(
                    INVALID_REQUEST, f"request id {request.id!r} is already in use in this session"
                ),
            )
        if request.method == "ping":
            return Reply(request.id, {})
        if request.method == "initialize":
            return self._initialize(request)
        if self.phase is Phase.AWAITING_INITIALIZE:
            return ReplyError(
                request.id,
                JSONRPCError(
                    INVALID_REQUEST,
                    f"the session is not initialized: send 'initialize' before {request.method!r}",
                ),
            )
        if self.closing is not None:
            return ReplyError(request.id, JSONRPCError(SERVER_BUSY, self.closing))
        if len(self._in_flight) >= self._max_in_flight:
            return ReplyError(
                request.id,
                JSONRPCError(
                    SERVER_BUSY,
                    f"the session has {self._max_in_flight} requests in flight, as many as "
                    "max_requests_in_flight allows: wait for some to finish",
                ),
            )
        budget = self._budget
        if budget is not None and budget.spent:
            return ReplyError(
                request.id,
                JSONRPCError(
                    SERVER_BUSY,
                    f"the session holds {budget.held} bytes of requests running and of "
                    f"messages its client has not read, as many as max_session_bytes "
                    f"({budget.limit}) allows: read its stream, or wait for requests to finish",
                ),
            )
        self._in_flight.add(request.id)
        return Dispatch(request)

    def _initialize(self, request: Request) -> Action:
        if self.phase is not Phase.AWAITING_INITIALIZE:
            return ReplyError(
                request.id, JSONRPCError(INVALID_REQUEST, "the session is already initialized")
            )
        params = request.params or {}
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            return ReplyError(
                request.id,
                JSONRPCError(INVALID_PARAMS, "initialize needs a string 'protocolVersion'"),
            )
        capabilities = params.get("capabilities", {})
        client_info = params.get("clientInfo", {})
        if not isinstance(capabilities, dict) or not isinstance(client_info, dict):
            return ReplyError(
                request.id,
                JSONRPCError(INVALID_PARAMS, "'capabilities' and 'clientInfo' must be objects"),
            )
        version = negotiate_version(requested)
        self.protocol_version = version
        self.client_capabilities = capabilities
        self.client_info = client_info
        self.phase = Phase.INITIALIZED
        return Reply(request.id, self._initialize_result(version))

    def _initialize_result(self, version: str) -> JSON:
        info: JSON = {"name": self._identity.name, "version": self._identity.version}
        if self._identity.title and version_at_least(version, "2025-06-18"):
            info["title"] = self._identity.title
        self.server_capabilities = self._capabilities(version)
        result: JSON = {
            "protocolVersion": version,
            "capabilities": self.server_capabilities,
            "serverInfo": info,
        }
        if self._identity.instructions:
            result["instructions"] = self._identity.instructions
        return result

    def _receive_notification(self, notification: Notification) -> Action:
        method = notification.method
        if method == "notifications/initialized":
            if self.phase is Phase.AWAITING_INITIALIZE:
                return Ignore("'initialized' before 'initialize'")
            self.phase = Phase.READY
            return Ignore("the session is ready")
        if method == "notifications/cancelled":
            params = notification.params or {}
            request_id = params.get("requestId")
            if not valid_id(request_id) or request_id not in self._in_flight:
                # Unknown or already finished: the spec says to ignore it.
                return Ignore(f"no request {request_id!r} in flight to cancel")
            reason = params.get("reason")
            return CancelRequest(request_id, reason if isinstance(reason, str) else None)
        if self.phase is Phase.AWAITING_INITIALIZE:
            return Ignore(f"{method!r} before 'initialize'")
        return DispatchNotification(notification)
