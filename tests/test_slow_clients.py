"""Clients that are slow or stop part-way hold neither the server's tasks nor its
connections past their bounds: a body trickled in, a stream nobody reads, a burst of
connections. Each bound is measured over real sockets on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bigreplies
import httpx
import pytest
import trio
from rawhttp import (
    burst,
    host_port,
    open_sse_stream,
    post,
    receive_until,
    server_holds,
    trickle_post,
)
from sseclient import open_sse
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
#: How early a refusal may seem: the client reads its clock after its send returns and
#: the task is scheduled again, while a server in another thread (an asyncio host) may
#: have started its clock already.
EARLY = 0.05


# -- request bodies ----------------------------------------------------------------------


@pytest.mark.every_host
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
    assert timeout - EARLY <= answered < timeout + MARGIN, answered
    assert closed - answered < MARGIN, (answered, closed)


@pytest.mark.every_host
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
    assert timeout - EARLY <= answered < timeout + MARGIN, answered
    assert closed - answered < MARGIN, (answered, closed)


@pytest.mark.every_host
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
    assert all(timeout - EARLY <= answered < timeout + MARGIN for _, answered in answers), answers


# -- clients that stop reading ------------------------------------------------------------

#: Far more than the two sockets' buffers hold together (Linux lets the server's send
#: buffer grow to 4 MiB by default; the client's is a few KB).
BIG = 8_000_000
#: A reply that fits in a socket's send buffer as a fast link grows it (a few MB): only
#: TCP_NOTSENT_LOWAT makes a send of it to a client that stopped reading block at all.
BUFFERED = 1_000_000
NOTIFICATION = {"jsonrpc": "2.0", "method": "notifications/ping"}


@asynccontextmanager
async def a_client_that_stopped_reading(
    url: str, size: int = BIG
) -> AsyncIterator[tuple[str, Callable[[], bool]]]:
    """An initialized /sse session whose client, with a small receive buffer, asked for
    a reply far larger than the buffers and reads no more. Yields its endpoint, and a
    function saying whether the server still holds its connection."""
    stream, endpoint = await open_sse_stream(url, receive_buffer=4096)
    async with stream:
        assert await post(url, endpoint, INITIALIZE) == 202
        await receive_until(stream, b'"protocolVersion"')
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert await post(url, endpoint, initialized) == 202
        call = {"name": "big", "arguments": {"size": size}}
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
        assert await post(url, endpoint, request) == 202
        ports = host_port(url)[1], stream.socket.getsockname()[1]
        yield endpoint, lambda: server_holds(*ports)


async def seconds_until(condition: Callable[[], bool], limit: float = 10) -> float:
    """How long until ``condition()`` holds, looking every 50 ms; ``limit`` if never."""
    start = trio.current_time()
    while not condition() and trio.current_time() - start < limit:
        await trio.sleep(0.05)
    return trio.current_time() - start


def on_the_path_of_servers_started(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the tests' directory on the path of the servers the test starts (for
    ``bigreplies``); returns it."""
    tests = Path(__file__).parent
    path = os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    return tests


@pytest.mark.every_host
async def test_a_client_that_stops_reading_is_cut_off_within_the_stall_timeout(
    serve_app: Any,
) -> None:
    # Hypercorn sends in a shielded scope: cancelling the writer alone left this
    # connection established for good.
    settings = trio_mcp.Settings(stalled_client_timeout=bigreplies.STALL)
    async with serve_app(bigreplies.server.asgi_app(settings)) as url:
        async with a_client_that_stopped_reading(url) as (_, held):
            dropped_after = await seconds_until(lambda: not held())
    assert dropped_after < bigreplies.STALL + MARGIN, dropped_after


@pytest.mark.parametrize("size", [BUFFERED, BIG])
@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
async def test_python_dash_m_cuts_off_a_client_that_stops_reading_within_the_stall_timeout(
    monkeypatch: pytest.MonkeyPatch, server: str, size: int
) -> None:
    on_the_path_of_servers_started(monkeypatch)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    python_m = [sys.executable, "-m", "trio_mcp", "--port", str(port), "--server", server]
    with running(*python_m, "bigreplies:app"):
        await trio.to_thread.run_sync(first_event, url + "/sse")
        async with a_client_that_stopped_reading(url, size) as (_, held):
            dropped_after = await seconds_until(lambda: not held())
    assert dropped_after < bigreplies.STALL + MARGIN, dropped_after


