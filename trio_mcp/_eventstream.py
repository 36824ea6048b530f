"""The text/event-stream wire format, in one place for every transport.

Pure functions from fields to bytes. A field value never contains a line break: ``data``
is split into several ``data:`` lines (the client joins them with newlines), and ids and
event names are checked, since a stray newline would let one event forge another.
"""

from __future__ import annotations

from typing import Final

#: An SSE comment: ignored by clients, but it keeps proxies and idle timers satisfied.
HEARTBEAT: Final = b": ping\n\n"


def _field_value(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {name} cannot contain a line break: {value!r}")
    return value


def encode_event(
    data: str,
    *,
    event: str | None = None,
    event_id: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """One event, terminated by the blank line that dispatches it."""
    parts = []
    if event_id is not None:
        parts.append(f"id: {_field_value('id', event_id)}\n")
    if event is not None:
        parts.append(f"event: {_field_value('event', event)}\n")
    if retry_ms is not None:
        parts.append(f"retry: {int(retry_ms)}\n")
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8")
