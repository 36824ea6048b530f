"""Settings of the HTTP side of a server, in one immutable object."""

from __future__ import annotations

import attrs


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class Settings:
    """How the app serves sessions. Every field has a default fit for production.

    Attributes:
        heartbeat_interval: seconds of silence after which an SSE stream gets a comment
            line, so that proxies and clients do not time it out.
        outbound_buffer: messages queued per session for its stream before a handler
            that emits waits for the client to read.
        max_body_bytes: the largest POST body accepted.
        client_request_timeout: default seconds a server-to-client request waits for
            the client's answer.
        sse_path, messages_path: where the HTTP+SSE transport is mounted.
    """

    heartbeat_interval: float = attrs.field(default=15.0, validator=_positive)
    outbound_buffer: int = attrs.field(default=256, validator=_positive)
    max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    client_request_timeout: float = attrs.field(default=60.0, validator=_positive)
    sse_path: str = "/sse"
    messages_path: str = "/messages/"
