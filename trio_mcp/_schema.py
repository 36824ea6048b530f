"""JSON Schema from Python type hints.

A tool's ``inputSchema`` and ``outputSchema`` are derived from its signature, so what
a client is promised is exactly what :mod:`trio_mcp._converter` will accept. The two
modules walk the same set of types; a type one of them does not know is refused when
the tool is registered, not when it is called.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Literal, Union

import attrs

Schema = dict[str, Any]

_PRIMITIVES: dict[Any, Schema] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
}


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return None


def _enum_schema(values: list[Any]) -> Schema:
    schema: Schema = {"enum": values}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema = {"type": kinds.pop(), **schema}
    return schema


def is_optional(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def schema_for(hint: Any, _seen: frozenset[type] = frozenset()) -> Schema:
    """The JSON Schema of values of ``hint``. Raises TypeError for unsupported hints."""
    if hint in _PRIMITIVES:
        return dict(_PRIMITIVES[hint])
    if hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema = schema_for(args[0], _seen)
        for extra in args[1:]:
            if isinstance(extra, str):
                schema["description"] = extra
        return schema
    if origin is Literal:
        return _enum_schema(list(args))
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_for(arg, _seen) for arg in args]}
    if origin is list or hint is list:
        schema = {"type": "array"}
        if args:
            schema["items"] = schema_for(args[0], _seen)
        return schema
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": schema_for(args[0], _seen)}
    if origin is dict or hint is dict:
        schema = {"type": "object"}
        if args:
            if args[0] is not str:
                raise TypeError(f"JSON object keys are strings; {hint!r} has {args[0]!r} keys")
            schema["additionalProperties"] = schema_for(args[1], _seen)
        return schema
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([member.value for member in hint])
    if isinstance(hint, type) and attrs.has(hint):
        if hint in _seen:
            raise TypeError(f"recursive attrs class {hint.__qualname__} has no finite schema")
        return _attrs_schema(hint, _seen | {hint})
    raise TypeError(
        f"no JSON Schema for {hint!r}: use int, float, str, bool, None, list, dict, "
        "Literal, Enum, Optional/Union, Annotated or an attrs class"
    )


def _attrs_schema(cls: type, seen: frozenset[type]) -> Schema:
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: Schema = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        prop = schema_for(hints.get(field.name, Any), seen)
        if field.default is attrs.NOTHING:
            required.append(field.name)
        elif not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            _set_default(prop, field.default)
        properties[field.name] = prop
    # The converter refuses fields the class does not have.
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    doc = _own_doc(cls)
    if doc:
        schema["description"] = doc
    return schema


def _own_doc(cls: type) -> str | None:
    # attrs classes inherit object's docstring otherwise; only the class's own counts.
    doc = cls.__dict__.get("__doc__")
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def _set_default(schema: Schema, default: Any) -> None:
    """Record a default when it is plain JSON; anything else is left out of the schema."""
    if isinstance(default, enum.Enum):
        default = default.value
    if _is_json(default):
        schema["default"] = default


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def object_schema(parameters: list[tuple[str, Any, Any]], descriptions: dict[str, str]) -> Schema:
    """An ``inputSchema`` from (name, hint, default) triples; default is ``attrs.NOTHING``
    when the parameter is required."""
    properties: Schema = {}
    required: list[str] = []
    for name, hint, default in parameters:
        prop = schema_for(hint)
        if name in descriptions and "description" not in prop:
            prop["description"] = descriptions[name]
        if default is attrs.NOTHING:
            required.append(name)
        else:
            _set_default(prop, default)
        properties[name] = prop
    # Arguments the tool does not take are refused; the schema says so up front.
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument descriptions."""
    if not doc:
        return None, {}
    lines = [line.rstrip() for line in _dedent(doc).splitlines()]
    summary: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args, current = True, None
            continue
        if in_args:
            if stripped.endswith(":") and not line.startswith(" "):
                in_args = False  # another section (Returns:, Raises:) begins
                continue
            if not stripped:
                continue
            indent = len(line) - len(line.lstrip())
            name, sep, text = stripped.partition(":")
            if sep and indent <= 4 and " " not in name.split("(")[0].strip():
                current = name.split("(")[0].strip()
                args[current] = text.strip()
            elif current:
                args[current] = f"{args[current]} {stripped}".strip()
            continue
        if not in_args and not (stripped.endswith(":") and stripped[:-1].isalpha()):
            summary.append(stripped)
    text = "\n".join(summary).strip()
    return (text or None), args


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)
