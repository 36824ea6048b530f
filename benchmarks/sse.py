"""Decoding text/event-stream as it arrives, for the load generator.

Servers differ in line endings (trio-mcp and the floors end lines with LF, sse-starlette
with CRLF) and in heartbeats (``: ping`` versus ``: ping - <timestamp>``); both are SSE
comments, which is all the benchmark needs to know to count a heartbeat.
"""

from __future__ import annotations


class SseEvent:
    """One dispatched event, or a block of comments only (a heartbeat)."""

    __slots__ = ("data", "event", "heartbeat", "id")

    def __init__(self, event: str, data: str, event_id: str | None, heartbeat: bool) -> None:
        self.event = event
        self.data = data
        self.id = event_id
        self.heartbeat = heartbeat


class SseDecoder:
    """Feed it the body's bytes in whatever pieces they come; it returns whole events."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[SseEvent]:
        buf = self._buf + data
        # A CR at the very end may be the first half of a CRLF split across chunks.
        held = b""
        if buf.endswith(b"\r"):
            buf, held = buf[:-1], b"\r"
        blocks = buf.replace(b"\r\n", b"\n").split(b"\n\n")
        self._buf = blocks.pop() + held
        return [event for block in blocks if (event := _parse_block(block)) is not None]


def _parse_block(block: bytes) -> SseEvent | None:
    event = "message"
    data: list[str] = []
    event_id = None
    comment = False
    for raw in block.decode("utf-8").split("\n"):
        if not raw:
            continue
        if raw.startswith(":"):
            comment = True
            continue
        name, _, value = raw.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            event_id = value
    if not data and event_id is None:
        return SseEvent("", "", None, heartbeat=True) if comment else None
    return SseEvent(event, "\n".join(data), event_id, heartbeat=False)
