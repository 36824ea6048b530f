"""A session holds at most max_session_bytes of its client's requests and unread replies."""

from __future__ import annotations

import ctypes
import gc
import json
import weakref
from typing import Any

import httpx
import pytest
import trio
from rawhttp import open_sse_stream
from sseclient import open_sse
from streamclient import open_client

import trio_mcp
from trio_mcp._session import Session

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host

MiB = 1024 * 1024


def demo_app(**settings: Any) -> trio_mcp.App:
    from trio_mcp._demo import demo

    return demo.asgi_app(trio_mcp.Settings(**settings))


def rss() -> int:
    """This process's resident memory in bytes, once freed memory has been collected and
    handed back to the system (glibc keeps freed blocks of a busy heap otherwise)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def echo(request_id: int, size: int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x" * size}},
        }
    ).encode()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}},
}


Answer = tuple[int, str | None, Any]  # status, Retry-After, JSON body (None if empty)


async def stop_reading_and_ask(
    app: trio_mcp.App, url: str, http: httpx.AsyncClient, count: int, size: int
) -> tuple[Session, trio.SocketStream, list[Answer]]:
    """Open an HTTP+SSE session whose client never reads its stream, and ask it for
    ``count`` echoes of ``size`` bytes; returns once every handler has either finished
    or is waiting for room on the stream, with the answer to each POST (not the
    responses: they would keep the requests' bodies alive in this process)."""
    stream, endpoint = await open_sse_stream(url)
    session = app.supervisor.get(endpoint.split("session_id=")[1], None)
    assert session is not None
    headers = {"content-type": "application/json"}
    await http.post(url + endpoint, json=INITIALIZE)
    await http.post(url + endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    answers = []
    for n in range(1, count + 1):
        response = await http.post(url + endpoint, content=echo(n, size), headers=headers)
        body = response.json() if response.content else None
        answers.append((response.status_code, response.headers.get("retry-after"), body))
    with trio.fail_after(10):
        while len(session._handlers) > session.main.blocked:
            await trio.sleep(0.01)
    return session, stream, answers


async def test_a_client_that_reads_nothing_makes_its_session_hold_no_more_than_the_bound(
    serve_app: Any,
) -> None:
    # 100 echoes of 512 KB: unbounded, 100 handlers each held their request and their
    # reply (about 100 MB); bounded at 2 MiB, the session takes on requests only while it
    # holds less, and what it admitted may still double that with their replies.
    size, bound = 512 * 1024, 2 * MiB
    app = demo_app(max_session_bytes=bound, replay_bytes=64 * 1024)
    async with serve_app(app) as url, httpx.AsyncClient(timeout=30) as http:
        before = rss()
        session, stream, _ = await stop_reading_and_ask(app, url, http, 100, size)
        grown = rss() - before
        held = session.budget.held
        await stream.aclose()
    assert held <= 2 * (bound + size)
    assert grown <= 4 * bound, f"the process grew by {grown / MiB:.0f} MiB"


async def test_past_the_bound_a_request_is_refused_at_once_with_the_overload_code(
    serve_app: Any,
) -> None:
    # Each sleep carries 40 KB of _meta, held until it is answered: two fill 64 KiB.
    app = demo_app(max_session_bytes=64 * 1024)
    padded = {"name": "sleep", "arguments": {"seconds": 1}, "_meta": {"pad": "x" * 40_000}}
    async with serve_app(app) as url, open_sse(url) as sse:
        await sse.initialize()
        slow = [await sse.send_request("tools/call", padded) for _ in range(2)]
        start = trio.current_time()
        refused = await sse.call("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert trio.current_time() - start < 0.5  # at once, not after the sleeps
        assert refused["error"]["code"] == trio_mcp.SERVER_BUSY
        assert "max_session_bytes" in refused["error"]["message"]
        for request_id in slow:
            assert "result" in await sse.reply_to(request_id)
        # Answered, they are let go: the session takes requests again.
        answered = await sse.call("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    assert answered["result"]["content"][0]["text"] == "x"


async def test_when_even_a_refusal_has_no_room_the_post_gets_503_with_the_overload_code(
    serve_app: Any,
) -> None:
    app = demo_app(max_session_bytes=2 * MiB, replay_bytes=64 * 1024)
    async with serve_app(app) as url, httpx.AsyncClient(timeout=30) as http:
        _, stream, answers = await stop_reading_and_ask(app, url, http, 100, 512 * 1024)
        await stream.aclose()
    assert {status for status, _, _ in answers} == {202, 503}
    for status, retry_after, body in answers:
        if status == 503:
            assert retry_after is not None and int(retry_after) >= 1
            assert body["error"]["code"] == trio_mcp.SERVER_BUSY


async def test_a_session_that_ends_lets_go_of_all_it_held() -> None:
    # Under hypercorn's trio worker only, in the test's own run: the bound is on the
    # process's RSS, and an asyncio host in a thread of this process adds its own
    # transports' buffers and allocator state to it (2.4 MiB over, once in three runs).
    from hosts import serving

    app = demo_app(max_session_bytes=2 * MiB, replay_bytes=64 * 1024, resume_grace=0)
    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
        before = rss()
        session, stream, _ = await stop_reading_and_ask(app, url, http, 100, 512 * 1024)
        assert session.budget.held > 2 * MiB  # it held something
        ended = weakref.ref(session)
        del session
        await stream.aclose()
        with trio.fail_after(10):
            while len(app.supervisor.store):
                await trio.sleep(0.01)
        left = rss() - before
        assert ended() is None
    assert left <= 2 * MiB, f"{left / MiB:.1f} MiB still held"


async def test_a_streamable_call_answered_as_json_keeps_nothing_once_answered(
    serve_app: Any,
) -> None:
    app = demo_app()
    async with serve_app(app) as url, open_client(url) as client:
        await client.initialize()
        session = app.supervisor.get(client.session_id or "", None)
        assert session is not None
        reply = await client.call(
            "tools/call", {"name": "echo", "arguments": {"text": "x" * 100_000}}
        )
        assert reply["result"]["content"][0]["text"] == "x" * 100_000
        # No event id was sent for it, so no one can resume it: it is let go.
        assert session.budget.held < 10_000


async def test_finished_streams_kept_for_resumption_give_way_before_a_request_is_refused(
    serve_app: Any,
) -> None:
    # Each call is answered on an event stream, kept afterwards for a late resumption:
    # twenty of 100 KB are more than the bound, yet the next call is taken on.
    app = demo_app(max_session_bytes=1 * MiB)
    async with serve_app(app) as url, open_client(url) as client:
        await client.initialize()
        session = app.supervisor.get(client.session_id or "", None)
        assert session is not None
        for _ in range(20):
            call = client.request(
                "tools/call", {"name": "echo", "arguments": {"text": "y" * 100_000}}
            )
            async with client.post_stream(call, accept="text/event-stream") as (response, events):
                assert response.status_code == 200
                replies = [json.loads(event.data) async for event in events if event.data]
            assert replies[-1]["result"]["content"][0]["text"] == "y" * 100_000
        assert session.budget.held <= 1 * MiB + 200_000