@pytest.mark.every_host
async def test_cutting_off_a_client_that_stopped_reading_leaves_the_others_alone(
    serve_app: Any,
) -> None:
    settings = trio_mcp.Settings(stalled_client_timeout=bigreplies.STALL)
    async with serve_app(bigreplies.server.asgi_app(settings)) as url, open_sse(url) as other:
        await other.initialize()
        async with a_client_that_stopped_reading(url) as (_, held):
            await seconds_until(lambda: not held())
            assert not held()
        reply = await other.call("tools/call", {"name": "big", "arguments": {"size": 10}})
        assert not other.closed.is_set()
    assert reply["result"]["content"] == [{"type": "text", "text": "x" * 10}]


@pytest.mark.every_host
async def test_where_the_connection_cannot_be_found_the_stalled_session_ends_after_resume_grace(
    serve_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    grace = 1.0
    settings = trio_mcp.Settings(stalled_client_timeout=bigreplies.STALL, resume_grace=grace)
    app = bigreplies.server.asgi_app(settings)
    async with serve_app(bigreplies.behind_a_proxy(app)) as url:
        async with a_client_that_stopped_reading(url) as (endpoint, held):
            # Watched from inside: a POST would count as a sign of life.
            session_id = endpoint.partition("session_id=")[2]
            ended_after = await seconds_until(lambda: app.supervisor.get(session_id, None) is None)
            assert await post(url, endpoint, NOTIFICATION) == 404
            # Only the host can let go of the connection: it is still held.
            assert held()
    assert ended_after < bigreplies.STALL + grace + MARGIN, ended_after
    assert "could not find the connection" in caplog.text


async def test_hypercorn_with_the_example_config_has_the_kernel_cut_off_what_the_app_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tests = Path(__file__).parent
    port = free_port()
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("TRIO_MCP_PORT", str(port))
    monkeypatch.setenv("TRIO_MCP_STALLED_CLIENT_TIMEOUT", str(bigreplies.STALL))
    config = tests.parent / "examples" / "hypercorn_conf.py"
    url = f"http://127.0.0.1:{port}"
    hypercorn = [sys.executable, "-m", "hypercorn", "-k", "trio", "-c", f"file:{config}"]
    with running(*hypercorn, "bigreplies:proxied") as server:
        await trio.to_thread.run_sync(first_event, url + "/sse")
        async with a_client_that_stopped_reading(url) as (_, held):
            dropped_after = await seconds_until(lambda: not held())
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=10)
    assert "could not find the connection" in output  # the app could not: the kernel did
    assert dropped_after < bigreplies.STALL + MARGIN, dropped_after


def test_run_gives_every_connection_the_stall_timeout_as_tcp_user_timeout() -> None:
    # The kernel then aborts a connection whose peer takes nothing for that long, with
    # or without the app's help; accepted sockets inherit it from the listener.
    with listening_socket("127.0.0.1", 0, 2.5) as listener:
        listener.listen()
        with socket.create_connection(listener.getsockname()), listener.accept()[0] as accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500


# -- bursts of connections ---------------------------------------------------------------


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
async def test_python_dash_m_takes_a_burst_of_a_thousand_connects_without_a_drop(
    server: str,
) -> None:
    # Hypercorn's default backlog (100) dropped handshakes in such a burst: connections
    # got through only after the kernel's retransmissions, seconds later.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(sys.executable, "-m", "trio_mcp", "--port", str(port), "--server", server):
        await trio.to_thread.run_sync(first_event, url + "/sse")
        with trio.fail_after(60):
            outcomes = await burst(url, 1000, "/mcp")
    assert Counter(status for status, _ in outcomes) == {400: 1000}  # no session: refused
    assert sum(retransmitted for _, retransmitted in outcomes) == 0
