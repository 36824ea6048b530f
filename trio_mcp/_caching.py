"""Caching hints (MCP 2026-07-28): how long a client may keep a result, and who may share it.

Only results of the stateless wire carry them (``ttlMs``, ``cacheScope``): the lists,
``resources/read`` and ``server/discover``. An author sets them per server, per list
method or per resource; the defaults are chosen so that nothing is served stale for
long and nothing user-specific is shared.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

from ._jsonrpc import JSON

CacheScope = Literal["public", "private"]

#: The methods whose complete results carry caching hints.
CACHEABLE_METHODS: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)


def _scope(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("public", "private"):
        raise ValueError(f"cache scope must be 'public' or 'private', not {value!r}")


@attrs.frozen
class CacheHint:
    """A result's freshness (``ttl_ms``, milliseconds, 0 = re-fetch every time) and
    scope: ``"public"`` when it is the same for every user (any cache may share it),
    ``"private"`` when it may differ per user (only that user's cache may keep it)."""

    ttl_ms: int = attrs.field(validator=attrs.validators.ge(0))
    scope: CacheScope = attrs.field(default="public", validator=_scope)

    def apply(self, result: JSON) -> JSON:
        result["ttlMs"] = self.ttl_ms
        result["cacheScope"] = self.scope
        return result


#: What the server's lists and ``server/discover`` carry unless the author says
#: otherwise: a minute, shared. Lists change rarely, and a client listening for
#: ``list_changed`` drops its copy at once when one does.
DEFAULT_LIST_HINT: Final = CacheHint(60_000, "public")
#: What a resource read carries unless its resource says otherwise: stale at once and
#: never shared, since a resource's content may change any time and depend on the user.
DEFAULT_READ_HINT: Final = CacheHint(0, "private")
