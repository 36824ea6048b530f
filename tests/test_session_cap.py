"""At max_sessions: which session gives way to a new client, and what a refused one is told."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from sseclient import open_sse
from streamclient import open_client

import trio_mcp
from trio_mcp._supervisor import RETRY_WHEN_ALL_BUSY

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
}
BOTH = {"accept": "application/json, text/event-stream"}


def demo_app(**settings: Any) -> trio_mcp.App:
    from trio_mcp._demo import demo

    return demo.asgi_app(trio_mcp.Settings(**settings))


async def leave_sse_session(app: trio_mcp.App, url: str) -> str:
    """Open an HTTP+SSE session, drop its stream, and wait until the server noticed;
    returns the session's POST endpoint."""
    async with open_sse(url) as sse:
        await sse.initialize()
        endpoint, session_id = sse.endpoint, sse.session_id
    with trio.fail_after(5):
        while (session := app.supervisor.store.get(session_id)) and session.main.attached:
            await trio.sleep(0.01)
    return endpoint


async def test_at_the_cap_a_session_waiting_out_its_grace_gives_way_to_a_new_client(
    serve_app: Any,
) -> None:
    app = demo_app(max_sessions=2, resume_grace=30, sse_retry_ms=0)
    async with serve_app(app) as url:
        gone = await leave_sse_session(app, url)
        async with open_sse(url) as staying, open_sse(url) as newcomer:
            await newcomer.initialize()  # admitted at once, though 30 s of grace were left
            assert (await staying.call("ping"))["result"] == {}
            assert len(app.supervisor.store) == 2
            async with httpx.AsyncClient() as http:
                ended = await http.post(url + gone, json={"jsonrpc": "2.0", "method": "ping"})
    assert ended.status_code == 404


async def test_at_the_cap_the_streamable_session_idle_longest_gives_way(serve_app: Any) -> None:
    app = demo_app(max_sessions=2, sse_retry_ms=0)
    async with serve_app(app) as url, open_client(url) as first, open_client(url) as second:
        await first.initialize()
        await second.initialize()
        await first.call("ping")  # now the second has been idle longest
        async with httpx.AsyncClient() as http:
            admitted = await http.post(url + "/mcp", json=INITIALIZE, headers=BOTH)
        assert admitted.status_code == 200
        assert (await first.call("ping"))["result"] == {}
        ended = await second.post(second.request("ping"))
    assert ended.status_code == 404  # the client's cue to initialize again


async def test_at_the_cap_a_session_with_a_call_running_does_not_give_way(
    serve_app: Any,
) -> None:
    app = demo_app(max_sessions=1, sse_retry_ms=0)
    async with serve_app(app) as url, open_client(url) as busy, trio.open_nursery() as nursery:
        await busy.initialize()
        call = busy.request("tools/call", {"name": "sleep", "arguments": {"seconds": 1}})
        nursery.start_soon(busy.post, call, "application/json")  # no stream: a JSON answer
        session = app.supervisor.store.get(busy.session_id or "")
        assert session is not None
        with trio.fail_after(5):
            while session.idle_since() is not None:  # until the call runs
                await trio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            refused = await http.post(url + "/mcp", json=INITIALIZE, headers=BOTH)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) == RETRY_WHEN_ALL_BUSY
    assert refused.json()["error"]["code"] == trio_mcp.SERVER_BUSY


async def test_a_refused_client_is_told_when_the_idle_session_may_give_way_and_then_gets_in(
    serve_app: Any,
) -> None:
    # The idle session's client was told to reconnect after 1.5 s: it keeps its place that
    # long, and the newcomer is told when that is, not a number unrelated to it.
    app = demo_app(max_sessions=1, resume_grace=30, sse_retry_ms=1500)
    async with serve_app(app) as url, httpx.AsyncClient() as http:
        gone = await leave_sse_session(app, url)
        left_at = trio.current_time()
        refused = await http.post(url + "/mcp", json=INITIALIZE, headers=BOTH)
        assert refused.status_code == 503
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 2
        await trio.sleep_until(left_at + retry_after)
        admitted = await http.post(url + "/mcp", json=INITIALIZE, headers=BOTH)
        assert admitted.status_code == 200
        ended = await http.post(url + gone, json={"jsonrpc": "2.0", "method": "ping"})
    assert ended.status_code == 404
