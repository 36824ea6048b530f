"""Clients that are slow or stop part-way hold neither the server's tasks nor its
connections past their bounds: a body trickled in, a stream nobody reads, a burst of
connections. Each bound is measured over real sockets on loopback."""

from __future__ import annotations

import json
import socket
import sys
from collections import Counter
from typing import Any

import httpx
import trio
from rawhttp import burst, open_sse_stream, trickle_post
from test_entry_points import first_event, free_port, running

import trio_mcp
from trio_mcp._demo import demo
from trio_mcp._run import listening_socket

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
BOTH = {"accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "slow-clients-test", "version": "1"},
    },
}

#: How late past its bound a refusal may come on this shared 2-core machine.
MARGIN = 1.0


# -- request bodies ----------------------------------------------------------------------


async def test_a_body_trickled_to_mcp_past_body_timeout_gets_408_and_the_connection_closes(
    serve_app: Any,
) -> None:
    timeout = 1.0
    async with serve_app(demo.asgi_app(trio_mcp.Settings(body_timeout=timeout))) as url:
        status, headers, body, answered, closed = await trickle_post(
            url, "/mcp", PING, interval=0.2, headers=BOTH
        )
    assert status == 408
    assert json.loads(body)["error"]["code"] == -32600
    assert headers["connection"] == "close"
    assert timeout <= answered < timeout + MARGIN, answered
    assert closed - answered < MARGIN, (answered, closed)


async def test_a_body_trickled_to_messages_past_body_timeout_gets_408_and_the_connection_closes(
    serve_app: Any,
) -> None:
    timeout = 1.0
    async with serve_app(demo.asgi_app(trio_mcp.Settings(body_timeout=timeout))) as url:
        stream, endpoint = await open_sse_stream(url)
        async with stream:
            status, headers, body, answered, closed = await trickle_post(
                url, endpoint, PING, interval=0.2
            )
    assert status == 408
    assert json.loads(body)["error"]["code"] == -32600
    assert headers["connection"] == "close"
    assert timeout <= answered < timeout + MARGIN, answered
    assert closed - answered < MARGIN, (answered, closed)


async def test_twenty_trickled_bodies_do_not_delay_a_well_behaved_request(
    serve_app: Any,
) -> None:
    timeout = 2.0
    answers: list[tuple[int, float]] = []

    async def trickle(url: str) -> None:
        status, _, _, answered, _ = await trickle_post(
            url, "/mcp", PING, interval=0.5, headers=BOTH
        )
        answers.append((status, answered))

    async with serve_app(demo.asgi_app(trio_mcp.Settings(body_timeout=timeout))) as url:
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(trickle, url)
            async with httpx.AsyncClient() as http:
                start = trio.current_time()
                response = await http.post(url + "/mcp", json=INITIALIZE, headers=BOTH)
                took = trio.current_time() - start
    assert response.status_code == 200
    assert took < timeout / 2, took
    assert len(answers) == 20
    assert {status for status, _ in answers} == {408}
    assert all(timeout <= answered < timeout + MARGIN for _, answered in answers), answers


# -- clients that stop reading ------------------------------------------------------------


def test_run_gives_every_connection_the_stall_timeout_as_tcp_user_timeout() -> None:
    # The kernel then aborts a connection whose peer takes nothing for that long, with
    # or without the app's help; accepted sockets inherit it from the listener.
    with listening_socket("127.0.0.1", 0, 2.5) as listener:
        listener.listen()
        with socket.create_connection(listener.getsockname()), listener.accept()[0] as accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500


# -- bursts of connections ---------------------------------------------------------------


async def test_python_dash_m_takes_a_burst_of_a_thousand_connects_without_a_drop() -> None:
    # Hypercorn's default backlog (100) dropped handshakes in such a burst: connections
    # got through only after the kernel's retransmissions, seconds later.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(sys.executable, "-m", "trio_mcp", "--port", str(port)):
        await trio.to_thread.run_sync(first_event, url + "/sse")
        with trio.fail_after(60):
            outcomes = await burst(url, 1000, "/mcp")
    assert Counter(status for status, _ in outcomes) == {400: 1000}  # no session: refused
    assert sum(retransmitted for _, retransmitted in outcomes) == 0
