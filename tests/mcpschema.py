"""Validate what the server sends against the official MCP schema of a revision."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def _schema(version: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / version / "schema.json").read_text())


def _definitions(version: str) -> tuple[str, dict[str, Any]]:
    schema = _schema(version)
    if "$defs" in schema:
        return "#/$defs/", schema["$defs"]
    return "#/definitions/", schema["definitions"]


@functools.cache
def _validator(version: str, name: str) -> Any:
    prefix, definitions = _definitions(version)
    if name not in definitions:
        raise KeyError(f"{version} schema has no definition {name}")
    schema = dict(_schema(version))
    schema["$ref"] = prefix + name
    cls = validator_for(schema)
    return cls(schema)


@functools.cache
def _by_method(version: str) -> dict[str, str]:
    """method name -> the definition of the request or notification carrying it."""
    _, definitions = _definitions(version)
    found = {}
    for name, definition in definitions.items():
        method = definition.get("properties", {}).get("method", {}).get("const")
        if method and (name.endswith("Request") or name.endswith("Notification")):
            found.setdefault(method, name)
    return found


def result_definition(version: str, method: str, result: Any = None) -> str:
    """The definition a result of ``method`` must match. From 2026-07-28 a result says
    its own kind: ``resultType: "input_required"`` is an InputRequiredResult whatever
    the method."""
    if isinstance(result, dict) and result.get("resultType") == "input_required":
        return "InputRequiredResult"
    request = _by_method(version)[method]
    candidate = request.removesuffix("Request") + "Result"
    _, definitions = _definitions(version)
    return candidate if candidate in definitions else "EmptyResult"


def validate(version: str, name: str, instance: Any) -> None:
    _validator(version, name).validate(instance)


def validate_server_message(
    version: str, message: dict[str, Any], request_method: str | None
) -> None:
    """Check one message the server sent. ``request_method`` names the client request a
    response answers (None for server-initiated messages)."""
    validate(version, "JSONRPCMessage", message)
    if "method" in message:
        definition = _by_method(version).get(message["method"])
        if definition is None:
            raise jsonschema.ValidationError(f"{message['method']} is not in the {version} schema")
        validate(version, definition, message)
        server_side = ("ServerRequest", "ServerNotification")
        if not any(_is_member(version, union, definition) for union in server_side):
            raise jsonschema.ValidationError(f"{definition} is not something a server sends")
    elif "result" in message:
        assert request_method is not None, "a result must answer a known request"
        result = message["result"]
        validate(version, result_definition(version, request_method, result), result)
    elif "error" in message:
        validate_error(version, message)


#: JSON-RPC error code -> the definition an error with it must match, when the revision
#: defines one: a whole response (the 2026-07-28 errors) or the error object alone.
_ERRORS = {
    -32020: "HeaderMismatchError",
    -32021: "MissingRequiredClientCapabilityError",
    -32022: "UnsupportedProtocolVersionError",
    -32600: "InvalidRequestError",
    -32601: "MethodNotFoundError",
    -32602: "InvalidParamsError",
    -32603: "InternalError",
}


def validate_error(version: str, message: dict[str, Any]) -> None:
    """Check an error response against its code's own definition, where the revision
    has one (else only the generic JSONRPCMessage check applies)."""
    name = _ERRORS.get(message["error"].get("code"))
    _, definitions = _definitions(version)
    if name is None or name not in definitions:
        return
    whole_response = "error" in definitions[name].get("properties", {})
    validate(version, name, message if whole_response else message["error"])


def _is_member(version: str, union: str, definition: str) -> bool:
    _, definitions = _definitions(version)
    refs = definitions.get(union, {}).get("anyOf", [])
    return any(ref.get("$ref", "").endswith("/" + definition) for ref in refs)
