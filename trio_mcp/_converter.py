"""One strict cattrs converter for tool arguments.

cattrs' default hooks coerce: ``"1"`` becomes ``1``, ``"no"`` becomes ``True``, a string
becomes a list of characters. A tool must get exactly what its schema promised, so every
hook here checks the JSON type first and refuses anything else with a message that says
what was expected and what arrived. Refusals surface as :class:`ArgumentError`.
"""

from __future__ import annotations

import enum
import math
import sys
import types
import typing
from typing import Any, Literal, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError


class ArgumentError(ValueError):
    """An argument does not match its type; the message names the argument and why."""


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return kind if isinstance(value, list | dict) or value is None else f"{kind} {shown}"


class _Mismatch(TypeError):
    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {_describe(value)}")


def _int(value: Any, _: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch("an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema counts 2.0 as an integer
    raise _Mismatch("an integer", value)


def _float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # JSON has no infinity, but Python reads 1e400 as one, and a float cannot hold an
        # integer of 400 digits: either is a number out of range, not a crash in the tool.
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        raise TypeError(f"expected a number within ±{sys.float_info.max:.4g}, got one beyond it")
    raise _Mismatch("a number", value)


def _str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch("a string", value)


def _bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Mismatch("a boolean", value)


def _none(value: Any, _: Any) -> None:
    if value is None:
        return None
    raise _Mismatch("null", value)


def _same_json_value(a: Any, b: Any) -> bool:
    # 1 == True and 1 == 1.0 in Python; in JSON they are different values.
    return type(a) is type(b) and a == b


def _build(converter: cattrs.Converter) -> None:
    converter.register_structure_hook(int, _int)
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(type(None), _none)
    converter.register_structure_hook(Any, lambda value, _: value)

    def is_literal(hint: Any) -> bool:
        return typing.get_origin(hint) is Literal

    def literal(value: Any, hint: Any) -> Any:
        choices = typing.get_args(hint)
        for choice in choices:
            if _same_json_value(value, choice):
                return choice
        raise _Mismatch(f"one of {list(choices)!r}", value)

    converter.register_structure_hook_func(is_literal, literal)

    def is_enum(hint: Any) -> bool:
        return isinstance(hint, type) and issubclass(hint, enum.Enum)

    def enum_member(value: Any, hint: Any) -> Any:
        for member in hint:
            if _same_json_value(value, member.value):
                return member
        raise _Mismatch(f"one of {[m.value for m in hint]!r}", value)

    converter.register_structure_hook_func(is_enum, enum_member)

    def is_union(hint: Any) -> bool:
        return typing.get_origin(hint) in (Union, types.UnionType)

    def union(value: Any, hint: Any) -> Any:
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        failures = []
        for member in members:
            if member is type(None):
                continue
            try:
                return converter.structure(value, member)
            except Exception as exc:
                failures.append(str(exc))
        names = " or ".join(_type_name(m) for m in members)
        raise TypeError(f"expected {names}, got {_describe(value)}")

    converter.register_structure_hook_func(is_union, union)

    def is_list(hint: Any) -> bool:
        return hint is list or typing.get_origin(hint) in (list, tuple)

    def strict_list(value: Any, hint: Any) -> Any:
        if not isinstance(value, list):
            raise _Mismatch("an array", value)
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_at(f"[{i}]", converter.structure, v, item) for i, v in enumerate(value)]
        return tuple(items) if typing.get_origin(hint) is tuple else items

    converter.register_structure_hook_func(is_list, strict_list)

    def is_dict(hint: Any) -> bool:
        return hint is dict or typing.get_origin(hint) is dict

    def strict_dict(value: Any, hint: Any) -> Any:
        if not isinstance(value, dict):
            raise _Mismatch("an object", value)
        args = typing.get_args(hint)
        item = args[1] if args else Any
        return {k: _at(f".{k}", converter.structure, v, item) for k, v in value.items()}

    converter.register_structure_hook_func(is_dict, strict_dict)

    def is_attrs(hint: Any) -> bool:
        return isinstance(hint, type) and attrs.has(hint)

    def strict_attrs(value: Any, hint: Any) -> Any:
        if not isinstance(value, dict):
            raise _Mismatch("an object", value)
        hints = typing.get_type_hints(hint, include_extras=True)
        fields = {f.name: f for f in attrs.fields(hint)}
        extra = sorted(set(value) - set(fields))
        if extra:
            raise TypeError(f"unexpected field(s) {', '.join(map(repr, extra))}")
        kwargs = {}
        for name, field in fields.items():
            if name in value:
                kwargs[name] = _at(f".{name}", converter.structure, value[name], hints[name])
            elif field.default is attrs.NOTHING:
                raise TypeError(f"missing required field {name!r}")
        return hint(**kwargs)

    converter.register_structure_hook_func(is_attrs, strict_attrs)

    def is_annotated(hint: Any) -> bool:
        return typing.get_origin(hint) is typing.Annotated

    converter.register_structure_hook_func(
        is_annotated, lambda value, hint: converter.structure(value, typing.get_args(hint)[0])
    )


class _PathError(TypeError):
    """A failure inside a container, carrying the path to the offending value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _at(step: str, fn: Any, value: Any, hint: Any) -> Any:
    try:
        return fn(value, hint)
    except _PathError as exc:
        raise _PathError(step + exc.path, exc.reason) from None
    except (TypeError, ValueError, ClassValidationError, IterableValidationError) as exc:
        raise _PathError(step, _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return str(exc)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(
        hint, getattr(hint, "__name__", repr(hint))
    )


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    _build(converter)
    return converter


#: The converter every tool's arguments go through.
converter = make_converter()


def structure_argument(name: str, value: Any, hint: Any) -> Any:
    """Structure one tool argument, or raise :class:`ArgumentError` naming it and why."""
    try:
        return _at("", converter.structure, value, hint)
    except _PathError as exc:
        where = f"argument {name!r}" + (f" at {exc.path}" if exc.path else "")
        raise ArgumentError(f"{where}: {exc.reason}") from None


def unstructure(value: Any) -> Any:
    """Plain JSON data from attrs instances, enums and containers."""
    return converter.unstructure(value)
