"""Sessions shared on Redis in the deployments the README shows: ``hypercorn -k trio -w
2`` (the kernel hands each connection to either worker process) and nginx round-robin
over two instances with no stickiness (examples/nginx-scale.conf, run as shipped but
for its addresses)."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from peers import program
from redispeer import RedisPeer
from sseclient import event_stream
from streamclient import McpClient, open_client
from test_nginx import accepting, configure, free_port
from test_redis_processes import paused, spawned_workers, worker_processes

import trio_mcp
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_takeover import LOST_CODE

Serve = Callable[[Any], Any]
PROJECT = Path(__file__).resolve().parent.parent
CONFIG = PROJECT / "examples" / "nginx-scale.conf"
WAIT = 10.0
HYPERCORN_1 = [
    sys.executable, "-m", "hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}", "redis_target:app",
]  # fmt: skip
HYPERCORN_2 = [
    sys.executable, "-m", "hypercorn", "-k", "trio", "-w", "2",
    "-b", "127.0.0.1:{port}", "redis_target:app",
]  # fmt: skip


def call(request_id: int, name: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def forwarded(connection: RedisConnection, session_id: str) -> int:
    """How many POSTs for the session reached it through another worker: the entries
    its owner's control stream got from the forwarding script."""
    owner = await connection.call(
        lambda: connection.client.hget(connection.key("session", session_id), "owner")
    )
    control = connection.worker_key(str(owner), "control")
    entries = await connection.call(lambda: connection.client.xrange(control, "-", "+"))
    return sum(
        1
        for e in entries
        if e.field_values.get("op") == "s.deliver" and e.field_values.get("sid") == session_id
    )


async def both_workers_up(connection: RedisConnection) -> None:
    """Wait until both worker processes are alive in Redis: the port answers once the
    first listens, and until the second does every connection goes to the first."""
    pattern = connection.worker_key("*", "alive")
    with trio.fail_after(WAIT):
        while len([key async for key in connection.client.scan_iter(pattern)]) < 2:
            await trio.sleep(0.05)


def fresh_connections() -> httpx.AsyncClient:
    # No keep-alive: each POST is a new connection, which goes to the worker not paused.
    return httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0))


def other_worker(parent: int, owner: int) -> int:
    (other,) = set(spawned_workers(parent)) - {owner}
    return other


async def test_hypercorn_two_workers_serve_an_sse_session_whose_posts_land_on_both(
    redis: RedisPeer,
) -> None:
    with worker_processes(HYPERCORN_2, redis, worker_timeout=WAIT) as (url, parent):
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client, fresh_connections() as http:
            await both_workers_up(connection)
            async with event_stream(http, url) as events:

                async def reply() -> dict[str, Any]:
                    with trio.fail_after(WAIT):
                        async for event in events:
                            if event.data:
                                message: dict[str, Any] = json.loads(event.data)
                                return message
                    raise AssertionError("the stream ended")

                with trio.fail_after(WAIT):
                    endpoint = (await events.__anext__()).data
                session_id = endpoint.rsplit("=", 1)[1]
                init = {
                    "jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}},
                }  # fmt: skip
                assert (await http.post(url + endpoint, json=init)).status_code == 202
                assert (await reply())["id"] == 0
                notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                assert (await http.post(url + endpoint, json=notified)).status_code == 202
                assert (await http.post(url + endpoint, json=call(1, "worker"))).status_code == 202
                owner = int((await reply())["result"]["content"][0]["text"])
                other = other_worker(parent, owner)
                before = await forwarded(connection, session_id)
                with paused(other):  # the owner takes the POST itself
                    echo = call(2, "echo", text="owned")
                    assert (await http.post(url + endpoint, json=echo)).status_code == 202
                assert await forwarded(connection, session_id) == before
                assert (await reply())["result"]["content"][0]["text"] == "owned"
                with paused(owner):  # the other worker forwards it, answering 202 alone
                    echo = call(3, "echo", text="forwarded")
                    assert (await http.post(url + endpoint, json=echo)).status_code == 202
                    assert await forwarded(connection, session_id) == before + 1
                assert (await reply())["result"]["content"][0]["text"] == "forwarded"
                with trio.move_on_after(0.3):
                    async for event in events:
                        if event.data:
                            raise AssertionError(f"an extra event: {event.data}")


