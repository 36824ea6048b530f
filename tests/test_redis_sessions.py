"""HTTP+SSE and Streamable HTTP sessions across two workers sharing a real redis-server
(Settings.redis_url): two apps of the same server, each with its own Server object as
two processes would have, on two loopback ports. A session lives on the worker that
opened it; POSTs and streams reach it from the other one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from redispeer import RedisPeer
from sseclient import Event, event_stream, open_sse
from streamclient import McpClient, open_client

import trio_mcp
from trio_mcp._jsonrpc import Notification
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_sessions import (
    _GATHER_PASSES,
    _READERS,
    DROPPED_MS,
    Forwarded,
    RedisSessions,
)
from trio_mcp._session import KEPT_REQUEST_STREAMS
from trio_mcp._stream import new_stream_key
from trio_mcp._task_store import StoreUnavailable

Serve = Callable[[Any], Any]
#: Bound on every wait for something the other worker does (through Redis).
WAIT = 10.0


def make_server() -> trio_mcp.Server:
    server = trio_mcp.Server("shared", "1")

    @server.tool()
    async def echo(text: str) -> str:
        return text

    @server.tool()
    async def steps(count: int, ctx: trio_mcp.Context) -> str:
        for step in range(count):
            await ctx.report_progress(step, count)
        return f"{count} steps"

    @server.tool()
    async def wait_for(seconds: float) -> str:
        await trio.sleep(seconds)
        return "waited"

    return server


def settings(redis: RedisPeer, **changes: Any) -> trio_mcp.Settings:
    return trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0, **changes)


@asynccontextmanager
async def two_workers(
    serve_app: Serve, redis: RedisPeer, **changes: Any
) -> AsyncIterator[tuple[list[str], list[trio_mcp.App]]]:
    async with AsyncExitStack() as stack:
        urls, apps = [], []
        for _ in range(2):
            app = make_server().asgi_app(settings(redis, **changes))
            urls.append(await stack.enter_async_context(serve_app(app)))
            apps.append(app)
        yield urls, apps


def call(request_id: int, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def initialize_over(
    http: httpx.AsyncClient, base: str, events: AsyncIterator[Event]
) -> tuple[str, str | None]:
    """Initialize the HTTP+SSE session whose stream is ``events``; -> the URL to POST
    to and the id of the last event seen."""
    with trio.fail_after(WAIT):
        endpoint = await events.__anext__()
    assert endpoint.event == "endpoint"
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    assert (await http.post(base + endpoint.data, json=init)).status_code == 202
    last_id, reply = await next_message(events)
    assert reply["id"] == 1
    return base + endpoint.data, last_id


async def next_message(events: AsyncIterator[Event]) -> tuple[str | None, dict[str, Any]]:
    with trio.fail_after(WAIT):
        async for event in events:
            if event.data:
                return event.id, json.loads(event.data)
    raise AssertionError("the stream ended")


# -- HTTP+SSE ---------------------------------------------------------------------------


async def test_a_post_on_another_worker_reaches_the_session_and_its_reply_the_stream(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), (app_a, app_b)), open_sse(a) as sse:
        await sse.initialize()
        assert len(app_a.supervisor.store) == 1 and len(app_b.supervisor.store) == 0
        sse.expect({7: "tools/call"})
        async with httpx.AsyncClient(timeout=WAIT) as http:
            response = await http.post(
                b + sse.endpoint,
                json=call(7, "echo", text="via b"),
            )
        assert response.status_code == 202, response.text
        reply = await sse.reply_to(7, timeout=WAIT)
        assert reply["result"]["content"] == [{"type": "text", "text": "via b"}]
        assert len(app_b.supervisor.store) == 0  # it ran where the session lives


async def test_a_post_for_an_unknown_session_on_any_worker_is_404(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((_, b), _), httpx.AsyncClient() as http:
        response = await http.post(
            b + "/messages/?session_id=" + "0" * 32, json=call(1, "echo", text="x")
        )
        assert response.status_code == 404


async def test_a_dropped_stream_resumes_on_another_worker_with_exactly_what_it_missed(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), _),
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        async with event_stream(http, a) as events:
            post_url, last_id = await initialize_over(http, a, events)
        # The stream on A is gone; while it is, three calls are answered on its log.
        await http.post(post_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        for request_id in (2, 3, 4):
            response = await http.post(
                post_url, json=call(request_id, "echo", text=str(request_id))
            )
            assert response.status_code == 202
        seen: list[int] = []
        async with event_stream(http, b, last_id) as events:
            with trio.fail_after(WAIT):
                endpoint = await events.__anext__()
            assert endpoint.event == "endpoint" and endpoint.data in post_url
            while len(seen) < 3:
                event_id, message = await next_message(events)
                seen.append(message["id"])
                assert event_id is not None
            # Nothing more arrives: exactly once each.
            with trio.move_on_after(0.5):
                extra = await next_message(events)
                raise AssertionError(f"an extra event: {extra}")
        assert seen == [2, 3, 4]


async def test_a_stream_open_longer_than_the_keys_expiry_still_resumes_on_another_worker(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # What Redis keeps of a session's streams expires after max(resume_grace,
    # session_idle_timeout) + redis_worker_timeout: 1.3 s here. A live session's main
    # stream must outlast that, however long its client stays.
    async with (
        two_workers(serve_app, redis, resume_grace=0.2, session_idle_timeout=0.3) as (
            (a, b),
            _,
        ),
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        async with event_stream(http, a) as events:
            post_url, last_id = await initialize_over(http, a, events)
            await trio.sleep(2.0)
        async with event_stream(http, b, last_id) as events:
            with trio.fail_after(WAIT):
                endpoint = await events.__anext__()
            assert endpoint.event == "endpoint" and endpoint.data in post_url
            response = await http.post(post_url, json=call(2, "echo", text="late"))
            assert response.status_code == 202
            _, message = await next_message(events)
        assert message["id"] == 2


# -- Streamable HTTP --------------------------------------------------------------------


@asynccontextmanager
async def initialized_on(url: str) -> AsyncIterator[McpClient]:
    async with open_client(url) as client:
        await client.initialize()
        yield client


def on(client: McpClient, base: str) -> McpClient:
    """The same session, addressed through another worker."""
    other = McpClient(client.http, base + "/mcp")
    other.session_id, other.version = client.session_id, client.version
    other._next_id = 100
    return other


async def test_a_call_on_another_worker_is_answered_as_json(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), (_, app_b)), initialized_on(a) as client:
        there = on(client, b)
        reply = await there.call("tools/call", {"name": "echo", "arguments": {"text": "json"}})
        assert reply["result"]["content"] == [{"type": "text", "text": "json"}]
        assert len(app_b.supervisor.store) == 0


async def test_a_call_on_another_worker_streams_its_notifications_then_its_reply(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _), initialized_on(a) as client:
        there = on(client, b)
        request = there.request(
            "tools/call",
            {"name": "steps", "arguments": {"count": 3}, "_meta": {"progressToken": "p"}},
        )
        async with there.post_stream(request) as (response, events):
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["mcp-session-id"] == client.session_id
            got = []
            with trio.fail_after(WAIT):
                async for event in events:
                    if event.data:
                        got.append(there.check(event.json()))
        assert [m.get("method") for m in got] == ["notifications/progress"] * 3 + [None]
        assert got[-1]["result"]["content"] == [{"type": "text", "text": "3 steps"}]


async def test_a_get_stream_on_another_worker_carries_the_sessions_messages(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), (app_a, _)), initialized_on(a) as client:
        there = on(client, b)
        async with there.get_stream() as (response, events):
            assert response.status_code == 200
            # A change on the owner's server reaches the session's standalone stream,
            # read on B: the session has nothing listed, so a log message it asked for.
            reply = await client.call("logging/setLevel", {"level": "debug"})
            assert reply["result"] == {}
            session = app_a.supervisor.get(client.session_id or "", None)
            assert session is not None
            await session.notify("notifications/message", {"level": "info", "data": "hi"})
            _, message = await next_message(events)
            assert message["method"] == "notifications/message"


async def test_a_get_stream_open_longer_than_the_keys_expiry_still_resumes_elsewhere(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # The keys' expiry here: max(0.1, 1.0) + redis_worker_timeout = 2 s.
    async with (
        two_workers(serve_app, redis, resume_grace=0.1, session_idle_timeout=1.0) as (
            (a, b),
            (app_a, _),
        ),
        initialized_on(a) as client,
    ):
        async with client.get_stream() as (response, events):
            assert response.status_code == 200
            with trio.fail_after(WAIT):
                priming = await events.__anext__()
            assert priming.id and not priming.data
            await trio.sleep(2.5)
        there = on(client, b)
        async with there.get_stream(last_event_id=priming.id) as (response, events):
            assert response.status_code == 200
            session = app_a.supervisor.get(client.session_id or "", None)
            assert session is not None
            await session.notify("notifications/message", {"level": "info", "data": "hi"})
            _, message = await next_message(events)
        assert message["params"]["data"] == "hi"


async def stored_streams(connection: RedisConnection) -> list[str]:
    return [key async for key in connection.client.scan_iter(connection.key("stream", "*"))]


async def test_a_call_answered_as_json_is_settled_in_redis_but_its_events_never_stored(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Answered as one body, a request stream is never resumed (its client holds no
    # event id): Redis needs to know the request was answered, not what the answer was.
    async with (
        two_workers(serve_app, redis) as ((a, _), _),
        initialized_on(a) as client,
    ):
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            before = await stored_streams(connection)
            reply = await client.call("tools/call", {"name": "echo", "arguments": {"text": "j"}})
            assert reply["result"]["content"] == [{"type": "text", "text": "j"}]
            assert await stored_streams(connection) == before
            pending = connection.key("pending", client.session_id or "")
            assert await connection.call(partial(connection.client.hgetall, pending)) == {}


async def wait_then_replay_elsewhere(
    client: McpClient, other: str, seconds: float, **accept: str
) -> None:
    """Call ``wait_for(seconds)`` on the client's worker, answered as an event stream,
    then resume that stream from its priming event on ``other``: the reply again."""
    request = client.request("tools/call", {"name": "wait_for", "arguments": {"seconds": seconds}})
    async with client.post_stream(request, **accept) as (response, events):
        assert response.headers["content-type"] == "text/event-stream"
        with trio.fail_after(WAIT):
            priming = await events.__anext__()
        assert priming.id and not priming.data
        _, reply = await next_message(events)
    assert reply["result"]["content"] == [{"type": "text", "text": "waited"}]
    async with on(client, other).get_stream(last_event_id=priming.id) as (response, events):
        assert response.status_code == 200
        _, replayed = await next_message(events)
    assert replayed == reply


async def test_a_call_too_slow_for_a_json_body_is_stored_whole_and_resumes_elsewhere(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Its events were held while it might still be answered as one body; served as
    # events, each of them is in Redis before its client sees it.
    async with (
        two_workers(serve_app, redis, json_reply_wait=0.1) as ((a, b), _),
        initialized_on(a) as client,
    ):
        await wait_then_replay_elsewhere(client, b, 0.3)


async def test_a_request_stream_answered_after_the_keys_expiry_still_resumes_elsewhere(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # The keys' expiry here: max(0.1, 0.3) + redis_worker_timeout = 1.3 s; the call's
    # first event comes after it.
    async with (
        two_workers(serve_app, redis, resume_grace=0.1, session_idle_timeout=0.3) as ((a, b), _),
        initialized_on(a) as client,
    ):
        await wait_then_replay_elsewhere(client, b, 2.0, accept="text/event-stream")


async def test_a_resumption_racing_its_forwarded_post_to_the_owner_still_gets_the_reply(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, _), (app_a, app_b)),
        initialized_on(a) as client,
    ):
        owner, other = app_a.supervisor.shared, app_b.supervisor.shared
        assert owner is not None and other is not None and client.session_id
        key = new_stream_key()
        request = client.request("tools/call", {"name": "wait_for", "arguments": {"seconds": 0.2}})
        # As the owner's reader takes them in one read: a POST forwarded from the other
        # worker, then its client's resumption of the POST's stream there (the call
        # answers later: a stream ended for want of it would refuse its reply).
        forwarded = {"sid": client.session_id, "k": key, "c": "1", "n": "0"}
        owner.on_control({"op": "s.deliver", "d": json.dumps(request), **forwarded})
        attach = {"sid": client.session_id, "k": key, "w": "w", "from": other.connection.worker}
        owner.on_control({"op": "s.attach", **attach})
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            stream = connection.key("stream", key)
            with trio.fail_after(WAIT):
                while not (
                    entries := await connection.call(
                        lambda: connection.client.xrange(stream, "0-1", "0-1")
                    )
                ):
                    await trio.sleep(0.02)
        reply = json.loads(entries[0].field_values["d"])
        assert reply["id"] == request["id"]
        assert reply["result"]["content"] == [{"type": "text", "text": "waited"}]


async def test_a_request_stream_resumes_on_another_worker_with_what_it_missed(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _), initialized_on(a) as client:
        request = client.request(
            "tools/call",
            {"name": "steps", "arguments": {"count": 4}, "_meta": {"progressToken": "p"}},
        )
        seen: list[dict[str, Any]] = []
        async with client.post_stream(request, accept="text/event-stream, application/json") as (
            response,
            events,
        ):
            assert response.status_code == 200
            last_id, first = await next_message(events)
            seen.append(first)
        # Dropped after one event; the rest is read from Redis through B.
        there = on(client, b)
        assert last_id is not None
        async with there.get_stream(last_event_id=last_id) as (response, events):
            assert response.status_code == 200
            with trio.fail_after(WAIT):
                async for event in events:
                    if event.data:
                        seen.append(event.json())
        assert [m.get("params", {}).get("progress") for m in seen[:4]] == [0, 1, 2, 3]
        assert seen[4]["result"]["content"] == [{"type": "text", "text": "4 steps"}]
        assert len(seen) == 5


async def test_a_delete_on_another_worker_ends_the_session(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), (app_a, _)), initialized_on(a) as client:
        response = await client.http.delete(b + "/mcp", headers=on(client, b).headers())
        assert response.status_code == 200
        with trio.fail_after(WAIT):
            while len(app_a.supervisor.store):
                await trio.sleep(0.01)
        gone = await on(client, b).post(client.request("ping"))
        assert gone.status_code == 404


async def test_another_principals_session_is_not_found_on_another_worker(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _), initialized_on(a) as client:
        # No auth here: the principal is None on both; a wrong session id is 404.
        there = on(client, b)
        there.session_id = "f" * 32
        response = await there.post(there.request("ping"))
        assert response.status_code == 404


async def test_while_redis_is_down_a_post_elsewhere_is_503_and_open_streams_stay_open(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, b), _), open_sse(a) as sse:
        await sse.initialize()
        redis.stop()
        async with httpx.AsyncClient(timeout=WAIT) as http:
            response = await http.post(b + sse.endpoint, json=call(5, "echo", text="x"))
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            # Nor is a POST on the owner accepted: 202 means durable in Redis.
            response = await http.post(a + sse.endpoint, json=call(5, "echo", text="x"))
            assert response.status_code == 503
            redis.start()  # empty: the owner makes its sessions known again by itself
            sse.expect({6: "tools/call"})
            with trio.fail_after(WAIT):
                while True:
                    response = await http.post(b + sse.endpoint, json=call(6, "echo", text="b"))
                    if response.status_code == 202:
                        break
                    assert response.status_code in (503, 404)
                    await trio.sleep(0.1)
        reply = await sse.reply_to(6, timeout=WAIT)
        assert reply["result"]["content"] == [{"type": "text", "text": "b"}]


async def test_an_owner_whose_token_was_taken_appends_nothing_more_and_ends_the_session(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with two_workers(serve_app, redis) as ((a, _), (app_a, _)), open_sse(a) as sse:
        await sse.initialize()
        session = app_a.supervisor.get(sse.session_id, None)
        assert session is not None
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            hash_key = connection.key("session", sse.session_id)
            # As a takeover by another worker would: a new fencing token.
            await connection.call(lambda: connection.client.hincrby(hash_key, "token", 1))
            stream = connection.key("stream", session.main.key)
            before = await connection.call(lambda: connection.client.xlen(stream))
            async with httpx.AsyncClient(timeout=WAIT) as http:
                response = await http.post(a + sse.endpoint, json=call(3, "echo", text="x"))
            assert response.status_code == 404  # not accepted: no reply will ever come
            with trio.fail_after(WAIT):
                while not session.closed:
                    await trio.sleep(0.01)
            assert await connection.call(lambda: connection.client.xlen(stream)) == before


async def long_lived_streams(connection: RedisConnection) -> list[str]:
    """The session streams Redis keeps for longer than a dropped one (a main stream,
    for as long as its session)."""
    keys = [key async for key in connection.client.scan_iter(connection.key("stream", "*"))]
    ttls = [await connection.call(partial(connection.client.pttl, key)) for key in keys]
    return [key for key, ttl in zip(keys, ttls, strict=True) if ttl > DROPPED_MS or ttl == -1]


async def test_redis_lets_go_of_the_request_streams_a_session_no_longer_keeps(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, _), (app_a, _)),
        initialized_on(a) as client,
    ):
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            for _ in range(KEPT_REQUEST_STREAMS + 8):
                request = client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
                async with client.post_stream(request, accept="text/event-stream") as (_, events):
                    _, reply = await next_message(events)
                    assert reply["result"]["content"] == [{"type": "text", "text": "x"}]
            session = app_a.supervisor.get(client.session_id or "", None)
            assert session is not None
            with trio.fail_after(WAIT):
                # Its main stream and the request streams it keeps, as on one server.
                while len(await long_lived_streams(connection)) > len(session.streams):
                    await trio.sleep(0.02)
            # It keeps the newest finished ones, the one last opened and its main.
            assert len(session.streams) == KEPT_REQUEST_STREAMS + 2

            response = await client.http.delete(a + "/mcp", headers=client.headers())
            assert response.status_code == 200
            with trio.fail_after(WAIT):
                while await long_lived_streams(connection):
                    await trio.sleep(0.02)


async def test_a_post_reaching_a_session_while_it_is_taken_over_is_served_once_it_is(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Heartbeats far apart: A stays "lost" once its liveness key is gone.
    patient = trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=30.0)
    app_a, app_b = make_server().asgi_app(patient), make_server().asgi_app(patient)
    async with serve_app(app_a) as a, serve_app(app_b) as b, open_sse(a) as sse:
        await sse.initialize()
        shared = app_b.supervisor.shared
        assert shared is not None and shared.adopt is not None
        rebuild, adopting, go_on = shared.adopt, trio.Event(), trio.Event()

        async def slow_adopt(*args: Any) -> None:
            adopting.set()
            await go_on.wait()
            await rebuild(*args)

        shared.adopt = slow_adopt
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client, trio.open_nursery() as nursery:
            session_key = connection.key("session", sse.session_id)
            owner = await connection.call(partial(connection.client.hget, session_key, "owner"))
            alive = connection.worker_key(str(owner), "alive")
            await connection.call(partial(connection.client.delete, [alive]))
            nursery.start_soon(shared.take_over, sse.session_id)
            with trio.fail_after(WAIT):
                await adopting.wait()
            # B owns the session in Redis but has not rebuilt it yet: the POST is
            # forwarded to B itself, whose reader must hold it until the session is.
            async with httpx.AsyncClient(timeout=WAIT) as http:
                response = await http.post(b + sse.endpoint, json=call(5, "echo", text="held"))
            assert response.status_code == 202
            go_on.set()
            main = connection.key(
                "stream",
                await connection.call(partial(connection.client.hget, session_key, "main")),
            )
            with trio.fail_after(WAIT):
                while True:
                    entries = await connection.call(
                        partial(connection.client.xrange, main, "-", "+")
                    )
                    data = [e.field_values.get("d", "") for e in entries]
                    if any('"id":5,' in d and "held" in d for d in data):
                        break
                    await trio.sleep(0.02)


async def test_a_client_reading_elsewhere_when_its_sessions_owner_is_lost_stays_present(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Heartbeats far apart (A stays lost once its liveness key is gone) and a short
    # grace: a session that thought its client gone would end within it.
    patient = trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=30.0, resume_grace=0.3)
    app_a, app_b = make_server().asgi_app(patient), make_server().asgi_app(patient)
    async with (
        serve_app(app_a) as a,
        serve_app(app_b) as b,
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        async with event_stream(http, a) as events:
            post_url, last_id = await initialize_over(http, a, events)
        session_id = post_url.split("session_id=", 1)[1]
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client, event_stream(http, b, last_id) as events:
            with trio.fail_after(WAIT):
                assert (await events.__anext__()).event == "endpoint"
            # Read on B while A owns the session; then A is lost and B takes it over.
            session_key = connection.key("session", session_id)
            owner = await connection.call(partial(connection.client.hget, session_key, "owner"))
            await connection.call(
                partial(connection.client.delete, [connection.worker_key(str(owner), "alive")])
            )
            shared = app_b.supervisor.shared
            assert shared is not None and await shared.take_over(session_id)
            session = app_b.supervisor.get(session_id, None)
            assert session is not None
            await trio.sleep(1.0)  # past the grace
            assert not session.closed and session.main.attached
            response = await http.post(post_url.replace(a, b), json=call(9, "echo", text="still"))
            assert response.status_code == 202
            _, reply = await next_message(events)
            assert reply["id"] == 9


async def test_a_client_reading_elsewhere_is_known_to_a_new_owner_however_long_it_reads(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # What a new owner reads to count the session's clients elsewhere (see the test
    # above) must outlast the keys' expiry: 1.3 s here.
    async with (
        two_workers(serve_app, redis, resume_grace=0.2, session_idle_timeout=0.3) as (
            (a, b),
            (_, app_b),
        ),
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        async with event_stream(http, a) as events:
            post_url, last_id = await initialize_over(http, a, events)
        session_id = post_url.split("session_id=", 1)[1]
        async with event_stream(http, b, last_id) as events:
            with trio.fail_after(WAIT):
                assert (await events.__anext__()).event == "endpoint"
            await trio.sleep(2.0)
            connection = RedisConnection(redis.url, "trio-mcp")
            async with connection.client:
                readers = await connection.script(
                    _READERS, [connection.key("readers", session_id)], [connection.prefix]
                )
        shared = app_b.supervisor.shared
        assert shared is not None
        assert [str(x) for x in readers[2::3]] == [shared.connection.worker]


@pytest.mark.every_host
async def test_a_worker_that_stops_lets_its_sessions_go_from_redis(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # No other worker takes over the sessions of a worker that said it left: it must
    # let them go itself (each of them then expires or is deleted).
    app = make_server().asgi_app(settings(redis))
    async with httpx.AsyncClient(timeout=WAIT) as http:
        async with serve_app(app) as a:
            async with event_stream(http, a) as events:
                await initialize_over(http, a, events)
            async with initialized_on(a) as client:
                await client.call("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    connection = RedisConnection(redis.url, "trio-mcp")
    async with connection.client:
        kept = []
        for kind in ("session", "pending", "readers", "stream", "skey"):
            async for key in connection.client.scan_iter(connection.key(kind, "*")):
                if await connection.call(partial(connection.client.pttl, key)) == -1:
                    kept.append(key)
    assert kept == []


async def test_a_write_with_no_publisher_running_fails_at_once_rather_than_waiting(
    redis: RedisPeer,
) -> None:
    # A worker whose publisher has not started, or has stopped: no round would ever
    # answer a POST waiting for one (its wait is shielded), so it is told at once.
    connection = RedisConnection(redis.url, "trio-mcp")
    sessions = RedisSessions(connection, replay_events=10, replay_bytes=10_000, ttl=1.0)
    ping = Notification("notifications/initialized")
    with trio.fail_after(WAIT), pytest.raises(StoreUnavailable):
        await sessions.forward("0" * 32, None, "sse", [ping], batch=False)


async def forward_after_passes(sessions: RedisSessions, passes: int) -> None:
    """Forward a notification to a session no worker has, after ``passes`` passes of
    the scheduler: an operation whose round answers it (404)."""
    for _ in range(passes):
        await trio.lowlevel.checkpoint()
    with pytest.raises(Forwarded):
        ping = Notification("notifications/initialized")
        await sessions.forward("0" * 32, None, "sse", [ping], batch=False)


@asynccontextmanager
async def publishing(redis: RedisPeer) -> AsyncIterator[tuple[RedisSessions, list[int]]]:
    """A worker's sessions with their publisher running; -> them, and the operations
    each round it sends carries."""
    connection = RedisConnection(redis.url, "trio-mcp")
    sessions = RedisSessions(connection, replay_events=10, replay_bytes=10_000, ttl=1.0)
    rounds: list[int] = []
    commit = sessions._commit

    async def counted(operations: list[list[Any]]) -> list[Any]:
        rounds.append(len(operations))
        return await commit(operations)

    sessions._commit = counted  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sessions.run)
        while not sessions._publishing:
            await trio.lowlevel.checkpoint()
        yield sessions, rounds
        nursery.cancel_scope.cancel()


async def test_work_queued_over_several_scheduler_passes_goes_in_one_round(
    redis: RedisPeer,
) -> None:
    async with publishing(redis) as (sessions, rounds):
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                for passes in range(4):
                    nursery.start_soon(forward_after_passes, sessions, passes)
    assert rounds == [4]


async def test_a_round_goes_out_while_work_keeps_coming(redis: RedisPeer) -> None:
    async with publishing(redis) as (sessions, rounds):
        async with trio.open_nursery() as nursery:

            async def chatter() -> None:
                while True:
                    sessions.drop("0" * 32, "chatter")
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(chatter)
            with trio.fail_after(WAIT):
                await forward_after_passes(sessions, 0)
            nursery.cancel_scope.cancel()
    # The forwarding went in the first round, however busy the scheduler: beside it,
    # the chatter of the pass that woke the publisher and of each pass it gathered.
    assert rounds[0] <= 1 + 1 + _GATHER_PASSES
