"""The MCP lifecycle as a sans-io state machine: each state, each transition, each error."""

from __future__ import annotations

from typing import Any

import pytest

from trio_mcp._budget import ByteBudget
from trio_mcp._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    SERVER_BUSY,
    ErrorResponse,
    Notification,
    Request,
    Response,
)
from trio_mcp._protocol import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    CancelRequest,
    DeliverResponse,
    Dispatch,
    DispatchNotification,
    Ignore,
    Phase,
    ProtocolState,
    Reply,
    ReplyError,
    ServerIdentity,
    negotiate_version,
)

CAPABILITIES = {"tools": {"listChanged": True}}


def fresh() -> ProtocolState:
    return ProtocolState(ServerIdentity("s", "1", title="S"), lambda version: CAPABILITIES)


def initialize(version: str = LATEST_VERSION, request_id: int = 0) -> Request:
    return Request(
        request_id,
        "initialize",
        {"protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"n": 1}},
    )


def ready() -> ProtocolState:
    state = fresh()
    state.receive(initialize())
    state.receive(Notification("notifications/initialized"))
    return state


def error_code(action: Any) -> int:
    assert isinstance(action, ReplyError), action
    return action.error.code


# -- version negotiation --


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_a_supported_version_is_accepted_as_asked(version: str) -> None:
    assert negotiate_version(version) == version


@pytest.mark.parametrize("version", ["2024-10-07", "2099-01-01", "", "latest"])
def test_an_unknown_version_gets_the_latest(version: str) -> None:
    assert negotiate_version(version) == LATEST_VERSION


# -- awaiting initialize --


def test_a_new_session_awaits_initialize() -> None:
    assert fresh().phase is Phase.AWAITING_INITIALIZE


def test_ping_is_answered_with_an_empty_object_before_initialize() -> None:
    assert fresh().receive(Request(1, "ping")) == Reply(1, {})


def test_a_request_before_initialize_is_invalid_request() -> None:
    assert error_code(fresh().receive(Request(1, "tools/list"))) == INVALID_REQUEST


def test_a_notification_before_initialize_is_ignored() -> None:
    assert isinstance(fresh().receive(Notification("notifications/roots/list_changed")), Ignore)


def test_initialized_before_initialize_changes_nothing() -> None:
    state = fresh()
    assert isinstance(state.receive(Notification("notifications/initialized")), Ignore)
    assert state.phase is Phase.AWAITING_INITIALIZE


def test_initialize_replies_with_version_capabilities_and_identity() -> None:
    state = fresh()
    action = state.receive(initialize("2025-06-18"))
    assert action == Reply(
        0,
        {
            "protocolVersion": "2025-06-18",
            "capabilities": CAPABILITIES,
            "serverInfo": {"name": "s", "version": "1", "title": "S"},
        },
    )
    assert state.phase is Phase.INITIALIZED
    assert state.client_capabilities == {"sampling": {}}
    assert state.server_capabilities == CAPABILITIES


def test_the_title_is_left_out_for_revisions_without_it() -> None:
    action = fresh().receive(initialize("2025-03-26"))
    assert isinstance(action, Reply)
    assert "title" not in action.result["serverInfo"]


@pytest.mark.parametrize(
    "params",
    [
        None,
        {},
        {"protocolVersion": 20251125},
        {"protocolVersion": LATEST_VERSION, "capabilities": []},
        {"protocolVersion": LATEST_VERSION, "clientInfo": "me"},
    ],
)
def test_initialize_with_bad_params_is_invalid_params(params: Any) -> None:
    state = fresh()
    assert error_code(state.receive(Request(0, "initialize", params))) == INVALID_PARAMS
    assert state.phase is Phase.AWAITING_INITIALIZE


# -- initialized, ready --


def test_requests_are_served_between_initialize_and_initialized() -> None:
    state = fresh()
    state.receive(initialize())
    assert state.receive(Request(1, "tools/list")) == Dispatch(Request(1, "tools/list"))


def test_the_initialized_notification_makes_the_session_ready() -> None:
    assert ready().phase is Phase.READY


def test_a_second_initialize_is_invalid_request() -> None:
    assert error_code(ready().receive(initialize(request_id=5))) == INVALID_REQUEST


def test_a_request_is_dispatched_and_its_id_held_until_finished() -> None:
    state = ready()
    assert isinstance(state.receive(Request("a", "tools/call")), Dispatch)
    assert state.is_in_flight("a")
    assert error_code(state.receive(Request("a", "tools/list"))) == INVALID_REQUEST
    state.finish("a")
    assert isinstance(state.receive(Request("a", "tools/list")), Dispatch)


def test_a_ping_cannot_reuse_an_id_in_flight_either() -> None:
    state = ready()
    state.receive(Request(9, "tools/call"))
    assert error_code(state.receive(Request(9, "ping"))) == INVALID_REQUEST


def test_string_and_integer_ids_are_distinct() -> None:
    state = ready()
    state.receive(Request(1, "tools/call"))
    assert isinstance(state.receive(Request("1", "tools/call")), Dispatch)


def test_other_notifications_go_to_the_server() -> None:
    notification = Notification("notifications/roots/list_changed")
    assert ready().receive(notification) == DispatchNotification(notification)


# -- cancellation --


def test_cancelling_a_request_in_flight_cancels_its_handler() -> None:
    state = ready()
    state.receive(Request(4, "tools/call"))
    action = state.receive(
        Notification("notifications/cancelled", {"requestId": 4, "reason": "enough"})
    )
    assert action == CancelRequest(4, "enough")


@pytest.mark.parametrize("request_id", [5, "4", None, [4], {"id": 4}, 4.0])
def test_cancelling_anything_else_is_ignored(request_id: Any) -> None:
    state = ready()
    state.receive(Request(4, "tools/call"))
    action = state.receive(Notification("notifications/cancelled", {"requestId": request_id}))
    assert isinstance(action, Ignore)


def test_a_cancellation_without_params_is_ignored() -> None:
    assert isinstance(ready().receive(Notification("notifications/cancelled")), Ignore)


# -- replies to our requests --


def test_a_clients_result_goes_to_the_request_that_waits() -> None:
    response = Response(7, {"roots": []})
    assert ready().receive(response) == DeliverResponse(7, response)


def test_a_clients_error_goes_to_the_request_that_waits() -> None:
    response = ErrorResponse(7, {"code": -1, "message": "no"})
    assert ready().receive(response) == DeliverResponse(7, response)


def test_an_error_without_an_id_cannot_be_routed() -> None:
    assert isinstance(ready().receive(ErrorResponse(None, {"code": -1, "message": "no"})), Ignore)


# -- batches --


def test_batches_are_refused_on_revisions_without_them() -> None:
    state = ready()
    assert state.refuse_batch([Request(1, "ping")]) is not None


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
def test_batches_are_accepted_on_revisions_with_them(version: str) -> None:
    state = fresh()
    state.receive(initialize(version))
    assert state.refuse_batch([Request(1, "ping"), Notification("n")]) is None


def test_initialize_is_never_part_of_a_batch() -> None:
    assert fresh().refuse_batch([initialize(), Notification("notifications/initialized")])


def test_past_the_in_flight_limit_a_request_is_refused_at_once() -> None:
    state = ProtocolState(ServerIdentity("s", "1"), lambda version: {}, max_in_flight=2)
    state.receive(initialize())
    assert isinstance(state.receive(Request(1, "tools/call")), Dispatch)
    assert isinstance(state.receive(Request(2, "tools/call")), Dispatch)
    assert error_code(state.receive(Request(3, "tools/call"))) == SERVER_BUSY
    assert not state.is_in_flight(3)
    state.finish(1)
    assert isinstance(state.receive(Request(3, "tools/call")), Dispatch)


def test_while_the_byte_budget_is_spent_a_request_is_refused_and_a_ping_answered() -> None:
    budget = ByteBudget(100)
    state = ProtocolState(ServerIdentity("s", "1"), lambda version: {}, budget=budget)
    state.receive(initialize())
    budget.take(99)
    assert isinstance(state.receive(Request(1, "tools/call")), Dispatch)  # under: admitted
    budget.take(1)
    refused = state.receive(Request(2, "tools/call"))
    assert error_code(refused) == SERVER_BUSY
    assert "max_session_bytes" in refused.error.message  # type: ignore[union-attr]
    assert isinstance(state.receive(Request(3, "ping")), Reply)
    budget.give(1)
    assert isinstance(state.receive(Request(2, "tools/call")), Dispatch)
