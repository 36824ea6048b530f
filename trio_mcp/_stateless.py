"""The rules of MCP's stateless wire (2026-07-28), free of I/O.

On this wire there is no handshake and no session: every request says in its
``params._meta`` which revision it speaks and what its client can do, and the HTTP
headers mirror the fields a proxy routes on (``MCP-Protocol-Version``, ``Mcp-Method``,
``Mcp-Name``, ``Mcp-Param-*``). This module decides, for one parsed request and its
headers, whether it may be served and with what error it is refused otherwise, in the
order the spec gives; and it shapes what every result carries (``resultType``, the
server's identity, caching hints). It knows no trio and no HTTP beyond status numbers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from ._caching import CacheHint
from ._jsonrpc import INVALID_PARAMS, JSON, METHOD_NOT_FOUND, JSONRPCError, Request
from ._protocol import SUPPORTED_VERSIONS, ServerIdentity

#: Revisions served statelessly, oldest first.
STATELESS_VERSIONS: Final = ("2026-07-28",)
#: What ``server/discover`` offers: the stateless revisions and the session-era ones.
ALL_VERSIONS: Final = (*SUPPORTED_VERSIONS, *STATELESS_VERSIONS)

PROTOCOL_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY: Final = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY: Final = "io.modelcontextprotocol/subscriptionId"

HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

#: Methods of the session era that this revision removed: answered as unknown.
REMOVED_METHODS: Final = frozenset(
    {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
)
#: Methods whose ``Mcp-Name`` header mirrors a parameter, and which one.
NAMED_PARAMS: Final = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
_SENTINEL = re.compile(r"=\?base64\?(.*)\?=", re.DOTALL)
# Field values: visible ASCII, space and tab (RFC 9110).
_FIELD_VALUE = re.compile(r"[\x20-\x7e\t]*")
# An integer as a header carries it: decimal digits, and a zero fraction at most.
_INTEGER = re.compile(r"(-?[0-9]+)(?:\.0+)?")
# RFC 9110 token characters: what an x-mcp-header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_stateless_version(version: str) -> bool:
    return version in STATELESS_VERSIONS


def routes_statelessly(session_id: str | None, version_header: str | None, message: Any) -> bool:
    """Whether a POST belongs to the stateless wire: its ``MCP-Protocol-Version`` names a
    stateless revision (whatever else it carries), or it names no session and either its
    version header is not a session-era revision or its body carries the per-request
    ``_meta`` that only this wire has. A bare ``initialize`` (the session era's first
    message) stays on the session wire, and so does a session's request whatever its
    header says (the session wire refuses a version it does not speak)."""
    version = version_header.strip() if version_header is not None else None
    if version in STATELESS_VERSIONS:
        # This revision has no sessions: a stray Mcp-Session-Id is ignored, not followed
        # back into the session era, whose refusal would hide this revision from the client.
        return True
    if session_id:
        return False
    if version is not None and version not in SUPPORTED_VERSIONS:
        return True
    params = getattr(message, "params", None)
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta


class Refusal(Exception):
    """The request is refused before it runs: answer ``error`` with HTTP ``status``."""

    def __init__(self, status: int, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = JSONRPCError(code, message, data)


@attrs.frozen
class RequestMeta:
    """What a stateless request says about itself in ``params._meta``."""

    protocol_version: str
    client_capabilities: JSON
    client_info: JSON
    #: The level the client asked log notifications from, or None for none at all.
    log_level: str | None
    #: The whole ``_meta`` (progress token, and whatever else the client sent).
    raw: JSON


def check_version_header(request: Request, version_header: str | None) -> None:
    """Refuse, before anything else, a request whose ``MCP-Protocol-Version`` names no
    revision served here and whose body does not say which it speaks: -32022 with the
    revisions served, which a client of either era can act on (a ``_meta`` missing on a
    revision that has none would only confuse it)."""
    if version_header is None:
        return
    version = version_header.strip()
    if version in ALL_VERSIONS:
        return
    params = request.params or {}
    meta = params.get("_meta")
    if isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta:
        return  # the body speaks for itself: the checks below compare the two
    raise Refusal(
        400,
        UNSUPPORTED_PROTOCOL_VERSION,
        f"Unsupported MCP-Protocol-Version {version!r}: this server speaks "
        + ", ".join(ALL_VERSIONS),
        {"supported": list(ALL_VERSIONS), "requested": version},
    )


def read_meta(request: Request, log_levels: tuple[str, ...]) -> RequestMeta:
    """The request's ``_meta``, or a :class:`Refusal` (400, -32602) when the fields every
    request must carry are missing."""
    params = request.params or {}
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise Refusal(
            400,
            INVALID_PARAMS,
            f"params._meta is required on MCP {STATELESS_VERSIONS[-1]}: it must carry "
            f"{PROTOCOL_VERSION_KEY!r} and {CLIENT_CAPABILITIES_KEY!r}",
        )
    version = meta.get(PROTOCOL_VERSION_KEY)
    if not isinstance(version, str):
        raise Refusal(400, INVALID_PARAMS, f"params._meta needs a string {PROTOCOL_VERSION_KEY!r}")
    capabilities = meta.get(CLIENT_CAPABILITIES_KEY)
    if not isinstance(capabilities, dict):
        raise Refusal(
            400, INVALID_PARAMS, f"params._meta needs an object {CLIENT_CAPABILITIES_KEY!r}"
        )
    client_info = meta.get(CLIENT_INFO_KEY)
    level = meta.get(LOG_LEVEL_KEY)
    if level is not None and level not in log_levels:
        raise Refusal(
            400,
            INVALID_PARAMS,
            f"params._meta {LOG_LEVEL_KEY!r} must be one of {', '.join(log_levels)}",
        )
    return RequestMeta(
        protocol_version=version,
        client_capabilities=capabilities,
        client_info=client_info if isinstance(client_info, dict) else {},
        log_level=level,
        raw=meta,
    )


def decode_header_value(value: str, what: str) -> str:
    """A mirrored header's value: plain, or ``=?base64?...?=`` decoded (strictly)."""
    value = value.strip(" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise Refusal(400, HEADER_MISMATCH, f"Header mismatch: {what} has invalid characters")
    match = _SENTINEL.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match[1], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Refusal(
            400, HEADER_MISMATCH, f"Header mismatch: {what} is not valid =?base64?...?= text"
        ) from None


def check_headers(
    request: Request,
    meta: RequestMeta,
    headers: Mapping[str, str],
    tool_schema: Callable[[str], JSON | None],
) -> None:
    """Refuse a request whose headers disagree with its body, or whose revision is not
    served, in the spec's order: version header, version, ``Mcp-Method``,
    ``Mcp-Name``, then the ``Mcp-Param-*`` headers of the tool's ``x-mcp-header``
    parameters. ``headers`` maps lower-case names to values; ``tool_schema(name)`` is a
    tool's input schema (None for an unknown tool)."""
    version_header = headers.get("mcp-protocol-version")
    if version_header is None:
        raise Refusal(
            400, HEADER_MISMATCH, "Header mismatch: the MCP-Protocol-Version header is missing"
        )
    if version_header.strip() != meta.protocol_version:
        raise Refusal(
            400,
            HEADER_MISMATCH,
            f"Header mismatch: MCP-Protocol-Version {version_header.strip()!r} does not match "
            f"_meta {PROTOCOL_VERSION_KEY} {meta.protocol_version!r}",
        )
    if not is_stateless_version(meta.protocol_version):
        if meta.protocol_version in SUPPORTED_VERSIONS:
            # Served, but through initialize and a session: on this wire only the
            # stateless revisions are, and offering the others would invite a loop.
            message = (
                f"MCP {meta.protocol_version} is served with 'initialize' and a session; "
                "without one, speak " + ", ".join(STATELESS_VERSIONS)
            )
            supported = list(STATELESS_VERSIONS)
        else:
            message = f"Unsupported protocol version {meta.protocol_version!r}: this server " + (
                "speaks " + ", ".join(ALL_VERSIONS)
            )
            supported = list(ALL_VERSIONS)
        raise Refusal(
            400,
            UNSUPPORTED_PROTOCOL_VERSION,
            message,
            {"supported": supported, "requested": meta.protocol_version},
        )
    method_header = headers.get("mcp-method")
    if method_header is None or method_header.strip(" \t") != request.method:
        raise Refusal(
            400,
            HEADER_MISMATCH,
            f"Header mismatch: Mcp-Method {method_header!r} does not match the body's "
            f"method {request.method!r}",
        )
    params = request.params or {}
    named = NAMED_PARAMS.get(request.method)
    if named is not None:
        raw_name = headers.get("mcp-name")
        if raw_name is None:
            raise Refusal(
                400, HEADER_MISMATCH, f"Header mismatch: {request.method} needs an Mcp-Name header"
            )
        name = decode_header_value(raw_name, "Mcp-Name")
        if name != params.get(named):
            raise Refusal(
                400,
                HEADER_MISMATCH,
                f"Header mismatch: Mcp-Name {name!r} does not match params.{named} "
                f"{params.get(named)!r}",
            )
    if request.method == "tools/call" and isinstance(params.get("name"), str):
        schema = tool_schema(params["name"])
        if schema is not None:
            arguments = params.get("arguments")
            _check_param_headers(schema, arguments if isinstance(arguments, dict) else {}, headers)


def _check_param_headers(schema: JSON, arguments: JSON, headers: Mapping[str, str]) -> None:
    for suffix, path in header_params(schema).items():
        value: Any = arguments
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        raw = headers.get("mcp-param-" + suffix.lower())
        what = f"Mcp-Param-{suffix}"
        if value is None:
            if raw is not None:
                raise Refusal(
                    400, HEADER_MISMATCH, f"Header mismatch: {what} is sent but the body has none"
                )
            continue
        if raw is None:
            raise Refusal(
                400, HEADER_MISMATCH, f"Header mismatch: {what} is missing; the body has a value"
            )
        if not _same_value(decode_header_value(raw, what), value):
            raise Refusal(
                400, HEADER_MISMATCH, f"Header mismatch: {what} does not match the body's value"
            )


def _same_value(header_value: str, body_value: Any) -> bool:
    if isinstance(body_value, bool):
        return header_value == ("true" if body_value else "false")
    if isinstance(body_value, float) and body_value.is_integer():
        body_value = int(body_value)  # 42.0 in JSON is the integer 42
    if isinstance(body_value, int):
        # Numerically, but exactly: float() would let "4_2" or 2**53 + 1 pass for another
        # number, and a proxy routing on the header must see the value the server runs.
        match = _INTEGER.fullmatch(header_value)
        return match is not None and int(match[1]) == body_value
    return isinstance(body_value, str) and header_value == body_value


def header_params(schema: JSON) -> dict[str, tuple[str, ...]]:
    """``x-mcp-header`` name -> property path, for the properties reachable from the
    schema's root through ``properties`` alone (the only place the spec allows them)."""
    return {name: path for name, path in _annotated(schema, ()) if name}


def _annotated(node: Any, path: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    properties = node.get("properties") if isinstance(node, dict) else None
    if not isinstance(properties, dict):
        return []
    found: list[tuple[str, tuple[str, ...]]] = []
    for key, child in properties.items():
        if not isinstance(child, dict):
            continue
        name = child.get("x-mcp-header")
        if isinstance(name, str):
            found.append((name, (*path, key)))
        found += _annotated(child, (*path, key))
    return found


def header_param_problems(schema: JSON) -> list[str]:
    """What is wrong with a tool's ``x-mcp-header`` annotations (nothing: ``[]``).

    The spec's constraints: a non-empty token, unique regardless of case, on an
    integer, string or boolean property reachable from the root through ``properties``
    alone. A client must drop a tool that breaks any of them, so the server refuses to
    register one rather than have it vanish from clients' lists.
    """
    problems: list[str] = []
    reachable = _annotated(schema, ())
    non_strings = _non_string_annotations(schema, ())
    for path in non_strings:
        problems.append(f"{'.'.join(path)}: x-mcp-header must be a string")
    seen: dict[str, str] = {}
    for name, path in reachable:
        where = ".".join(path)
        if not _TOKEN.fullmatch(name):
            problems.append(f"{where}: x-mcp-header {name!r} is not an HTTP header token")
        if name.lower() in seen:
            problems.append(f"{where}: x-mcp-header {name!r} repeats {seen[name.lower()]!r}")
        seen[name.lower()] = name
        node: Any = schema
        for step in path:
            node = node["properties"][step]
        if node.get("type") not in ("integer", "string", "boolean"):
            problems.append(f"{where}: x-mcp-header needs type integer, string or boolean")
    total = _count_annotations(schema)
    if total > len(reachable) + len(non_strings):
        problems.append(
            "x-mcp-header may only mark properties reached through 'properties' from the "
            "root (not under items, anyOf/oneOf/allOf/not, if/then/else or $ref)"
        )
    return problems


def _non_string_annotations(node: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    properties = node.get("properties") if isinstance(node, dict) else None
    if not isinstance(properties, dict):
        return []
    found = []
    for key, child in properties.items():
        if isinstance(child, dict):
            if "x-mcp-header" in child and not isinstance(child["x-mcp-header"], str | dict):
                found.append((*path, key))
            found += _non_string_annotations(child, (*path, key))
    return found


def _count_annotations(node: Any) -> int:
    if isinstance(node, dict):
        # (A dict under that key is a property *named* x-mcp-header, not an annotation.)
        annotation = "x-mcp-header" in node and not isinstance(node["x-mcp-header"], dict)
        return int(annotation) + sum(_count_annotations(value) for value in node.values())
    if isinstance(node, list):
        return sum(_count_annotations(value) for value in node)
    return 0


def method_not_found(method: str) -> Refusal:
    removed = method in REMOVED_METHODS
    why = f"{method} was removed in MCP {STATELESS_VERSIONS[-1]}" if removed else "Method not found"
    return Refusal(404, METHOD_NOT_FOUND, f"{why}: {method}")


# -- what results carry ---------------------------------------------------------------------


def server_info(identity: ServerIdentity) -> JSON:
    info: JSON = {"name": identity.name, "version": identity.version}
    if identity.title:
        info["title"] = identity.title
    return info


def complete(result: JSON, identity: ServerIdentity, cache: CacheHint | None = None) -> JSON:
    """A result as this wire sends it: ``resultType``, the server's identity in
    ``_meta``, and caching hints where the method is cacheable."""
    result.setdefault("resultType", "complete")
    meta = result.get("_meta")
    result["_meta"] = {
        **(meta if isinstance(meta, dict) else {}),
        SERVER_INFO_KEY: server_info(identity),
    }
    if cache is not None:
        cache.apply(result)
    return result


def discover_result(identity: ServerIdentity, capabilities: JSON, cache: CacheHint) -> JSON:
    result: JSON = {"supportedVersions": list(ALL_VERSIONS), "capabilities": capabilities}
    if identity.instructions:
        result["instructions"] = identity.instructions
    return complete(result, identity, cache)
