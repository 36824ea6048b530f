"""Which requests may reach an MCP endpoint at all: the DNS-rebinding defences.

A web page on ``http://evil.example`` can make a browser send requests to a server on
the user's loopback interface by pointing its own name at 127.0.0.1 (DNS rebinding). Such
requests carry ``Host: evil.example`` and a foreign ``Origin``, so two checks stop them:

* **Host**: a server bound to loopback answers only names that mean this machine
  (``localhost``, ``127.0.0.1``, ``[::1]``, any port), plus any the user allows.
  A server bound elsewhere checks Host only against an explicit allow list.
* **Origin**: when present it must be the server's own origin (its scheme-less
  ``host:port`` equals the Host header) or one the user allows. Non-browser clients send
  no Origin and pass.

Pure functions of the request's headers and the address the server is bound to.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from ._http import Scope, header

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})


@functools.lru_cache(maxsize=256)
def _is_loopback(address: str) -> bool:
    # Cached: every request checks the server's own address and its Host name, and
    # parsing an IP address is a sizeable share of a request's cost.
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """``host[:port]`` or ``[v6]:port`` to the bare, lower-case host name."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(scope: Scope, allowed_hosts: Collection[str]) -> bool:
    """Whether the Host header names this server (see the module docstring)."""
    host = header(scope, b"host")
    if host is None:
        # HTTP/1.0 or an ASGI test client: no name to have been rebound.
        return True
    name = _hostname(host)
    if host.strip().lower() in allowed_hosts or name in allowed_hosts:
        return True
    server = scope.get("server")
    if server and _is_loopback(str(server[0])):
        return name in LOOPBACK_NAMES or _is_loopback(name)
    return not allowed_hosts


def origin_allowed(scope: Scope, allowed_origins: Collection[str]) -> bool:
    """Whether the Origin header, if any, is the server's own or an allowed one."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().lower()
    if "*" in allowed_origins or origin in allowed_origins:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    host = header(scope, b"host")
    return (
        parts.scheme in ("http", "https")
        and host is not None
        and parts.netloc == host.strip().lower()
    )