async def test_hypercorn_two_workers_serve_a_streamable_session_whose_posts_land_on_both(
    redis: RedisPeer,
) -> None:
    with worker_processes(HYPERCORN_2, redis, worker_timeout=WAIT) as (url, parent):
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client, open_client(url) as client:
            await both_workers_up(connection)
            await client.http.aclose()
            client.http = fresh_connections()
            await client.initialize()
            reply = await client.call("tools/call", {"name": "worker", "arguments": {}})
            owner = int(reply["result"]["content"][0]["text"])
            other = other_worker(parent, owner)
            before = await forwarded(connection, client.session_id)
            with paused(other):  # the owner takes the POST itself
                reply = await client.call("tools/call", echo_params("owned"))
            assert reply["result"]["content"] == [{"type": "text", "text": "owned"}]
            assert await forwarded(connection, client.session_id) == before
            async with trio.open_nursery() as nursery:
                replies: list[dict[str, Any]] = []

                async def forwarded_call() -> None:
                    replies.append(await client.call("tools/call", echo_params("forwarded")))

                with paused(owner):
                    # The other worker forwards the POST, then waits for the owner's reply.
                    nursery.start_soon(forwarded_call)
                    with trio.fail_after(WAIT):
                        while await forwarded(connection, client.session_id) == before:
                            await trio.sleep(0.02)
            assert replies[0]["result"]["content"] == [{"type": "text", "text": "forwarded"}]
            # A client that takes event streams has its call run where it lands, as a
            # guest of the session: the owner, stopped, plays no part.
            with paused(owner):
                response = await client.post(
                    client.request("tools/call", {"name": "worker", "arguments": {}})
                )
            assert response.status_code == 200, response.text
            assert response.json()["result"]["content"][0]["text"] == str(other)
            await client.http.aclose()


async def test_a_killed_guests_call_resumes_on_the_owner_as_the_worker_lost_error(
    redis: RedisPeer,
) -> None:
    # Two instances (hypercorn -w 2 ends every worker when one dies, so the guest is an
    # instance of its own): the call runs on B, B is killed, the client resumes on A.
    with (
        worker_processes(HYPERCORN_1, redis, worker_timeout=2.0) as (a, _),
        worker_processes(HYPERCORN_1, redis, worker_timeout=2.0) as (b, b_parent),
    ):
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client, open_client(a) as client:
            await both_workers_up(connection)
            await client.initialize()
            there = McpClient(client.http, b + "/mcp")
            there.session_id, there.version = client.session_id, client.version
            call = there.request("tools/call", {"name": "slow", "arguments": {"seconds": 60}})
            async with there.post_stream(call, accept="text/event-stream") as (_, events):
                with trio.fail_after(WAIT):
                    priming = await events.__anext__()
                (b_worker,) = spawned_workers(b_parent)
                os.kill(b_worker, signal.SIGKILL)  # the guest, with the call running
                with trio.fail_after(WAIT), pytest.raises(httpx.TransportError):
                    async for event in events:
                        raise AssertionError(f"an event from a killed worker: {event}")
            assert priming.id and not priming.data
            # Once A's heartbeat finds B lost, the call is answered with the error, once,
            # and its stream ends.
            async with client.get_stream(last_event_id=priming.id) as (response, events):
                assert response.status_code == 200
                with trio.fail_after(WAIT):
                    replies = [json.loads(e.data) async for e in events if e.data]
            assert [r["id"] for r in replies] == [call["id"]]
            assert replies[0]["error"]["code"] == LOST_CODE


def echo_params(text: str) -> dict[str, Any]:
    return {"name": "echo", "arguments": {"text": text}}


# -- nginx over two instances -----------------------------------------------------------


def render_scale(listen: int, upstreams: list[str]) -> str:
    """examples/nginx-scale.conf with this test's addresses."""
    text = CONFIG.read_text()
    servers = iter(upstreams)
    text, count = re.subn(
        r"^(\s*)server \S+:\d+;", lambda m: f"{m[1]}server {next(servers)};", text, flags=re.M
    )
    assert count == len(upstreams) == 2, "nginx-scale.conf should name two instances"
    text, count = re.subn(r"^(\s*)listen \S+;", rf"\1listen 127.0.0.1:{listen};", text, flags=re.M)
    assert count == 1
    return text


