"""Sealed ``requestState`` for MCP 2026-07-28's multi round-trip requests.

A tool (or prompt, or resource) that needs the user's input answers with an
``input_required`` result and an opaque ``requestState``; the client echoes it on its
retry, which any instance of the server may receive. The state therefore travels through
the client, and the spec (basic/patterns/mrtr) has the server treat what comes back as
attacker-controlled: protect its integrity, and bind it to the principal, a short expiry
and the originating request.

:class:`StateSealer` does that with the ``cryptography`` package's Fernet (AES-128-CBC
then HMAC-SHA256 over the whole token): the answers gathered so far stay confidential as
well as untouchable. Sealed inside, beside the caller's payload: the audience (which
deployment issued it), the :class:`Binding` (principal, method, tool/prompt name or
resource URI, digest of the arguments) and the expiry. :meth:`StateSealer.open` checks
every one and refuses with :class:`InvalidState`, whose message the transport sends back
as a JSON-RPC -32602 error.

Keys are text (:func:`generate_key`) so that several instances can share them through
the environment; the first seals, every one opens, so a key is rotated by putting the
new one first and dropping the old one once ``ttl`` has passed.

What this does not do: make state single-use. Within its ``ttl`` the same principal may
present the same state on the same request again; a tool whose step must happen at most
once (a payment, a redemption) records that itself, as the spec says.

Sans-io: no trio, no HTTP, no clock of its own beyond :func:`time.time` as a default.
Every call is synchronous and short (a token is at most :data:`MAX_TOKEN_CHARS`), so
there is no cancellation point inside and nothing to clean up when the caller is
cancelled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

#: The longest token :meth:`StateSealer.open` reads (characters, all ASCII): anything
#: longer is refused before any decoding, and :meth:`StateSealer.seal` refuses to make one.
MAX_TOKEN_CHARS = 64 * 1024

#: The layout of the sealed plaintext; a token of another layout is refused.
_FORMAT = 1

_EXPIRED = "requestState has expired: start the request again without it"
_FOREIGN = "requestState was not issued for this request"
_INVALID = "requestState is not valid"

#: Fernet's url-safe base64 alphabet, as this module writes it: without padding.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")

#: Text that may hold lone surrogates ("\ud800" is valid JSON, and a client may send
#: it): encoded as UTF-8 that keeps them rather than raising.
_SURROGATES = "surrogatepass"


class InvalidState(Exception):
    """The ``requestState`` a client sent cannot be used: tampered with, expired,
    issued for another request, principal or deployment, or not a token at all.

    ``str(exc)`` says which kind, in words meant for the client (it becomes a -32602
    error's message); it never says which bound value differed, nor what was inside.
    """


@attrs.frozen
class Binding:
    """What a sealed state belongs to: it opens only for the same principal, on the
    same method, for the same tool, prompt or resource, with the same arguments."""

    principal: str | None
    """The authenticated principal (None when the server has no auth)."""
    method: str
    """``tools/call``, ``prompts/get`` or ``resources/read``."""
    name: str
    """The tool's or prompt's name, or the resource's URI."""
    arguments_digest: str
    """From :func:`digest_arguments` on the request's arguments."""


def _canonical_json(value: Any) -> bytes:
    # One text per value: keys sorted, no spaces, characters as themselves.
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        # json recurses per level, and a handler runs deeper in the stack than the
        # parser did: arguments that parsed may nest too deep to be written here.
        text = "".join(_iter_canonical_json(value))
    return text.encode("utf-8", _SURROGATES)


def _iter_canonical_json(value: Any) -> Iterator[str]:
    """The text of ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` for any nesting depth: an explicit stack instead of recursion.
    Objects' keys must be str, as every parsed JSON object's are."""
    # Each entry is a value still to write, or punctuation (a _Text) to emit as is.
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Text:
            yield item
        elif isinstance(item, dict):
            entries = sorted(item.items(), key=_key)
            stack.append(_Text("}"))
            for index in range(len(entries) - 1, -1, -1):
                key, member = entries[index]
                stack.append(member)
                separator = "," if index else ""
                stack.append(_Text(separator + json.dumps(key, ensure_ascii=False) + ":"))
            yield "{"
        elif isinstance(item, list | tuple):
            stack.append(_Text("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Text(","))
            yield "["
        else:
            yield json.dumps(item, ensure_ascii=False)


class _Text(str):
    """Punctuation on :func:`_iter_canonical_json`'s stack, told apart from str values."""


def _key(entry: tuple[Any, Any]) -> str:
    key = entry[0]
    if not isinstance(key, str):
        raise TypeError(f"an object's keys must be str, not {type(key).__name__}")
    return key


def digest_arguments(arguments: Any) -> str:
    """A short, stable digest of a request's arguments, for :attr:`Binding.arguments_digest`.

    The canonical JSON of ``arguments`` (keys sorted at every depth, compact separators,
    characters unescaped) hashed with SHA-256 and written as url-safe base64 without
    padding (43 characters): the same arguments in any key order give the same digest,
    different values (``1`` and ``1.0`` and ``true`` included) different ones. Whatever
    JSON a client can send is accepted, lone surrogates included.
    """
    digest = hashlib.sha256(_canonical_json(arguments)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_key() -> str:
    """A fresh random key (32 bytes as url-safe base64, 44 characters), as text fit for
    ``Settings.state_keys`` or the ``TRIO_MCP_STATE_KEYS`` environment variable."""
    return Fernet.generate_key().decode("ascii")


def _fernet(index: int, key: object) -> Fernet:
    # The key is a secret: the error names its place in the list, never its text.
    if not isinstance(key, str):
        raise ValueError(f"state key {index} is not text but {type(key).__name__}")
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise ValueError(
            f"state key {index} (counting from 0) is not a valid key: it must be 32 "
            "url-safe base64-encoded bytes, as trio_mcp.generate_state_key() makes"
        ) from None


def check_keys(keys: Sequence[str]) -> None:
    """Raise :class:`ValueError` naming the first key (by index) that is not a key, so
    that a mistyped configuration fails when it is read rather than on the first
    sealed state. An empty list passes: it is for the caller to decide what that means."""
    for index, key in enumerate(_key_list(keys)):
        _fernet(index, key)


def _key_list(keys: Sequence[str]) -> list[str]:
    # One key where a list was meant would otherwise be read as 44 one-character keys.
    if isinstance(keys, str | bytes):
        raise TypeError("keys is a sequence of keys, not one key: pass [key]")
    return list(keys)


class StateSealer:
    """Seals a payload into a ``requestState`` token and opens it again, bound to a
    :class:`Binding`, an audience and an expiry.

    ``keys[0]`` seals; every key opens, so that keys rotate without refusing the state
    in flight. Instances that share the keys and the audience open each other's tokens;
    a different audience (another deployment of the same server) is refused as "not
    issued for this request". ``ttl`` is the seconds from sealing until the state has
    expired.

    A token is Fernet's, without base64's padding, and is accepted only in exactly that
    form: Fernet's own decoder ignores what follows the padding and the unused bits of
    the last character, so without this check several strings would open as one.
    """

    def __init__(self, keys: Sequence[str], *, audience: str, ttl: float) -> None:
        key_list = _key_list(keys)
        if not key_list:
            raise ValueError(
                "StateSealer needs at least one key: the first seals, every one opens "
                "(make one with trio_mcp.generate_state_key())"
            )
        if not isinstance(audience, str):
            raise TypeError(f"audience must be a str, not {type(audience).__name__}")
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a finite number of seconds > 0, not {ttl!r}")
        self._fernet = MultiFernet([_fernet(index, key) for index, key in enumerate(key_list)])
        self.audience = audience
        self.ttl = float(ttl)

    def seal(self, payload: Any, binding: Binding, *, now: float | None = None) -> str:
        """The token for ``payload`` (any JSON value: the answers gathered so far, the
        tool's own state), valid for ``binding`` until ``now + ttl``.

        Raises :class:`TypeError` or :class:`ValueError` for a payload JSON cannot carry
        (NaN, or nesting too deep for Python's ``json``), and :class:`ValueError` when
        the token would be longer than :data:`MAX_TOKEN_CHARS`, which :meth:`open` would
        refuse: the server's author hears of it here, not the client on its retry.
        """
        if now is None:
            now = time.time()
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time, not {now!r}")
        plaintext = [_FORMAT, *self._bound(binding), now + self.ttl, payload]
        try:
            text = json.dumps(plaintext, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"requestState payload is not JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("requestState payload nests too deep to be written") from None
        # Fernet's clear timestamp is whole seconds in 8 unsigned bytes; the expiry that
        # counts is the one sealed inside.
        issued = min(max(int(now), 0), 2**64 - 1)
        sealed = self._fernet.encrypt_at_time(text.encode("utf-8", _SURROGATES), issued)
        token = sealed.rstrip(b"=").decode("ascii")
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(
                f"requestState would be {len(token)} characters, over the "
                f"{MAX_TOKEN_CHARS} a client's retry may carry: keep less in the payload"
            )
        return token

    def open(self, token: str, binding: Binding, *, now: float | None = None) -> Any:
        """The payload sealed into ``token``, if it was sealed with one of the keys, for
        this audience and ``binding``, and has not expired at ``now``.

        Otherwise :class:`InvalidState`, and never another exception, whatever
        ``token`` is: it comes from the client. The state is still valid at exactly
        ``now == issued + ttl`` and expired after. A token for another binding is
        reported as such even when it has also expired.
        """
        plaintext = self._decrypt(token)
        try:
            value = json.loads(plaintext.decode("utf-8", _SURROGATES))
        except (ValueError, RecursionError):
            raise InvalidState(_INVALID) from None
        if not (isinstance(value, list) and len(value) == 8 and value[0] == _FORMAT):
            raise InvalidState(_INVALID)
        expires_at, payload = value[6], value[7]
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise InvalidState(_INVALID)
        # One comparison of the whole binding, in constant time: a token's bound
        # principal is confidential, and how soon a comparison fails would hint at it.
        if not hmac.compare_digest(
            _canonical_json(value[1:6]), _canonical_json(self._bound(binding))
        ):
            raise InvalidState(_FOREIGN)
        if now is None:
            now = time.time()
        if now > expires_at:
            raise InvalidState(_EXPIRED)
        return payload

    def _bound(self, binding: Binding) -> list[str | None]:
        return [
            self.audience,
            binding.principal,
            binding.method,
            binding.name,
            binding.arguments_digest,
        ]

    def _decrypt(self, token: object) -> bytes:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise InvalidState(_INVALID)
        if len(token) % 4 == 1 or _TOKEN_CHARS.fullmatch(token) is None:
            raise InvalidState(_INVALID)
        padded = token + "=" * (-len(token) % 4)
        data = base64.urlsafe_b64decode(padded)
        # Only the one canonical spelling of these bytes opens (see the class docstring).
        if base64.urlsafe_b64encode(data).decode("ascii") != padded:
            raise InvalidState(_INVALID)
        try:
            return self._fernet.decrypt(padded)
        except (InvalidToken, ValueError, TypeError):
            raise InvalidState(_INVALID) from None
