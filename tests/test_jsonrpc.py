"""JSON-RPC 2.0 envelopes, sans-io: every way a body can be refused, and the encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_mcp._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    ErrorResponse,
    InvalidMessage,
    JSONRPCError,
    Notification,
    ParseError,
    Request,
    Response,
    dumps,
    error_message,
    parse_body,
    parse_message,
)


def invalid(value: Any) -> InvalidMessage:
    parsed = parse_message(value)
    assert isinstance(parsed, InvalidMessage), parsed
    assert parsed.error.code == INVALID_REQUEST
    return parsed


# -- bodies --


@pytest.mark.parametrize("body", [b"{nope", b"", b"\xff\xfe", b'{"a": NaN}', b"[Infinity]"])
def test_bytes_that_are_not_json_are_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_body(body)


def test_json_nested_past_the_parsers_depth_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nests deeper"):
        parse_body(b"[" * 100_000 + b"]" * 100_000)


def test_a_body_is_utf_8_and_a_leading_byte_order_mark_is_ignored() -> None:
    ping = '{"jsonrpc": "2.0", "method": "ping", "id": "\u00e9"}'
    assert parse_body(ping.encode()).items == [Request("\u00e9", "ping")]
    assert parse_body(b"\xef\xbb\xbf" + ping.encode()).items == [Request("\u00e9", "ping")]
    with pytest.raises(ParseError, match="utf-8"):
        parse_body(ping.encode("utf-16"))


def test_a_single_message_is_not_a_batch() -> None:
    body = parse_body(b'{"jsonrpc": "2.0", "method": "ping", "id": 1}')
    assert not body.is_batch
    assert body.items == [Request(1, "ping")]


def test_an_array_is_a_batch_of_its_messages() -> None:
    body = parse_body(
        b'[{"jsonrpc": "2.0", "method": "a", "id": 1}, {"jsonrpc": "2.0", "method": "b"}]'
    )
    assert body.is_batch
    assert body.items == [Request(1, "a"), Notification("b")]


def test_an_empty_batch_is_invalid() -> None:
    body = parse_body(b"[]")
    [item] = body.items
    assert isinstance(item, InvalidMessage) and item.error.code == INVALID_REQUEST


def test_an_invalid_item_leaves_the_valid_ones_readable() -> None:
    body = parse_body(b'[{"jsonrpc": "2.0", "method": "a", "id": 1}, 7]')
    assert isinstance(body.items[1], InvalidMessage)
    assert body.messages == [Request(1, "a")]


# -- messages --


@pytest.mark.parametrize("value", [7, "x", None, [], True])
def test_a_message_must_be_an_object(value: Any) -> None:
    invalid(value)


@pytest.mark.parametrize("version", [None, "1.0", 2.0, "2.0 "])
def test_jsonrpc_must_be_exactly_2_0(version: Any) -> None:
    message = {"method": "ping", "id": 1}
    if version is not None:
        message["jsonrpc"] = version
    assert invalid(message).id == 1  # the id is echoed when it is readable


@pytest.mark.parametrize("request_id", [None, 1.0, 1.5, True, False, [], {}])
def test_a_request_id_is_a_string_or_an_integer(request_id: Any) -> None:
    assert invalid({"jsonrpc": "2.0", "method": "ping", "id": request_id}).id is None


@pytest.mark.parametrize("request_id", [0, -1, 2**53, "", "abc"])
def test_string_and_integer_ids_are_kept_as_they_are(request_id: Any) -> None:
    assert parse_message({"jsonrpc": "2.0", "method": "ping", "id": request_id}) == Request(
        request_id, "ping"
    )


@pytest.mark.parametrize("method", ["", 7, None, ["ping"]])
def test_a_method_is_a_non_empty_string(method: Any) -> None:
    invalid({"jsonrpc": "2.0", "method": method, "id": 1})


@pytest.mark.parametrize("params", ["x", 3, True])
def test_params_must_be_an_object(params: Any) -> None:
    invalid({"jsonrpc": "2.0", "method": "m", "id": 1, "params": params})


def test_positional_params_are_invalid_params_not_an_invalid_request() -> None:
    item = parse_message({"jsonrpc": "2.0", "method": "m", "id": 1, "params": [1, 2]})
    assert isinstance(item, InvalidMessage)
    assert (item.id, item.error.code) == (1, INVALID_PARAMS)


def test_null_params_are_no_params() -> None:
    assert parse_message({"jsonrpc": "2.0", "method": "m", "params": None}) == Notification("m")


def test_a_request_cannot_carry_a_result() -> None:
    invalid({"jsonrpc": "2.0", "method": "m", "id": 1, "result": {}})


def test_a_message_without_an_id_is_a_notification() -> None:
    assert parse_message({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}}) == Notification(
        "m", {"a": 1}
    )


def test_a_result_is_a_response_to_our_request() -> None:
    assert parse_message({"jsonrpc": "2.0", "id": 3, "result": {"x": 1}}) == Response(3, {"x": 1})


def test_a_result_must_be_an_object() -> None:
    invalid({"jsonrpc": "2.0", "id": 3, "result": [1]})


def test_a_result_needs_an_id() -> None:
    invalid({"jsonrpc": "2.0", "result": {}})


def test_a_response_has_a_result_or_an_error_not_both() -> None:
    invalid({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": "m"}})


def test_an_error_reply_may_carry_a_null_id() -> None:
    error = {"code": -32600, "message": "bad"}
    assert parse_message({"jsonrpc": "2.0", "id": None, "error": error}) == ErrorResponse(
        None, error
    )


@pytest.mark.parametrize(
    "error", [{"code": "1", "message": "m"}, {"code": 1}, {"message": "m"}, "oops"]
)
def test_an_error_needs_an_integer_code_and_a_message(error: Any) -> None:
    invalid({"jsonrpc": "2.0", "id": 1, "error": error})


def test_a_message_with_neither_method_result_nor_error_is_invalid() -> None:
    assert invalid({"jsonrpc": "2.0", "id": 1}).id == 1


# -- encoding --


def test_an_error_whose_request_could_not_be_read_has_no_id() -> None:
    assert error_message(None, JSONRPCError(INVALID_REQUEST, "bad")) == {
        "jsonrpc": "2.0",
        "error": {"code": INVALID_REQUEST, "message": "bad"},
    }


def test_error_data_is_sent_only_when_there_is_some() -> None:
    assert "data" not in JSONRPCError(1, "m").to_json()
    assert JSONRPCError(1, "m", {"uri": "x"}).to_json()["data"] == {"uri": "x"}


def test_encoding_is_compact_ascii_json_that_round_trips() -> None:
    message = {"text": "héllo ☃ \ud800", "n": [1, 2.5]}
    encoded = dumps(message)
    assert encoded.isascii()
    assert encoded.startswith('{"text":') and ',"n":[1,2.5]}' in encoded
    assert json.loads(encoded) == message
    encoded.encode("utf-8")  # a lone surrogate travels as an escape


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_rather_than_sent(number: float) -> None:
    with pytest.raises(ValueError):
        dumps({"x": number})


def test_an_integer_too_long_to_read_is_a_parse_error_in_plain_words() -> None:
    with pytest.raises(ParseError) as refused:
        parse_body(
            b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"a": ' + b"9" * 5000 + b"}}"
        )
    assert "more than 4300 digits" in str(refused.value)
    assert "sys." not in str(refused.value)  # no interpreter setting to tune, for a client
