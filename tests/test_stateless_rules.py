"""The rules of the MCP 2026-07-28 stateless wire, without a server (trio_mcp._stateless):
which POSTs it takes, what every request must say about itself, how the headers must
mirror the body (in the spec's order), and what every result carries."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from trio_mcp._caching import CacheHint
from trio_mcp._context import LOG_LEVELS
from trio_mcp._jsonrpc import INVALID_PARAMS, JSON, METHOD_NOT_FOUND, Request
from trio_mcp._protocol import SUPPORTED_VERSIONS, ServerIdentity
from trio_mcp._stateless import (
    ALL_VERSIONS,
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    HEADER_MISMATCH,
    LOG_LEVEL_KEY,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
    UNSUPPORTED_PROTOCOL_VERSION,
    Refusal,
    RequestMeta,
    check_headers,
    check_version_header,
    complete,
    discover_result,
    header_param_problems,
    header_params,
    method_not_found,
    read_meta,
    routes_statelessly,
)

MODERN = "2026-07-28"
LEGACY = "2025-11-25"

REGION_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "count": {"type": "integer", "x-mcp-header": "Count"},
        "dry": {"type": "boolean", "x-mcp-header": "Dry"},
        "target": {
            "type": "object",
            "properties": {"zone": {"type": "string", "x-mcp-header": "Zone"}},
        },
    },
}


def meta(**extra: Any) -> JSON:
    return {PROTOCOL_VERSION_KEY: MODERN, CLIENT_CAPABILITIES_KEY: {}, **extra}


def request(method: str = "tools/list", params: JSON | None = None, **meta_extra: Any) -> Request:
    body: JSON = dict(params or {})
    body.setdefault("_meta", meta(**meta_extra))
    return Request(1, method, body)


def headers(method: str = "tools/list", **extra: str) -> dict[str, str]:
    base = {"mcp-protocol-version": MODERN, "mcp-method": method}
    base.update({name.replace("_", "-"): value for name, value in extra.items()})
    return base


def schemas(name: str) -> JSON | None:
    return REGION_SCHEMA if name == "regional" else None


def check(req: Request, hdrs: dict[str, str]) -> None:
    check_headers(req, read_meta(req, LOG_LEVELS), hdrs, schemas)


def refused(req: Request, hdrs: dict[str, str]) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check(req, hdrs)
    return caught.value


def call(arguments: JSON, name: str = "regional") -> Request:
    return request("tools/call", {"name": name, "arguments": arguments})


def call_headers(name: str = "regional", **params: str) -> dict[str, str]:
    hdrs = headers("tools/call", mcp_name=name)
    hdrs.update({f"mcp-param-{key.lower()}": value for key, value in params.items()})
    return hdrs


def b64(text: str) -> str:
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


# -- routing -----------------------------------------------------------------------------


def test_a_post_naming_a_session_stays_on_the_session_wire() -> None:
    assert not routes_statelessly("abc", None, Request(1, "tools/list", {}))
    assert not routes_statelessly("abc", LEGACY, request())
    # A session's request with a version nobody speaks is the session wire's to refuse.
    assert not routes_statelessly("abc", "1999-01-01", Request(1, "ping", {}))


def test_an_unknown_version_header_without_meta_is_400_unsupported_version() -> None:
    with pytest.raises(Refusal) as refusal:
        check_version_header(Request(1, "ping", {}), "1999-01-01")
    error = refusal.value.error
    assert (refusal.value.status, error.code) == (400, UNSUPPORTED_PROTOCOL_VERSION)
    assert error.data["requested"] == "1999-01-01" and MODERN in error.data["supported"]
    assert "MCP-Protocol-Version" in error.message


def test_an_unknown_version_header_with_meta_is_left_to_the_meta_checks() -> None:
    check_version_header(request(), "1999-01-01")
    check_version_header(Request(1, "ping", {}), MODERN)


def test_a_modern_version_header_ignores_a_stray_session_id() -> None:
    # 2026-07-28 has no sessions: following the id back into the session era would
    # answer with that era's refusal, which hides this revision from the client.
    assert routes_statelessly("abc", MODERN, request())


def test_a_bare_initialize_stays_on_the_session_wire() -> None:
    initialize = Request(1, "initialize", {"protocolVersion": LEGACY, "capabilities": {}})
    assert not routes_statelessly(None, None, initialize)


def test_a_modern_version_header_routes_statelessly() -> None:
    assert routes_statelessly(None, MODERN, Request(1, "tools/list", {}))


def test_an_unknown_version_header_routes_statelessly_to_be_refused_there() -> None:
    assert routes_statelessly(None, "1999-01-01", Request(1, "tools/list", {}))


def test_meta_protocol_version_without_a_header_routes_statelessly() -> None:
    assert routes_statelessly(None, None, request())


def test_a_session_era_header_without_meta_stays_on_the_session_wire() -> None:
    assert not routes_statelessly(None, LEGACY, Request(1, "tools/list", {}))


def test_a_session_era_header_with_meta_routes_statelessly_and_is_refused_as_a_mismatch() -> None:
    # The body's _meta is what only this wire has: the request is judged here, where
    # the header contradicting the body's revision is a header mismatch.
    req = request()
    assert routes_statelessly(None, LEGACY, req)
    refusal = refused(req, headers(mcp_protocol_version=LEGACY))
    assert (refusal.status, refusal.error.code) == (400, HEADER_MISMATCH)


# -- _meta -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"_meta": "not an object"},
        {"_meta": {CLIENT_CAPABILITIES_KEY: {}}},
        {"_meta": {PROTOCOL_VERSION_KEY: 20260728, CLIENT_CAPABILITIES_KEY: {}}},
        {"_meta": {PROTOCOL_VERSION_KEY: MODERN}},
        {"_meta": {PROTOCOL_VERSION_KEY: MODERN, CLIENT_CAPABILITIES_KEY: []}},
    ],
    ids=[
        "no-meta",
        "meta-not-object",
        "no-protocol-version",
        "protocol-version-not-string",
        "no-client-capabilities",
        "client-capabilities-not-object",
    ],
)
def test_meta_without_the_required_fields_is_refused_400_invalid_params(params: JSON) -> None:
    with pytest.raises(Refusal) as caught:
        read_meta(Request(1, "tools/list", params), LOG_LEVELS)
    assert (caught.value.status, caught.value.error.code) == (400, INVALID_PARAMS)


def test_meta_without_params_at_all_is_refused_400_invalid_params() -> None:
    with pytest.raises(Refusal) as caught:
        read_meta(Request(1, "tools/list"), LOG_LEVELS)
    assert (caught.value.status, caught.value.error.code) == (400, INVALID_PARAMS)


def test_client_info_is_optional() -> None:
    read = read_meta(request(), LOG_LEVELS)
    assert read.client_info == {}
    assert read.protocol_version == MODERN and read.client_capabilities == {}


def test_client_info_is_kept_when_given() -> None:
    info = {"name": "c", "version": "1"}
    assert read_meta(request(**{CLIENT_INFO_KEY: info}), LOG_LEVELS).client_info == info


def test_a_valid_log_level_is_kept() -> None:
    assert read_meta(request(**{LOG_LEVEL_KEY: "warning"}), LOG_LEVELS).log_level == "warning"


def test_no_log_level_means_no_logs() -> None:
    assert read_meta(request(), LOG_LEVELS).log_level is None


@pytest.mark.parametrize("level", ["loud", 3, ""])
def test_an_unknown_log_level_is_refused_as_invalid_params(level: Any) -> None:
    with pytest.raises(Refusal) as refusal:
        read_meta(request(**{LOG_LEVEL_KEY: level}), LOG_LEVELS)
    assert (refusal.value.status, refusal.value.error.code) == (400, INVALID_PARAMS)


def test_the_whole_meta_is_kept_raw() -> None:
    read = read_meta(request(progressToken="t1"), LOG_LEVELS)
    assert isinstance(read, RequestMeta) and read.raw["progressToken"] == "t1"


# -- headers: version ------------------------------------------------------------------------


def test_headers_that_mirror_the_body_pass() -> None:
    check(request(), headers())


def test_a_missing_version_header_is_a_header_mismatch() -> None:
    hdrs = headers()
    del hdrs["mcp-protocol-version"]
    refusal = refused(request(), hdrs)
    assert (refusal.status, refusal.error.code) == (400, HEADER_MISMATCH)


def test_a_version_header_differing_from_meta_is_a_header_mismatch() -> None:
    refusal = refused(request(), headers(mcp_protocol_version="2026-08-01"))
    assert (refusal.status, refusal.error.code) == (400, HEADER_MISMATCH)


def test_an_unsupported_version_is_refused_with_supported_and_requested() -> None:
    req = request(**{PROTOCOL_VERSION_KEY: "2030-01-01"})
    refusal = refused(req, headers(mcp_protocol_version="2030-01-01"))
    assert (refusal.status, refusal.error.code) == (400, UNSUPPORTED_PROTOCOL_VERSION)
    assert refusal.error.data == {"supported": list(ALL_VERSIONS), "requested": "2030-01-01"}


def test_a_session_era_version_in_both_header_and_meta_is_unsupported_here() -> None:
    req = request(**{PROTOCOL_VERSION_KEY: LEGACY})
    refusal = refused(req, headers(mcp_protocol_version=LEGACY))
    assert refusal.error.code == UNSUPPORTED_PROTOCOL_VERSION


def test_the_version_mismatch_is_reported_before_a_method_mismatch() -> None:
    refusal = refused(request(), headers(mcp_protocol_version="2030-01-01", mcp_method="x"))
    assert refusal.error.code == HEADER_MISMATCH
    assert "MCP-Protocol-Version" in refusal.error.message


def test_an_unsupported_version_is_reported_before_a_method_mismatch() -> None:
    req = request(**{PROTOCOL_VERSION_KEY: "2030-01-01"})
    refusal = refused(req, headers(mcp_protocol_version="2030-01-01", mcp_method="x"))
    assert refusal.error.code == UNSUPPORTED_PROTOCOL_VERSION


# -- headers: Mcp-Method ---------------------------------------------------------------------


def test_a_missing_method_header_is_a_header_mismatch() -> None:
    hdrs = headers()
    del hdrs["mcp-method"]
    assert refused(request(), hdrs).error.code == HEADER_MISMATCH


def test_a_different_method_header_is_a_header_mismatch() -> None:
    assert refused(request(), headers(mcp_method="prompts/list")).error.code == HEADER_MISMATCH


def test_a_method_header_differing_in_case_is_a_header_mismatch() -> None:
    assert refused(request(), headers(mcp_method="Tools/List")).error.code == HEADER_MISMATCH


def test_whitespace_around_header_values_is_accepted() -> None:
    check(request(), headers(mcp_protocol_version=f" {MODERN}\t", mcp_method="\ttools/list "))


# -- headers: Mcp-Name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {"name": "echo", "arguments": {}}),
        ("prompts/get", {"name": "echo"}),
        ("resources/read", {"uri": "echo"}),
    ],
)
def test_a_named_method_without_mcp_name_is_a_header_mismatch(method: str, params: JSON) -> None:
    refusal = refused(request(method, params), headers(method))
    assert (refusal.status, refusal.error.code) == (400, HEADER_MISMATCH)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {"name": "echo", "arguments": {}}),
        ("prompts/get", {"name": "echo"}),
        ("resources/read", {"uri": "echo"}),
    ],
)
def test_an_mcp_name_differing_from_the_body_is_a_header_mismatch(
    method: str, params: JSON
) -> None:
    refusal = refused(request(method, params), headers(method, mcp_name="other"))
    assert refusal.error.code == HEADER_MISMATCH


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {"name": "echo", "arguments": {}}),
        ("prompts/get", {"name": "echo"}),
        ("resources/read", {"uri": "echo"}),
    ],
)
def test_an_mcp_name_mirroring_the_body_passes(method: str, params: JSON) -> None:
    check(request(method, params), headers(method, mcp_name="echo"))


def test_an_mcp_name_in_the_base64_sentinel_is_decoded() -> None:
    uri = "file:///tmp/ünïcode doc.txt"
    req = request("resources/read", {"uri": uri})
    check(req, headers("resources/read", mcp_name=b64(uri)))


def test_an_mcp_name_in_bad_base64_is_refused() -> None:
    req = request("resources/read", {"uri": "x"})
    refusal = refused(req, headers("resources/read", mcp_name="=?base64?!!not base64!!?="))
    assert refusal.error.code == HEADER_MISMATCH


def test_an_mcp_name_base64_of_invalid_utf8_is_refused() -> None:
    req = request("resources/read", {"uri": "x"})
    bad = "=?base64?" + base64.b64encode(b"\xff\xfe").decode() + "?="
    assert refused(req, headers("resources/read", mcp_name=bad)).error.code == HEADER_MISMATCH


@pytest.mark.parametrize("value", ["na\x00me", "na\x7fme", "nämé", "na\nme"])
def test_an_mcp_name_with_control_or_non_ascii_characters_is_refused(value: str) -> None:
    req = request("tools/call", {"name": value, "arguments": {}})
    assert refused(req, headers("tools/call", mcp_name=value)).error.code == HEADER_MISMATCH


# -- headers: Mcp-Param-* --------------------------------------------------------------------


def test_param_headers_mirroring_every_value_pass() -> None:
    arguments = {"region": "eu-west", "count": 3, "dry": True, "target": {"zone": "b"}}
    check(call(arguments), call_headers(Region="eu-west", Count="3", Dry="true", Zone="b"))


def test_a_param_header_absent_with_its_value_absent_passes() -> None:
    check(call({}), call_headers())


def test_a_missing_param_header_for_a_body_value_is_a_header_mismatch() -> None:
    refusal = refused(call({"region": "eu"}), call_headers())
    assert (refusal.status, refusal.error.code) == (400, HEADER_MISMATCH)
    assert "Mcp-Param-Region" in refusal.error.message


def test_a_param_header_sent_without_a_body_value_is_a_header_mismatch() -> None:
    assert refused(call({}), call_headers(Region="eu")).error.code == HEADER_MISMATCH


def test_a_param_header_with_a_different_value_is_a_header_mismatch() -> None:
    assert refused(call({"region": "eu"}), call_headers(Region="us")).error.code == HEADER_MISMATCH


def test_an_integer_param_compares_numerically() -> None:
    check(call({"count": 3}), call_headers(Count="3.0"))


def test_an_integer_param_with_a_different_number_is_a_header_mismatch() -> None:
    assert refused(call({"count": 3}), call_headers(Count="4")).error.code == HEADER_MISMATCH


def test_an_integer_param_that_is_not_a_number_is_a_header_mismatch() -> None:
    assert refused(call({"count": 3}), call_headers(Count="three")).error.code == HEADER_MISMATCH


@pytest.mark.parametrize("header", ["4_2", "42.5", "4.2e1", " 42x", "0x2a", "42.0000000000000001"])
def test_an_integer_param_must_be_written_as_that_integer(header: str) -> None:
    # float() would take each of these for 42 (or near it): a proxy routing on the
    # header would then see another value than the server runs with.
    assert refused(call({"count": 42}), call_headers(Count=header)).error.code == HEADER_MISMATCH


def test_an_integer_param_past_a_float_s_precision_compares_exactly() -> None:
    big = 2**53
    assert refused(call({"count": big}), call_headers(Count=str(big + 1))).error.code == (
        HEADER_MISMATCH
    )
    check(call({"count": big + 1}), call_headers(Count=str(big + 1)))


def test_an_integral_float_in_the_body_is_that_integer() -> None:
    check(call({"count": 42.0}), call_headers(Count="42"))


def test_a_boolean_param_is_true_or_false_in_lower_case() -> None:
    check(call({"dry": False}), call_headers(Dry="false"))
    assert refused(call({"dry": True}), call_headers(Dry="1")).error.code == HEADER_MISMATCH
    assert refused(call({"dry": True}), call_headers(Dry="True")).error.code == HEADER_MISMATCH


def test_a_nested_property_param_follows_its_path() -> None:
    check(call({"target": {"zone": "b"}}), call_headers(Zone="b"))
    refusal = refused(call({"target": {"zone": "b"}}), call_headers(Zone="c"))
    assert refusal.error.code == HEADER_MISMATCH


def test_a_param_header_value_in_base64_is_decoded() -> None:
    check(call({"region": "Zürich"}), call_headers(Region=b64("Zürich")))


def test_param_headers_are_not_checked_for_an_unknown_tool() -> None:
    req = request("tools/call", {"name": "unknown", "arguments": {"region": "eu"}})
    check(req, call_headers("unknown"))


def test_param_headers_are_looked_up_in_lower_case() -> None:
    # The transport lower-cases header names; the rules look up "mcp-param-region"
    # whatever case the schema's x-mcp-header has.
    hdrs = headers("tools/call", mcp_name="regional")
    hdrs["mcp-param-region"] = "eu"
    check(call({"region": "eu"}), hdrs)
    hdrs_upper = headers("tools/call", mcp_name="regional")
    hdrs_upper["Mcp-Param-Region"] = "eu"
    assert refused(call({"region": "eu"}), hdrs_upper).error.code == HEADER_MISMATCH


def test_the_name_mismatch_is_reported_before_a_param_mismatch() -> None:
    refusal = refused(call({"region": "eu"}), call_headers("other", Region="us"))
    assert "Mcp-Name" in refusal.error.message


# -- header_params ----------------------------------------------------------------------------


def test_header_params_map_header_names_to_property_paths() -> None:
    assert header_params(REGION_SCHEMA) == {
        "Region": ("region",),
        "Count": ("count",),
        "Dry": ("dry",),
        "Zone": ("target", "zone"),
    }


def test_header_params_are_found_only_through_properties() -> None:
    schema: JSON = {
        "type": "object",
        "x-mcp-header": "Root",
        "$defs": {"d": {"type": "string", "x-mcp-header": "Def"}},
        "properties": {
            "list": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}},
            "choice": {"anyOf": [{"type": "string", "x-mcp-header": "Choice"}]},
            "plain": {"type": "string", "x-mcp-header": "Plain"},
        },
    }
    assert header_params(schema) == {"Plain": ("plain",)}


def test_header_params_ignore_empty_and_non_string_names() -> None:
    schema: JSON = {
        "properties": {"a": {"x-mcp-header": ""}, "b": {"x-mcp-header": 7}, "c": "not a schema"}
    }
    assert header_params(schema) == {}


# -- method_not_found -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"],
)
def test_a_removed_method_is_not_found_and_says_it_was_removed(method: str) -> None:
    refusal = method_not_found(method)
    assert (refusal.status, refusal.error.code) == (404, METHOD_NOT_FOUND)
    assert "removed" in refusal.error.message and method in refusal.error.message


def test_an_unknown_method_is_not_found() -> None:
    refusal = method_not_found("frobnicate")
    assert (refusal.status, refusal.error.code) == (404, METHOD_NOT_FOUND)
    assert "removed" not in refusal.error.message


# -- results --------------------------------------------------------------------------------

IDENTITY = ServerIdentity("srv", "2.0", title="Server", instructions="Be nice")


def test_complete_adds_result_type_and_server_info() -> None:
    result = complete({"tools": []}, IDENTITY)
    assert result["resultType"] == "complete"
    assert result["_meta"][SERVER_INFO_KEY] == {"name": "srv", "version": "2.0", "title": "Server"}
    assert "ttlMs" not in result and "cacheScope" not in result


def test_complete_keeps_the_handlers_own_meta_and_result_type() -> None:
    result = complete({"resultType": "task", "_meta": {"mine": 1}}, IDENTITY)
    assert result["resultType"] == "task"
    assert result["_meta"]["mine"] == 1 and SERVER_INFO_KEY in result["_meta"]


def test_complete_leaves_out_an_absent_title() -> None:
    result = complete({}, ServerIdentity("srv", "2.0"))
    assert result["_meta"][SERVER_INFO_KEY] == {"name": "srv", "version": "2.0"}


def test_complete_adds_the_caching_hint_given() -> None:
    result = complete({}, IDENTITY, CacheHint(1234, "private"))
    assert (result["ttlMs"], result["cacheScope"]) == (1234, "private")


def test_a_cache_hint_refuses_a_negative_ttl_or_an_unknown_scope() -> None:
    with pytest.raises(ValueError):
        CacheHint(-1)
    with pytest.raises(ValueError):
        CacheHint(1, "shared")  # type: ignore[arg-type]


def test_discover_result_offers_every_version_capabilities_instructions_and_hints() -> None:
    result = discover_result(IDENTITY, {"tools": {}}, CacheHint(60_000, "public"))
    assert result["supportedVersions"] == [*SUPPORTED_VERSIONS, MODERN]
    assert result["capabilities"] == {"tools": {}}
    assert result["instructions"] == "Be nice"
    assert (result["ttlMs"], result["cacheScope"]) == (60_000, "public")
    assert result["resultType"] == "complete" and SERVER_INFO_KEY in result["_meta"]


def test_discover_result_leaves_out_absent_instructions() -> None:
    result = discover_result(ServerIdentity("s", "1"), {}, CacheHint(0))
    assert "instructions" not in result


# -- x-mcp-header annotations, checked when a tool is registered ------------------------


def annotated(**properties: JSON) -> JSON:
    return {"type": "object", "properties": properties}


def test_well_formed_header_annotations_have_no_problems() -> None:
    schema = annotated(
        region={"type": "string", "x-mcp-header": "Region"},
        inner={"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}},
    )
    assert header_param_problems(schema) == []


@pytest.mark.parametrize("name", ["", "Two Words", "Ümlaut", "a:b"])
def test_a_header_annotation_must_be_a_token(name: str) -> None:
    problems = header_param_problems(annotated(p={"type": "string", "x-mcp-header": name}))
    assert problems and "token" in problems[0]


def test_header_annotations_must_differ_regardless_of_case() -> None:
    schema = annotated(
        a={"type": "string", "x-mcp-header": "Region"},
        b={"type": "string", "x-mcp-header": "region"},
    )
    assert any("repeats" in problem for problem in header_param_problems(schema))


@pytest.mark.parametrize("kind", ["number", "array", "object", None])
def test_a_header_annotation_needs_an_integer_string_or_boolean(kind: str | None) -> None:
    prop: JSON = {"x-mcp-header": "P"} if kind is None else {"type": kind, "x-mcp-header": "P"}
    assert header_param_problems(annotated(p=prop))


@pytest.mark.parametrize(
    "schema",
    [
        annotated(a={"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}),
        {"type": "object", "anyOf": [annotated(a={"type": "string", "x-mcp-header": "A"})]},
        {"type": "object", "$defs": {"d": {"type": "string", "x-mcp-header": "A"}}},
    ],
)
def test_a_header_annotation_off_the_properties_chain_is_refused(schema: JSON) -> None:
    assert any("only mark" in problem for problem in header_param_problems(schema))


def test_a_tool_with_a_bad_header_annotation_cannot_be_registered() -> None:
    import trio_mcp

    server = trio_mcp.Server("s")

    async def run(**arguments: Any) -> str:
        return "ran"

    with pytest.raises(ValueError, match="x-mcp-header"):
        server.add_tool(run, input_schema=annotated(p={"type": "number", "x-mcp-header": "P"}))
