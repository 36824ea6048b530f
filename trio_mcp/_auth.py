"""Bearer-token authentication for the MCP endpoints (an OAuth 2.0 protected resource).

The server does not issue tokens; an authorization server does. What the server needs
is a way to check one, which the user supplies: ``verify(token)`` returns who the token
belongs to (any string naming a principal), or ``None`` when it is not valid. With
:class:`BearerAuth` configured:

* every MCP request needs ``Authorization: Bearer <token>``; without one, or with a
  token ``verify`` refuses, the answer is ``401`` with a ``WWW-Authenticate`` challenge
  that points at the protected-resource metadata (RFC 6750, RFC 9728);
* each session belongs to the principal that created it: a request, a resumption or a
  DELETE that names it with another principal's token is answered as if the session did
  not exist, so a session id alone is worth nothing to someone else;
* ``GET /.well-known/oauth-protected-resource`` serves the metadata (RFC 9728) that tells
  clients which authorization servers issue tokens for this resource.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import attrs

from ._http import Scope, Send, header, respond

METADATA_PATH: Final = "/.well-known/oauth-protected-resource"
PRINCIPAL_KEY: Final = "trio_mcp.principal"

TokenVerifier = Callable[[str], Awaitable[str | None]]


@attrs.frozen
class BearerAuth:
    """Require a bearer token on every MCP request; see the module docstring.

    Attributes:
        verify: ``async def verify(token) -> principal or None``. It runs for every
            request, so cache what is expensive (a token introspection call).
        authorization_servers: issuer URLs of the authorization servers whose tokens
            this server accepts, for the metadata.
        resource: this server's resource identifier (its MCP URL, e.g.
            ``https://mcp.example.com/mcp``). Left out, it is derived from each request.
        scopes_supported: scopes to advertise in the metadata.
        realm: the realm of the ``WWW-Authenticate`` challenge.
    """

    verify: TokenVerifier
    authorization_servers: Sequence[str] = attrs.field(default=(), converter=tuple)
    resource: str | None = None
    scopes_supported: Sequence[str] = attrs.field(default=(), converter=tuple)
    realm: str = "mcp"

    def base_url(self, scope: Scope) -> str:
        scheme = scope.get("scheme", "http")
        host = header(scope, b"host") or "localhost"
        return f"{scheme}://{host}{scope.get('root_path', '')}"

    def metadata(self, scope: Scope, mcp_path: str) -> dict[str, object]:
        metadata: dict[str, object] = {
            "resource": self.resource or self.base_url(scope) + mcp_path,
            "authorization_servers": list(self.authorization_servers),
            "bearer_methods_supported": ["header"],
        }
        if self.scopes_supported:
            metadata["scopes_supported"] = list(self.scopes_supported)
        return metadata

    async def authenticate(self, scope: Scope) -> tuple[str | None, str | None]:
        """(principal, None) for a valid token; (None, error) otherwise, where error is
        the RFC 6750 code to put in the challenge (None when no token was sent)."""
        value = header(scope, b"authorization")
        if value is None:
            return None, None
        kind, _, token = value.strip().partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None, "invalid_request"
        principal = await self.verify(token.strip())
        if principal is None:
            return None, "invalid_token"
        return principal, None

    async def challenge(self, scope: Scope, send: Send, error: str | None) -> None:
        """Answer 401 with a challenge that says where to learn how to get a token."""
        parts = [f'realm="{self.realm}"']
        if error is not None:
            parts.append(f'error="{error}"')
        parts.append(f'resource_metadata="{self.base_url(scope)}{METADATA_PATH}"')
        body = {
            "jsonrpc": "2.0",
            "error": {
                "code": -32001,
                "message": "authentication required: send Authorization: Bearer <token>"
                if error is None
                else "the bearer token is not valid",
            },
        }
        await respond(
            send,
            401,
            json.dumps(body).encode(),
            content_type=b"application/json",
            headers=[(b"www-authenticate", ("Bearer " + ", ".join(parts)).encode())],
        )
