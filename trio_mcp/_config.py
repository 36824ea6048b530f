"""Settings of the HTTP side of a server, in one immutable object."""

from __future__ import annotations

import attrs


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

    heartbeat_interval: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    outbound_buffer: int = attrs.field(default=256, validator=attrs.validators.gt(0))
    max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    client_request_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    sse_path: str = "/sse"
    messages_path: str = "/messages/"
