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


def result_definition(version: str, method: str) -> str:
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
        validate(version, result_definition(version, request_method), message["result"])


def _is_member(version: str, union: str, definition: str) -> bool:
    _, definitions = _definitions(version)
    refs = definitions.get(union, {}).get("anyOf", [])
    return any(ref.get("$ref", "").endswith("/" + definition) for ref in refs)
