"""JSON-RPC 2.0 envelopes, sans-io.

Bytes in, typed messages out; typed messages in, JSON-ready dicts out. Nothing here
does I/O or knows about MCP, so every error path is a plain unit test.

A body is parsed in two steps because the two kinds of failure are answered
differently by the transports: bytes that are not JSON at all (:class:`ParseError`,
-32700) reject the whole POST, while a well-formed JSON value that is not a valid
JSON-RPC message becomes an :class:`InvalidMessage` carrying the -32600 error to send.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

import attrs

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
#: In JSON-RPC's range for server errors, the one code for "overloaded, retry later":
#: every refusal that waiting may cure carries it (a session's requests in flight or bytes
#: held, a stream its client leaves unread, the server's session cap, a shutdown), each
#: with a message naming the limit that was hit. A 503 response's body carries it too.
SERVER_BUSY: Final = -32000

RequestId = str | int
JSON = dict[str, Any]


class JSONRPCError(Exception):
    """An error to send back as a JSON-RPC error object.

    Raise it from any request handler: the session turns it into the error response for
    the request being handled. ``data`` must be JSON-serializable and must never carry a
    traceback (the client is not the place to debug the server).
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> JSON:
        error: JSON = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(Exception):
    """The body is not JSON. Answered as a whole (HTTP 400 with a -32700 error)."""


@attrs.frozen
class Request:
    id: RequestId
    method: str
    params: JSON | None = None


@attrs.frozen
class Notification:
    method: str
    params: JSON | None = None


@attrs.frozen
class Response:
    """A client's successful reply to a server-to-client request."""

    id: RequestId
    result: JSON


@attrs.frozen
class ErrorResponse:
    """A client's error reply to a server-to-client request."""

    id: RequestId | None
    error: JSON


@attrs.frozen
class InvalidMessage:
    """A JSON value that is not a JSON-RPC message; ``id`` is echoed when one was readable."""

    id: RequestId | None
    error: JSONRPCError


Message = Request | Notification | Response | ErrorResponse


@attrs.frozen
class Body:
    """One parsed POST body: a single message or a batch of them."""

    items: list[Message | InvalidMessage]
    is_batch: bool
    #: The body's length in bytes: what its requests are charged while they run.
    size: int = 0

    @property
    def messages(self) -> list[Message]:
        """The valid items: all of them once the transport has refused invalid bodies."""
        return [item for item in self.items if not isinstance(item, InvalidMessage)]


def parse_body(data: bytes) -> Body:
    """Parse a POST body. Raises :class:`ParseError` for anything that is not JSON."""
    try:
        # UTF-8, as JSON between systems must be (RFC 8259, 8.1; a leading byte order
        # mark is ignored, as it allows: the "utf-8-sig" codec would, ten times slower);
        # one decoder for every body: json.loads with an option builds a new one a call.
        text = data.decode("utf-8")
        value = _DECODER.decode(text[1:] if text.startswith("\ufeff") else text)
    except (json.JSONDecodeError, UnicodeDecodeError, _NotJSON) as exc:
        raise ParseError(f"the body is not valid JSON: {exc}") from None
    except ValueError:
        # The one other failure of the parser: an integer longer than Python converts
        # (sys.get_int_max_str_digits()), whose message names that interpreter setting.
        raise ParseError(
            f"the body holds an integer of more than {sys.get_int_max_str_digits()} digits, "
            "longer than this server reads"
        ) from None
    except RecursionError:
        # Python's parser recurses per level: a body of 100 KB of "[" must not cost more
        # than a refusal.
        raise ParseError("the body nests deeper than this server reads") from None

    if isinstance(value, list):
        if not value:
            return Body(
                [InvalidMessage(None, _invalid("an empty batch is not a message"))], True, len(data)
            )
        return Body([parse_message(item) for item in value], True, len(data))
    return Body([parse_message(value)], False, len(data))


class _NotJSON(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have.
    raise _NotJSON(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _invalid(why: str) -> JSONRPCError:
    return JSONRPCError(INVALID_REQUEST, f"Invalid Request: {why}")


def valid_id(value: Any) -> bool:
    # bool is an int subclass, but true/false are not JSON-RPC ids.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(value: Any) -> Message | InvalidMessage:
    """Classify one decoded JSON value as a JSON-RPC message, strictly."""
    if not isinstance(value, dict):
        return InvalidMessage(None, _invalid("a message must be a JSON object"))
    raw_id = value.get("id")
    echo_id = raw_id if valid_id(raw_id) else None
    if value.get("jsonrpc") != "2.0":
        return InvalidMessage(echo_id, _invalid('"jsonrpc" must be exactly "2.0"'))
    if "id" in value and not valid_id(raw_id):
        if raw_id is None and "error" in value:
            pass  # an error reply to a request the peer could not read carries id null
        else:
            return InvalidMessage(None, _invalid('"id" must be a string or an integer'))

    if "method" in value:
        method = value["method"]
        if not isinstance(method, str) or not method:
            return InvalidMessage(echo_id, _invalid('"method" must be a non-empty string'))
        if "result" in value or "error" in value:
            return InvalidMessage(echo_id, _invalid("a request cannot carry a result or error"))
        params = value.get("params")
        if isinstance(params, list):
            # A valid JSON-RPC request (positional params), but MCP names every
            # parameter: the params are wrong, not the request.
            error = JSONRPCError(INVALID_PARAMS, 'Invalid params: MCP "params" are an object')
            return InvalidMessage(echo_id, error)
        if params is not None and not isinstance(params, dict):
            return InvalidMessage(echo_id, _invalid('"params" must be an object'))
        if echo_id is not None:
            return Request(echo_id, method, params)
        return Notification(method, params)

    if "result" in value and "error" in value:
        return InvalidMessage(echo_id, _invalid("a response has a result or an error, not both"))
    if "result" in value:
        if echo_id is None:
            return InvalidMessage(None, _invalid("a result must carry the request's id"))
        result = value["result"]
        if not isinstance(result, dict):
            return InvalidMessage(echo_id, _invalid('"result" must be an object'))
        return Response(echo_id, result)
    if "error" in value:
        error = value["error"]
        if not (
            isinstance(error, dict)
            and isinstance(error.get("code"), int)
            and isinstance(error.get("message"), str)
        ):
            return InvalidMessage(echo_id, _invalid('"error" needs an integer code and a message'))
        return ErrorResponse(echo_id, error)
    return InvalidMessage(echo_id, _invalid('no "method", "result" or "error"'))


def result_message(request_id: RequestId, result: JSON) -> JSON:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: RequestId | None, error: JSONRPCError) -> JSON:
    """An error response; without an id when the request's could not be read (MCP
    2025-11-25 leaves it out rather than sending null, which no revision's schema allows)."""
    message: JSON = {"jsonrpc": "2.0"}
    if request_id is not None:
        message["id"] = request_id
    message["error"] = error.to_json()
    return message


def request_message(request_id: RequestId, method: str, params: JSON | None) -> JSON:
    message: JSON = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification_message(method: str, params: JSON | None) -> JSON:
    message: JSON = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def dumps(message: JSON | list[JSON]) -> str:
    """Compact JSON, the one encoding used on every wire.

    ASCII-only, so that a lone surrogate in a string (valid in Python and in a JSON
    escape, invalid in UTF-8) travels as an escape instead of failing to encode; and no
    NaN or Infinity, which JSON does not have (ValueError instead).
    """
    return _ENCODER.encode(message)


# One encoder for every message: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