@asynccontextmanager
async def nginx_over(
    upstreams: list[str], prefix: Path, connections: int = 64
) -> AsyncIterator[str]:
    """nginx, configured by examples/nginx-scale.conf, in front of ``upstreams``;
    ``connections`` is its worker_connections (each proxied stream takes two)."""
    executable = program("nginx", "nginx")
    port = free_port()
    site = render_scale(port, [u.removeprefix("http://") for u in upstreams])
    conf = configure(prefix, site, "")
    text = conf.read_text()
    conf.write_text(text.replace("worker_connections 64;", f"worker_connections {connections};"))
    process = await trio.lowlevel.open_process(
        [executable, "-p", prefix, "-c", conf, "-e", prefix / "error.log", "-g", "daemon off;"],
    )
    try:
        assert await accepting(port, process), (prefix / "error.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.terminate()
                with trio.move_on_after(5):
                    await process.wait()
                if process.poll() is None:
                    process.kill()
                    await process.wait()


def shared_app(redis: RedisPeer) -> trio_mcp.App:
    server = trio_mcp.Server("cluster", "1")

    @server.tool()
    async def echo(text: str) -> str:
        return text

    @server.tool()
    async def steps(count: int, ctx: trio_mcp.Context) -> str:
        for step in range(count):
            await ctx.report_progress(step, count)
            await trio.sleep(0.01)
        return f"{count} steps"

    return server.asgi_app(trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0))


@asynccontextmanager
async def cluster(
    serve_app: Serve, redis: RedisPeer, prefix: Path
) -> AsyncIterator[tuple[str, list[trio_mcp.App]]]:
    async with AsyncExitStack() as stack:
        apps = [shared_app(redis), shared_app(redis)]
        urls = [await stack.enter_async_context(serve_app(app)) for app in apps]
        yield await stack.enter_async_context(nginx_over(urls, prefix)), apps


async def served_by_other(redis: RedisPeer, apps: list[trio_mcp.App]) -> int:
    """POSTs of the one session that nginx sent to the instance not holding it: those
    it forwarded, and the calls it ran itself as a guest of the session."""
    (session_id,) = [
        s.id for app in apps for s in app.supervisor._local if app.supervisor.get(s.id, None)
    ]
    guest_calls = sum(app.supervisor.shared.guests.calls for app in apps)  # type: ignore[union-attr]
    connection = RedisConnection(redis.url, "trio-mcp")
    async with connection.client:
        return await forwarded(connection, session_id) + guest_calls


def test_the_readme_shows_the_scale_config_these_tests_run() -> None:
    readme = (PROJECT / "README.md").read_text()
    assert f"```nginx\n{CONFIG.read_text()}```" in readme


async def test_the_official_client_completes_a_streamable_session_through_nginx_over_two(
    serve_app: Serve, redis: RedisPeer, tmp_path: Path
) -> None:
    async with (
        cluster(serve_app, redis, tmp_path) as (proxy, apps),
        streamable_http_client(proxy + "/mcp") as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        texts = []
        for n in range(6):
            result = await client.call_tool("echo", {"text": f"call {n}"})
            texts.append(result.content[0].text)  # type: ignore[union-attr]
        stepped = await client.call_tool("steps", {"count": 3}, progress_callback=on_progress)
        assert texts == [f"call {n}" for n in range(6)]
        assert stepped.content[0].text == "3 steps"  # type: ignore[union-attr]
        assert progress == [0, 1, 2]
        # One session, on one instance; nginx spread the requests over both.
        assert sorted(len(app.supervisor.store) for app in apps) == [0, 1]
        assert await served_by_other(redis, apps) > 0


async def test_the_official_client_completes_an_sse_session_through_nginx_over_two(
    serve_app: Serve, redis: RedisPeer, tmp_path: Path
) -> None:
    async with (
        cluster(serve_app, redis, tmp_path) as (proxy, apps),
        sse_client(proxy + "/sse") as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        texts = []
        for n in range(6):
            result = await client.call_tool("echo", {"text": f"call {n}"})
            texts.append(result.content[0].text)  # type: ignore[union-attr]
        assert texts == [f"call {n}" for n in range(6)]
        assert sorted(len(app.supervisor.store) for app in apps) == [0, 1]
        assert await served_by_other(redis, apps) > 0
