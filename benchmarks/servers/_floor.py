"""What the floors share: the least an SSE server must do to pass for MCP.

A floor shows what the HTTP stack itself costs, so it does only what any SSE server
that answers JSON-RPC must do: keep a registry of streams by session id, parse each
POSTed message, answer the two requests the benchmark makes (``initialize`` with a
canned result, ``tools/call`` echoing its text), queue the reply on the session's stream,
and send a heartbeat comment when the stream is idle. No validation, no replay log, no
lifecycle: what trio-mcp costs above a floor is what its features cost.

The bare floors (:func:`bare_app`) are one ASGI app whose held stream is written with
trio's tasks on trio, natively under hypercorn's trio worker and as a guest under
uvicorn, and with asyncio's on uvicorn: side by side they show what the HTTP server,
trio's scheduling and the guest bridge each cost for the same work (issue 12).
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qs

import trio
from _common import make_parser

PING: Final = b": ping\n\n"

SERVER_INFO: Final = {"name": "floor", "version": "1"}

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
AsgiApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class FloorSession:
    """One stream's outbox and the event that wakes its writer (trio's)."""

    __slots__ = ("outbox", "wakeup")

    def __init__(self) -> None:
        self.outbox: list[bytes] = []
        self.wakeup: Any = self.new_event()

    @staticmethod
    def new_event() -> Any:
        return trio.Event()

    async def wait(self, heartbeat: float) -> None:
        with trio.move_on_after(heartbeat):
            await self.wakeup.wait()

    def push(self, data: bytes) -> None:
        self.outbox.append(data)
        self.wakeup.set()

    async def next_chunk(self, heartbeat: float) -> bytes:
        """What to send next: queued events, or a ping after ``heartbeat`` idle seconds."""
        await self.wait(heartbeat)
        if not self.outbox:
            return PING
        data = b"".join(self.outbox)
        self.outbox.clear()
        self.wakeup = self.new_event()
        return data


sessions: dict[str, FloorSession] = {}


def parse_floor_args(description: str) -> argparse.Namespace:
    """Every server's arguments, and the host's keep-alive timeout: the attack section's
    mass disconnect (``benchmarks/attacks.py``) gives a bare floor the same keep-alive
    as trio-mcp's server (hypercorn keeps a connection its client closed until that
    timer fires), so that the host's part of a departure lands in the same window."""
    parser = make_parser(description)
    parser.add_argument("--keep-alive-timeout", type=float, help="the host's, seconds")
    return parser.parse_args()


def open_session(kind: type[FloorSession] = FloorSession) -> tuple[str, FloorSession]:
    session_id = secrets.token_hex(16)
    session = sessions[session_id] = kind()
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


Stream = Callable[[FloorSession, Receive, Send, float], Awaitable[None]]

STREAM_HEADERS: Final = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def bare_app(stream: Stream, heartbeat: float, kind: type[FloorSession] = FloorSession) -> AsgiApp:
    """A bare ASGI app serving ``GET /sse`` and ``POST /messages/``, written only with
    ``await`` on its ``receive`` and ``send`` (so the same app runs on trio and on
    asyncio): ``stream`` writes a held stream's chunks, a ping after ``heartbeat`` idle
    seconds, until its client leaves, with the library's own tasks and timeouts."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path, method = scope["path"], scope["method"]
        if path == "/sse" and method == "GET":
            session_id, session = open_session(kind)
            try:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": endpoint_event(session_id),
                        "more_body": True,
                    }
                )
                await stream(session, receive, send, heartbeat)
            finally:
                close_session(session_id)
        elif path == "/messages/" and method == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            query = parse_qs(scope["query_string"].decode())
            status = handle_post(query.get("session_id", [""])[0], body)
            await _respond(send, status)
        else:
            await _respond(send, 404)

    return app


async def _respond(send: Send, status: int) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})
