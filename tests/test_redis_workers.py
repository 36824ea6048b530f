"""Two workers sharing a real redis-server (Settings.redis_url): two apps of the same
server, each with its own Server object as two processes would have, served on two
loopback ports in one test. What one worker starts, the other sees and steers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from redispeer import RedisPeer
from statelessclient import listen, open_stateless
from test_coredis_under_trio import blocked_in
from test_coredis_under_trio import client as coredis_client
from test_tasks import EXT, WAIT, Client, task_server

import trio_mcp
from trio_mcp._redis_client import RedisConnection
from trio_mcp._task_store import StoreUnavailable

Serve = Callable[[Any], Any]
ANSWER = {"action": "accept", "content": {"name": "Ada"}}


def settings(redis: RedisPeer, **changes: Any) -> trio_mcp.Settings:
    return trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0, **changes)


@asynccontextmanager
async def two_workers(
    serve_app: Serve, redis: RedisPeer, **changes: Any
) -> AsyncIterator[tuple[list[str], list[trio_mcp.App], list[dict[str, int]]]]:
    """Two workers: their URLs, apps and the counters of their tools."""
    async with AsyncExitStack() as stack:
        urls, apps, seen = [], [], []
        for _ in range(2):
            server, counters = task_server()
            app = server.asgi_app(settings(redis, **changes))
            urls.append(await stack.enter_async_context(serve_app(app)))
            apps.append(app)
            seen.append(counters)
        yield urls, apps, seen


async def test_a_task_created_on_one_worker_is_seen_and_completed_on_another(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, _):
        task_id = (await Client(a, EXT).call("quick", text="hi"))["taskId"]
        done = await Client(b, EXT).wait_for(task_id, "completed")
        assert done["result"]["content"] == [{"type": "text", "text": "echo hi"}]


async def test_a_cancel_on_another_worker_cancels_the_trio_task_where_it_runs(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, (seen_a, seen_b)):
        task_id = (await Client(a, EXT).call("forever"))["taskId"]
        there = Client(b, EXT)
        ack = await there.result("tasks/cancel", {"taskId": task_id})
        assert "status" not in ack  # acknowledged; the effect follows
        done = await there.wait_for(task_id, "cancelled")
        assert done["statusMessage"] == "cancelled by the client"
        assert (seen_a["cancelled"], seen_b["cancelled"]) == (1, 0)


async def test_an_update_on_another_worker_resumes_the_same_coroutine(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, (seen_a, seen_b)):
        here = Client(a, {**EXT, "elicitation": {}})
        there = Client(b, here.capabilities)
        task_id = (await here.call("ask_once"))["taskId"]
        (key,) = (await there.wait_for(task_id, "input_required"))["inputRequests"]
        update = {"taskId": task_id, "inputResponses": {key: ANSWER}}
        assert "status" not in await there.result("tasks/update", update)
        # The ack came once the worker running it took the answer: no ask is left.
        assert (await there.get(task_id))["status"] != "input_required"
        done = await there.wait_for(task_id, "completed")
        assert done["result"]["content"][0]["text"] == "Hi Ada"
        assert (seen_a["runs"], seen_b["runs"]) == (1, 0)  # resumed, never re-run


async def test_a_malformed_answer_on_another_worker_is_refused_and_loses_nothing(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, _):
        here = Client(a, {**EXT, "elicitation": {}})
        there = Client(b, here.capabilities)
        task_id = (await here.call("ask_once"))["taskId"]
        (key,) = (await there.wait_for(task_id, "input_required"))["inputRequests"]
        bad = {"taskId": task_id, "inputResponses": {key: {"action": "sure"}}}
        assert (await there.error("tasks/update", bad))["code"] == trio_mcp.INVALID_PARAMS
        assert list((await there.get(task_id))["inputRequests"]) == [key]


async def test_a_list_change_on_one_worker_reaches_listeners_on_every_worker_once(
    serve_app: Serve, redis: RedisPeer
) -> None:
    servers = [trio_mcp.Server("shared"), trio_mcp.Server("shared")]
    for server in servers:
        server.tool()(_hello)
    async with AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(serve_app(server.asgi_app(settings(redis))))
            for server in servers
        ]
        listeners = []
        for url in urls:
            raw = await stack.enter_async_context(open_stateless(url))
            listener = await stack.enter_async_context(listen(raw, {"toolsListChanged": True}))
            assert (await listener.next())["method"] == "notifications/subscriptions/acknowledged"
            listeners.append(listener)
        servers[0].tool(name="added")(_hello)  # a change on the first worker
        for listener in listeners:
            assert (await listener.next())["method"] == "notifications/tools/list_changed"
        # Exactly once each: a second change is the next thing either one hears.
        servers[1].tool(name="added_too")(_hello)
        for listener in listeners:
            assert (await listener.next())["method"] == "notifications/tools/list_changed"
            with pytest.raises(trio.TooSlowError):
                await listener.next(timeout=0.3)


async def _hello() -> str:
    return "hello"


async def test_a_tasks_status_on_one_worker_reaches_a_listener_on_another(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, _):
        here = Client(a, {**EXT, "elicitation": {}})
        task_id = (await here.call("ask_once"))["taskId"]
        await here.wait_for(task_id, "input_required")
        async with (
            open_stateless(b, capabilities=here.capabilities) as raw,
            listen(raw, {"taskIds": [task_id]}) as listener,
        ):
            assert (await listener.next())["method"] == "notifications/subscriptions/acknowledged"
            (key,) = (await here.get(task_id))["inputRequests"]
            await here.result("tasks/update", {"taskId": task_id, "inputResponses": {key: ANSWER}})
            while (task := (await listener.next())["params"])["status"] == "working":
                pass
        assert task["status"] == "completed"
        assert task["result"]["content"][0]["text"] == "Hi Ada"


async def test_redis_stopped_is_503_with_retry_after_then_served_again_by_itself(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _, _):
        client = Client(a, EXT)
        task_id = (await client.call("quick", text="before"))["taskId"]
        async with open_stateless(a, capabilities=EXT) as raw:
            # A listener opened before stays open through the outage.
            async with listen(raw, {"toolsListChanged": True}) as listener:
                assert (await listener.next())["method"].endswith("/acknowledged")
                redis.stop()
                for method, params in [
                    ("tasks/get", {"taskId": task_id}),
                    ("tools/call", {"name": "forever", "arguments": {}}),
                ]:
                    response = await raw.post(raw.request(method, params))
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "1"
                    assert response.json()["error"]["code"] == trio_mcp.SERVER_BUSY
                # An optional task tool runs inline meanwhile, needing no Redis.
                inline = await client.call("quick", text="inline")
                assert inline["content"] == [{"type": "text", "text": "echo inline"}]
                with pytest.raises(trio.TooSlowError):
                    await listener.next(timeout=0.2)  # still open, nothing to say
            redis.start()  # empty: the records went with it, as a lost Redis's do
            with trio.fail_after(WAIT):
                again = raw.request("tools/call", {"name": "forever", "arguments": {}})
                while (response := await raw.post(again)).status_code != 200:
                    await trio.sleep(0.05)
        task_id = response.json()["result"]["taskId"]
        assert (await Client(b, EXT).get(task_id))["status"] == "working"


async def test_a_stopping_worker_does_not_wait_out_its_readers_blocked_read(
    serve_app: Serve, redis: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader blocks in XREAD for up to its block at a time; retiring wakes it. (A
    # long block here, so that waiting it out stands out from a slow shutdown.)
    monkeypatch.setattr("trio_mcp._redis_worker.BLOCK_MS", 5000)
    app = task_server()[0].asgi_app(settings(redis))
    async with serve_app(app):
        await trio.sleep(0.2)  # the reader's read has most likely begun (either way, it stops)
        stopping = trio.current_time()
    assert trio.current_time() - stopping < 2.5


async def test_cancelled_commands_never_spend_the_connection_pool(redis: RedisPeer) -> None:
    """coredis loses a pooled connection for good when a command is cancelled
    mid-flight; every command here is shielded, so a request whose client leaves
    mid-command costs nothing, and the next command still gets a connection."""
    connection = RedisConnection(redis.url, "pool-test", max_connections=4)
    async with connection.client:
        stream = connection.key("never-written")

        for _ in range(8):  # twice what the pool holds, one by one
            with trio.move_on_after(0.01):  # the request's client leaves mid-read
                await connection.call(partial(connection.client.xread, {stream: "0-0"}, block=200))
        with trio.fail_after(1.0):  # the pool's timeout is 2 s: a spent pool fails this
            assert await connection.call(partial(connection.client.ping)) is not None


async def test_dropped_connections_of_a_blocked_reader_never_spend_the_connection_pool(
    redis: RedisPeer,
) -> None:
    """coredis 6.9 loses a pool slot each time Redis drops a connection blocked in
    XREAD (a restart, a proxy, CLIENT KILL): each drop gives its slot back here, so
    a worker outlives more drops than it has connections. (The worker's own reader
    now reads on a connection outside the pool: tests/test_redis_line.py.)"""
    connection = RedisConnection(redis.url, "drops", max_connections=2)
    stream = connection.key("never-written")

    async def read() -> None:
        with contextlib.suppress(StoreUnavailable):
            await connection.call(partial(connection.client.xread, {stream: "0-0"}, block=300))

    async with connection.client, coredis_client(redis) as admin:
        for _ in range(4):  # twice what the pool holds
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await admin.client_kill(identifier=await blocked_in(admin, "xread"))
        with trio.fail_after(1.0):  # the pool's timeout is 2 s: a spent pool fails this
            assert await connection.call(connection.client.ping) is not None
