"""What both floors share: the least an SSE server must do to pass for MCP.

A floor shows what the HTTP stack itself costs, so it does only what any SSE server
that answers JSON-RPC must do: keep a registry of streams by session id, parse each
POSTed message, answer the two requests the benchmark makes (``initialize`` with a
canned result, ``tools/call`` echoing its text), queue the reply on the session's stream,
and send a heartbeat comment when the stream is idle. No validation, no replay log, no
lifecycle: what trio-mcp costs above a floor is what its features cost.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Final

import trio

PING: Final = b": ping\n\n"

SERVER_INFO: Final = {"name": "floor", "version": "1"}


class FloorSession:
    """One stream's outbox and the event that wakes its writer."""

    __slots__ = ("outbox", "wakeup")

    def __init__(self) -> None:
        self.outbox: list[bytes] = []
        self.wakeup = trio.Event()

    def push(self, data: bytes) -> None:
        self.outbox.append(data)
        self.wakeup.set()

    async def next_chunk(self, heartbeat: float) -> bytes:
        """What to send next: queued events, or a ping after ``heartbeat`` idle seconds."""
        with trio.move_on_after(heartbeat):
            await self.wakeup.wait()
        if not self.outbox:
            return PING
        data = b"".join(self.outbox)
        self.outbox.clear()
        self.wakeup = trio.Event()
        return data


sessions: dict[str, FloorSession] = {}


def open_session() -> tuple[str, FloorSession]:
    session_id = secrets.token_hex(16)
    session = sessions[session_id] = FloorSession()
    return session_id, session


def close_session(session_id: str) -> None:
    sessions.pop(session_id, None)


def endpoint_event(session_id: str) -> bytes:
    return f"event: endpoint\ndata: /messages/?session_id={session_id}\n\n".encode()


def _result(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params") or {}
    if message["method"] == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO,
        }
    if message["method"] == "tools/call":
        text = params.get("arguments", {}).get("text", "")
        return {"content": [{"type": "text", "text": text}], "isError": False}
    return {}


def handle_post(session_id: str | None, body: bytes) -> int:
    """Act on one POSTed message; the HTTP status to answer with."""
    session = sessions.get(session_id or "")
    if session is None:
        return 404
    try:
        message = json.loads(body)
    except ValueError:
        return 400
    if "id" in message and "method" in message:
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": _result(message)}
        session.push(f"event: message\ndata: {json.dumps(reply)}\n\n".encode())
    return 202
