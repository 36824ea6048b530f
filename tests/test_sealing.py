"""Sealed requestState (trio_mcp/_sealing.py): what opens, what is refused and with
which words, key rotation, the arguments' digest, and the Settings that configure it.
Pure functions of their inputs and of ``now``, so no server and no clock are needed."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

import trio_mcp
from trio_mcp import _sealing
from trio_mcp._sealing import (
    MAX_TOKEN_CHARS,
    Binding,
    InvalidState,
    StateSealer,
    _iter_canonical_json,
    digest_arguments,
    generate_key,
)

EXPIRED = "requestState has expired: start the request again without it"
FOREIGN = "requestState was not issued for this request"
INVALID = "requestState is not valid"

OLD_KEY = generate_key()
NEW_KEY = generate_key()
NOW = 1_700_000_000.0
TTL = 600.0
BINDING = Binding(
    principal="alice",
    method="tools/call",
    name="book_flight",
    arguments_digest=digest_arguments({"from": "LHR", "to": "CDG"}),
)
PAYLOAD = {"answers": {"seat": "12A"}, "step": 2}


def sealer(*keys: str, audience: str = "travel", ttl: float = TTL) -> StateSealer:
    return StateSealer(list(keys) or [OLD_KEY], audience=audience, ttl=ttl)


def refusal(
    token: Any,
    binding: Binding = BINDING,
    *,
    now: float = NOW,
    keys: tuple[str, ...] = (),
    audience: str = "travel",
) -> str:
    with pytest.raises(InvalidState) as caught:
        sealer(*keys, audience=audience).open(token, binding, now=now)
    return str(caught.value)


def sealed(payload: Any = PAYLOAD, binding: Binding = BINDING, **kwargs: Any) -> str:
    return sealer(**kwargs).seal(payload, binding, now=NOW)


# -- what opens ---------------------------------------------------------------------------


def test_a_sealed_payload_opens_to_the_same_value() -> None:
    payload = {"answers": [1, 2.5, None, True, "été ☂"], "nested": {"b": [], "a": {}}}
    assert sealer().open(sealed(payload), BINDING, now=NOW + 1) == payload


def test_a_payload_with_lone_surrogates_opens_to_the_same_value() -> None:
    # "\ud800" is valid JSON, so a client's answer may carry it into the payload.
    payload = {"answer": "\ud800 and \udfff"}
    assert sealer().open(sealed(payload), BINDING, now=NOW) == payload


def test_state_without_a_principal_opens_without_one() -> None:
    binding = Binding(None, "prompts/get", "greeting", digest_arguments({}))
    assert sealer().open(sealed("x", binding), binding, now=NOW) == "x"


def test_state_opens_at_exactly_its_expiry() -> None:
    assert sealer().open(sealed(), BINDING, now=NOW + TTL) == PAYLOAD


def test_another_instance_with_the_same_key_and_audience_opens_the_state() -> None:
    other = StateSealer([OLD_KEY], audience="travel", ttl=TTL)
    assert other.open(sealed(), BINDING, now=NOW) == PAYLOAD


def test_state_sealed_with_the_old_key_opens_after_rotation() -> None:
    token = sealed()  # sealed by a sealer whose only key is OLD_KEY
    assert sealer(NEW_KEY, OLD_KEY).open(token, BINDING, now=NOW) == PAYLOAD


def test_after_rotation_the_new_key_seals() -> None:
    token = sealer(NEW_KEY, OLD_KEY).seal(PAYLOAD, BINDING, now=NOW)
    assert sealer(NEW_KEY).open(token, BINDING, now=NOW) == PAYLOAD
    assert refusal(token, keys=(OLD_KEY,)) == INVALID


# -- what is refused ----------------------------------------------------------------------


def test_state_past_its_expiry_has_expired() -> None:
    assert refusal(sealed(), now=NOW + TTL + 0.001) == EXPIRED


@pytest.mark.parametrize(
    ("sealed_for", "presented_by"), [("alice", "bob"), (None, "alice"), ("alice", None), (None, "")]
)
def test_state_sealed_for_another_principal_is_refused(
    sealed_for: str | None, presented_by: str | None
) -> None:
    token = sealed(binding=Binding(sealed_for, "tools/call", "t", "d"))
    assert refusal(token, Binding(presented_by, "tools/call", "t", "d")) == FOREIGN


def test_state_sealed_for_another_method_is_refused() -> None:
    token = sealed(binding=Binding("alice", "prompts/get", "book_flight", "d"))
    assert refusal(token, Binding("alice", "tools/call", "book_flight", "d")) == FOREIGN


def test_state_sealed_for_another_tool_is_refused() -> None:
    token = sealed(binding=Binding("alice", "tools/call", "cancel_flight", "d"))
    assert refusal(token, Binding("alice", "tools/call", "book_flight", "d")) == FOREIGN


def test_state_sealed_for_other_arguments_is_refused() -> None:
    other = Binding("alice", "tools/call", "book_flight", digest_arguments({"to": "JFK"}))
    assert refusal(sealed(), other) == FOREIGN


def test_state_sealed_for_another_audience_is_refused() -> None:
    assert refusal(sealed(audience="travel-staging"), audience="travel") == FOREIGN


def test_state_for_another_request_is_refused_as_such_even_once_expired() -> None:
    other = Binding("bob", BINDING.method, BINDING.name, BINDING.arguments_digest)
    assert refusal(sealed(), other, now=NOW + 10 * TTL) == FOREIGN


def test_a_sealer_without_the_old_key_refuses_its_state() -> None:
    assert refusal(sealed(), keys=(NEW_KEY,)) == INVALID


def test_a_token_with_any_one_character_changed_is_refused() -> None:
    token = sealed()
    for index, char in enumerate(token):
        for replacement in {"A", "B", "-", "_"} - {char}:
            tampered = token[:index] + replacement + token[index + 1 :]
            assert refusal(tampered) == INVALID, f"opened with {replacement!r} at {index}"


@pytest.mark.parametrize("suffix", ["-TAMPERED", "=", "==", "A", "AAAA", " ", "\n"])
def test_a_token_with_text_appended_is_refused(suffix: str) -> None:
    # Fernet's own decoder ignores what follows base64's padding and the last
    # character's unused bits; a token is accepted only as it was issued.
    assert refusal(sealed() + suffix) == INVALID


def test_a_token_cut_short_is_refused() -> None:
    token = sealed()
    for length in range(len(token)):
        assert refusal(token[:length]) == INVALID


@pytest.mark.parametrize(
    "token", ["", "x", "not a token!", "été", "gAAAAA", "\x00" * 100, "A" * 200]
)
def test_a_garbage_token_is_refused(token: str) -> None:
    assert refusal(token) == INVALID


@pytest.mark.parametrize("token", [None, 12, 1.5, True, ["x"], {"a": 1}])
def test_a_token_that_is_not_a_str_is_refused(token: Any) -> None:
    assert refusal(token) == INVALID


def test_a_token_as_bytes_is_refused() -> None:
    assert refusal(sealed().encode()) == INVALID


def test_an_oversized_token_is_refused() -> None:
    assert refusal("A" * (MAX_TOKEN_CHARS + 1)) == INVALID


def test_an_oversized_token_is_refused_even_when_sealed_with_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(_sealing, "MAX_TOKEN_CHARS", 10 * MAX_TOKEN_CHARS)
        token = sealed("x" * MAX_TOKEN_CHARS)
        assert sealer().open(token, BINDING, now=NOW) == "x" * MAX_TOKEN_CHARS
    assert refusal(token) == INVALID


def test_only_the_spelling_of_a_token_as_issued_opens() -> None:
    # A token whose last base64 character carries unused bits (its byte count is not a
    # multiple of 3) has other spellings of the same bytes, which Fernet would open.
    token = next(t for t in (sealed("x" * size) for size in range(48)) if len(t) % 4 and len(t) > 4)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    opened = []
    for last in alphabet:
        try:
            sealer().open(token[:-1] + last, BINDING, now=NOW)
        except InvalidState as exc:
            assert str(exc) == INVALID
        else:
            opened.append(last)
    assert opened == [token[-1]]


def test_a_token_sealed_with_the_key_around_something_else_is_refused() -> None:
    # Only the key's holder can make these; the layout is still checked.
    fernet = Fernet(OLD_KEY)
    for plaintext in [b"not json", b"\xff\xfe", b"[1,2,3]", b'{"a":1}', b'[2,"travel"]']:
        token = fernet.encrypt_at_time(plaintext, int(NOW)).decode().rstrip("=")
        assert refusal(token) == INVALID


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_open_refuses_any_text_with_invalid_state(token: str) -> None:
    assert refusal(token) == INVALID


# -- what seal refuses --------------------------------------------------------------------


def test_a_payload_too_large_for_a_token_is_refused_when_sealing() -> None:
    with pytest.raises(ValueError, match="keep less in the payload"):
        sealer().seal("x" * MAX_TOKEN_CHARS, BINDING, now=NOW)


@pytest.mark.parametrize("payload", [math.nan, {"a": math.inf}, {1j}, object()])
def test_a_payload_that_is_not_json_is_refused_when_sealing(payload: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="requestState payload is not JSON"):
        sealer().seal(payload, BINDING, now=NOW)


# -- confidentiality ----------------------------------------------------------------------


def test_the_token_does_not_carry_the_payload_in_clear() -> None:
    secret = "the-passport-number-X1234567"
    token = sealed({"passport": secret})
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert secret not in token
    assert secret.encode() not in raw
    for clear in [b"passport", b"alice", b"book_flight", b"travel"]:
        assert clear not in raw


# -- keys ---------------------------------------------------------------------------------


def test_an_empty_key_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        StateSealer([], audience="travel", ttl=TTL)


def test_an_invalid_key_is_refused_by_its_index_without_echoing_it() -> None:
    bad = "not-a-key-but-a-secret-password"
    with pytest.raises(ValueError, match="state key 1 ") as caught:
        StateSealer([OLD_KEY, bad], audience="travel", ttl=TTL)
    assert bad not in str(caught.value)
    assert OLD_KEY not in str(caught.value)


def test_one_key_passed_instead_of_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match=r"pass \[key\]"):
        StateSealer(OLD_KEY, audience="travel", ttl=TTL)


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan])
def test_a_ttl_that_is_not_a_positive_finite_number_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        StateSealer([OLD_KEY], audience="travel", ttl=ttl)


def test_generate_state_key_makes_a_new_usable_key_each_time() -> None:
    first, second = trio_mcp.generate_state_key(), trio_mcp.generate_state_key()
    assert first != second
    token = StateSealer([second], audience="a", ttl=1).seal(1, BINDING, now=NOW)
    assert StateSealer([first, second], audience="a", ttl=1).open(token, BINDING, now=NOW) == 1


# -- the arguments' digest ----------------------------------------------------------------


def test_digest_arguments_ignores_the_order_of_keys_at_every_depth() -> None:
    one = {"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": None}}
    other = {"b": {"y": None, "x": [1, {"q": 2, "p": 1}]}, "a": 1}
    assert digest_arguments(one) == digest_arguments(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1}, {"a": True}),
        ({"a": 1}, {"a": "1"}),
        ({"a": []}, {"a": {}}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ({"a": 1}, {"a": 1, "b": None}),
        ({"é": 1}, {"e": 1}),
    ],
)
def test_digest_arguments_differs_for_different_values(one: Any, other: Any) -> None:
    assert digest_arguments(one) != digest_arguments(other)


def test_digest_arguments_is_sha256_of_canonical_json_in_unpadded_base64url() -> None:
    arguments = {"b": "été", "a": [1, 2]}
    expected = hashlib.sha256('{"a":[1,2],"b":"été"}'.encode()).digest()
    assert digest_arguments(arguments) == base64.urlsafe_b64encode(expected).decode().rstrip("=")


def test_digest_arguments_accepts_lone_surrogates() -> None:
    assert digest_arguments({"a": "\ud800"}) != digest_arguments({"a": "\udc00"})


def test_digest_arguments_accepts_nesting_deeper_than_json_writes() -> None:
    def nested(depth: int) -> Any:
        value: Any = []
        for _ in range(depth):
            value = {"k": [value]}
        return value

    with pytest.raises(RecursionError):
        json.dumps(nested(5000))
    assert digest_arguments(nested(5000)) != digest_arguments(nested(4999))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_the_deep_fallback_writes_what_json_writes(value: Any) -> None:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert "".join(_iter_canonical_json(value)) == canonical


# -- Settings -----------------------------------------------------------------------------


def test_settings_read_state_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_MCP_STATE_KEYS", f"{NEW_KEY}, {OLD_KEY}")
    assert trio_mcp.Settings().state_keys == (NEW_KEY, OLD_KEY)


def test_settings_without_the_environment_have_no_state_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRIO_MCP_STATE_KEYS", raising=False)
    assert trio_mcp.Settings().state_keys == ()


def test_settings_take_state_keys_as_a_list_or_one_comma_separated_str(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIO_MCP_STATE_KEYS", "ignored when state_keys is given")
    assert trio_mcp.Settings(state_keys=[NEW_KEY, OLD_KEY]).state_keys == (NEW_KEY, OLD_KEY)
    assert trio_mcp.Settings(state_keys=f"{NEW_KEY},{OLD_KEY},").state_keys == (NEW_KEY, OLD_KEY)


def test_settings_refuse_an_invalid_state_key_by_its_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIO_MCP_STATE_KEYS", f"{OLD_KEY},typo-secret")
    with pytest.raises(ValueError, match=r"TRIO_MCP_STATE_KEYS.*state key 1 ") as caught:
        trio_mcp.Settings()
    assert "typo-secret" not in str(caught.value)


def test_settings_repr_hides_the_state_keys() -> None:
    settings = trio_mcp.Settings(state_keys=[OLD_KEY, NEW_KEY])
    assert OLD_KEY not in repr(settings)
    assert "state_keys=<2 keys>" in repr(settings)


def test_settings_default_state_ttl_and_audience() -> None:
    settings = trio_mcp.Settings(state_keys=())
    assert (settings.state_ttl, settings.state_audience) == (600.0, None)


@pytest.mark.parametrize("ttl", [0, -5.0, math.inf, math.nan])
def test_settings_refuse_a_state_ttl_that_is_not_positive_and_finite(ttl: float) -> None:
    with pytest.raises(ValueError, match="state_ttl"):
        trio_mcp.Settings(state_ttl=ttl)
