"""A killed worker loses nothing: the survivor takes its sessions over (Settings.redis_url).

The doomed worker is a real process (``python -m trio_mcp`` on tests/redis_target.py)
killed with SIGKILL while calls are in flight; the survivor shares its redis-server.
Every request the client was answered 202 for gets exactly one reply: its result if
it reached Redis, else the worker-lost error."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import trio
from redispeer import RedisPeer
from sseclient import Event, SseSession, event_stream, open_sse
from streamclient import McpClient, open_client
from test_redis_processes import PYTHON_M, worker_processes

import trio_mcp
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_sessions import MirroredStream
from trio_mcp._redis_takeover import LOST_CODE, LOST_MESSAGE, TAKE

Serve = Callable[[Any], Any]
#: Bound on every wait: the worker timeout is 1 s, a takeover follows within a beat.
WAIT = 10.0
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2024-11-05",
        "capabilities": {"roots": {}},
        "clientInfo": {"name": "takeover-test", "version": "1"},
    },
}


def call(request_id: int, name: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def survivor_app(redis: RedisPeer, worker_timeout: float = 1.0) -> trio_mcp.App:
    server = trio_mcp.Server("survivor")

    @server.tool()
    async def echo(text: str) -> str:
        return text

    settings = trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=worker_timeout)
    return server.asgi_app(settings)


@attrs.frozen
class Doomed:
    """A worker process (tests/redis_target.py, 1 s worker timeout) to kill, and a
    survivor served here that shares its redis-server."""

    url: str
    pid: int
    there: str
    survivor: trio_mcp.App

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)  # no settling, no goodbye


@asynccontextmanager
async def doomed_and_survivor(
    serve_app: Serve, redis: RedisPeer, survivor: trio_mcp.App | None = None
) -> AsyncIterator[Doomed]:
    survivor = survivor_app(redis) if survivor is None else survivor
    with worker_processes([*PYTHON_M, "redis_target:app"], redis) as (url, pid):
        async with serve_app(survivor) as there:
            yield Doomed(url, pid, there, survivor)


@attrs.frozen
class Held:
    """An initialized HTTP+SSE session on ``app``, served here, with a call to its tool
    ``held`` in flight: it answers ``answer`` once ``release`` is set."""

    app: trio_mcp.App
    sse: SseSession
    request_id: int
    release: trio.Event


@asynccontextmanager
async def held_call(serve_app: Serve, redis: RedisPeer, answer: str) -> AsyncIterator[Held]:
    server = trio_mcp.Server("held")
    release = trio.Event()

    @server.tool()
    async def held() -> str:
        await release.wait()
        return answer

    app = server.asgi_app(trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0))
    async with serve_app(app) as url, open_sse(url) as sse:
        await sse.initialize()
        request_id = await sse.send_request("tools/call", {"name": "held", "arguments": {}})
        yield Held(app, sse, request_id, release)


async def messages_until(
    events: AsyncIterator[Event],
    ids: set[int],
    seen: Counter[int],
    errors: dict[int, Any] | None = None,
) -> str | None:
    """Count the replies the stream carries until every id in ``ids`` has one (keeping
    each reply's error, or None, in ``errors``); the last event id."""
    last = None
    with trio.fail_after(WAIT):
        async for event in events:
            if not event.data:
                continue
            last = event.id
            message = json.loads(event.data)
            if "id" in message and ("result" in message or "error" in message):
                seen[message["id"]] += 1
                if errors is not None:
                    errors[message["id"]] = message.get("error")
                if all(seen[i] for i in ids):
                    return last
    raise AssertionError("the stream ended")


async def start_sse(
    http: httpx.AsyncClient, url: str, events: AsyncIterator[Event], replies: Counter[int]
) -> tuple[str, str | None]:
    """Initialize the HTTP+SSE session whose new stream is ``events`` (request id 1,
    its reply counted in ``replies``): its endpoint, and the last event id."""
    with trio.fail_after(WAIT):
        endpoint = (await events.__anext__()).data
    assert (await http.post(url + endpoint, json=INIT)).status_code == 202
    last = await messages_until(events, {1}, replies)
    notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url + endpoint, json=notified)).status_code == 202
    return endpoint, last


async def nothing_more(events: AsyncIterator[Event]) -> None:
    """No further message on the stream for half a second: no reply came twice."""
    with trio.move_on_after(0.5):
        async for event in events:
            if event.data:
                raise AssertionError(f"an extra event: {event.data}")


async def test_a_killed_workers_session_is_taken_over_and_every_accepted_call_answered_once(
    serve_app: Serve, redis: RedisPeer
) -> None:
    replies: Counter[int] = Counter()
    errors: dict[int, dict[str, Any]] = {}
    async with (
        doomed_and_survivor(serve_app, redis) as workers,
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        doomed, there = workers.url, workers.there
        async with event_stream(http, doomed) as events:
            endpoint, _ = await start_sse(http, doomed, events, replies)
            for request_id in (10, 11, 12):
                slow = call(request_id, "slow", seconds=60)
                assert (await http.post(doomed + endpoint, json=slow)).status_code == 202
            echo = call(13, "echo", text="before")
            assert (await http.post(doomed + endpoint, json=echo)).status_code == 202
            last = await messages_until(events, {13}, replies)
            workers.kill()
        # The client comes back, to the other worker, from the last event it saw.
        async with event_stream(http, there, last) as events:
            with trio.fail_after(WAIT):
                resumed = await events.__anext__()
            assert resumed.event == "endpoint" and resumed.data == endpoint
            await messages_until(events, {10, 11, 12}, replies, errors)
            # The session goes on, on the survivor.
            echo = call(14, "echo", text="after")
            assert (await http.post(there + endpoint, json=echo)).status_code == 202
            await messages_until(events, {14}, replies)
            await nothing_more(events)
    assert replies == {1: 1, 10: 1, 11: 1, 12: 1, 13: 1, 14: 1}
    lost = {"code": LOST_CODE, "message": LOST_MESSAGE}
    assert errors == {10: lost, 11: lost, 12: lost}


@attrs.frozen
class Lost:
    """An initialized HTTP+SSE session (``endpoint``, the last event id ``last``) whose
    worker was killed, its heartbeat since expired, not yet taken over: the survivor's
    heartbeat sweeps only every 10 s (its worker timeout is 30 s), so what comes to the
    survivor next takes it."""

    workers: Doomed
    http: httpx.AsyncClient
    endpoint: str
    last: str | None
    replies: Counter[int]


@asynccontextmanager
async def lost_session(serve_app: Serve, redis: RedisPeer) -> AsyncIterator[Lost]:
    survivor = survivor_app(redis, worker_timeout=30.0)
    replies: Counter[int] = Counter()
    async with (
        doomed_and_survivor(serve_app, redis, survivor) as workers,
        httpx.AsyncClient(timeout=WAIT) as http,
    ):
        async with event_stream(http, workers.url) as events:
            endpoint, last = await start_sse(http, workers.url, events, replies)
        workers.kill()
        await until_lost(redis, endpoint.rsplit("=", 1)[1])
        yield Lost(workers, http, endpoint, last, replies)


async def until_lost(redis: RedisPeer, session_id: str) -> None:
    """Wait until the heartbeat of the worker owning the session has expired."""
    connection = RedisConnection(redis.url, "trio-mcp")
    async with connection.client:
        owner = await connection.call(
            lambda: connection.client.hget(connection.key("session", session_id), "owner")
        )
        alive = connection.worker_key(str(owner), "alive")
        with trio.fail_after(WAIT):
            while await connection.call(lambda: connection.client.exists([alive])):
                await trio.sleep(0.01)


async def test_posts_racing_to_take_a_lost_workers_session_are_each_accepted_and_answered(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Several POSTs at once, each finding the session's owner dead.
    ids = range(10, 26)
    statuses: dict[int, tuple[int, str]] = {}
    async with lost_session(serve_app, redis) as lost:
        there = lost.workers.there

        async def post(request_id: int) -> None:
            echo = call(request_id, "echo", text=str(request_id))
            response = await lost.http.post(there + lost.endpoint, json=echo)
            statuses[request_id] = response.status_code, response.text

        async with trio.open_nursery() as nursery:
            for request_id in ids:
                nursery.start_soon(post, request_id)
        assert statuses == dict.fromkeys(ids, (202, ""))
        async with event_stream(lost.http, there, lost.last) as events:
            with trio.fail_after(WAIT):
                resumed = await events.__anext__()
            assert resumed.event == "endpoint" and resumed.data == lost.endpoint
            await messages_until(events, set(ids), lost.replies)
            await nothing_more(events)
    assert lost.replies == Counter({1: 1, **dict.fromkeys(ids, 1)})


async def test_a_worker_whose_heartbeat_lapsed_does_not_call_the_session_it_took_unknown(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # The survivor's event loop stalls past its worker timeout (a busy machine), so its
    # heartbeat key lapses until its next beat: it is alive all the same, and a POST
    # taking a lost worker's session through it must not be told the session is gone
    # (404 ends a client's session for good; 503 would have it send again).
    async with lost_session(serve_app, redis) as lost:
        survivor = lost.workers.survivor.redis
        assert survivor is not None
        alive = survivor.connection.worker_key(survivor.id, "alive")
        await survivor.connection.call(lambda: survivor.connection.client.delete([alive]))
        echo = call(10, "echo", text="10")
        response = await lost.http.post(lost.workers.there + lost.endpoint, json=echo)
        assert response.status_code in (202, 503), response.text


async def take_behind_its_owners_back(connection: RedisConnection, session_id: str) -> None:
    """As if the session's owner had stalled past its heartbeat: the worker
    ``connection`` names takes the session (the owner's liveness key gone for the
    script's duration only)."""
    pretend_dead = (
        "redis.call('DEL', ARGV[1] .. ':worker:' .. "
        "redis.call('HGET', KEYS[1], 'owner') .. ':alive')\n"
    )
    worker = connection.worker
    taken = await connection.script(
        pretend_dead + TAKE,
        [
            connection.key("session", session_id),
            connection.worker_key(worker, "sessions"),
            connection.key("session-tokens"),
        ],
        [connection.prefix, worker, session_id, LOST_MESSAGE, LOST_CODE, 60_000],
    )
    assert int(taken[0]) == 1


async def test_a_paused_owner_appends_nothing_after_its_session_was_taken(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with held_call(serve_app, redis, "late") as held:
        request_id = held.request_id
        session = held.app.supervisor.get(held.sse.session_id, None)
        assert session is not None
        connection = RedisConnection(redis.url, "trio-mcp")
        connection.worker = "intruder"
        async with connection.client:
            await take_behind_its_owners_back(connection, session.id)
            held.release.set()  # the owner wakes and answers: too late, and fenced
            with trio.fail_after(WAIT):
                while not session.closed:
                    await trio.sleep(0.01)
            # A client's stream attaches to the old owner late (it looked the owner up
            # before the takeover): the old owner must not end the stream for it.
            shared = held.app.supervisor.shared
            assert shared is not None
            late = {"op": "s.attach", "sid": session.id, "k": session.main.key, "w": "w"}
            await shared._attach({**late, "from": "intruder"})
            stream = connection.key("stream", session.main.key)
            entries = await connection.call(lambda: connection.client.xrange(stream, "-", "+"))
            assert await connection.call(partial(connection.client.pttl, stream)) == -1
        assert "1-0" not in [str(e.identifier) for e in entries]
        answers = [
            json.loads(e.field_values["d"])
            for e in entries
            if "d" in e.field_values and f'"id":{request_id}' in e.field_values["d"]
        ]
        # Exactly one reply in Redis for the request: the takeover's error.
        assert answers == [
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": LOST_CODE, "message": LOST_MESSAGE},
            }
        ]


async def test_a_paused_owner_shows_its_live_client_no_reply_redis_refused(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with held_call(serve_app, redis, "late") as held:
        session = held.app.supervisor.get(held.sse.session_id, None)
        assert session is not None and isinstance(session.main, MirroredStream)
        connection = RedisConnection(redis.url, "trio-mcp")
        connection.worker = "intruder"
        async with connection.client:
            await take_behind_its_owners_back(connection, session.id)
        held.release.set()  # the owner wakes and answers: fenced off, so not shown
        with trio.fail_after(WAIT):
            await held.sse.closed.wait()  # the old owner ends its copy of the session
        # The reply was made, and kept from view: Redis holds the takeover's error.
        withheld = session.main.log.after(session.main.durable) or []
        assert ['"late"' in event.data for event in withheld] == [True]
        assert [m for m in held.sse.messages if m.get("id") == held.request_id] == []


async def test_a_killed_workers_request_stream_resumes_elsewhere_with_the_lost_error_once(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        doomed_and_survivor(serve_app, redis) as workers,
        open_client(workers.url) as client,
    ):
        await client.initialize()
        slow = client.request("tools/call", {"name": "slow", "arguments": {"seconds": 60}})
        async with client.post_stream(slow, accept="text/event-stream") as (response, events):
            assert response.status_code == 200
            with trio.fail_after(WAIT):
                priming = await events.__anext__()
            assert priming.id is not None and not priming.data
        workers.kill()
        elsewhere = McpClient(client.http, workers.there + "/mcp")
        elsewhere.session_id, elsewhere.version = client.session_id, client.version
        seen: list[dict[str, Any]] = []
        async with elsewhere.get_stream(**{"last-event-id": priming.id}) as (resumed, events):
            assert resumed.status_code == 200
            with trio.fail_after(WAIT):
                # The takeover ends the request stream after its error: read to its end.
                seen = [json.loads(event.data) async for event in events if event.data]
        assert seen == [
            {
                "jsonrpc": "2.0",
                "id": slow["id"],
                "error": {"code": LOST_CODE, "message": LOST_MESSAGE},
            }
        ]
        # The session goes on, on the survivor.
        reply = await elsewhere.call("tools/call", {"name": "echo", "arguments": {"text": "on"}})
        assert reply["result"]["content"] == [{"type": "text", "text": "on"}]
        # The new owner never learns of that request stream: Redis lets it go by itself.
        key = priming.id.rsplit(".", 1)[0]
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            for name in ("stream", "skey"):
                expiry = partial(connection.client.pttl, connection.key(name, key))
                assert await connection.call(expiry) > 0


async def test_the_survivors_heartbeat_takes_a_killed_workers_sessions_unasked(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        doomed_and_survivor(serve_app, redis) as workers,
        open_client(workers.url) as client,
    ):
        await client.initialize()
        workers.kill()
        # Nobody asks for the session: the heartbeat's sweep (every third of the
        # 1 s worker timeout, once the key has expired) takes it.
        survivor, session_id = workers.survivor.supervisor, str(client.session_id)
        with trio.fail_after(WAIT):
            while survivor.get(session_id, None) is None:
                await trio.sleep(0.05)
        session = survivor.get(session_id, None)
        assert session is not None
        assert session.protocol.protocol_version == client.version
        assert session.protocol.client_info == {"name": "raw-streamable-client", "version": "1"}


async def test_the_owners_stream_shows_a_reply_only_once_redis_holds_it(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with held_call(serve_app, redis, "kept") as held:
        sse, request_id = held.sse, held.request_id
        redis.stop()
        held.release.set()  # answered now, but Redis cannot take the reply
        with trio.move_on_after(1.0) as waited:
            await sse.reply_to(request_id)
        # Shown, it would be a reply a new owner knows nothing of (and would answer
        # again with the worker-lost error), under an event id no other worker has.
        assert waited.cancelled_caught
        redis.start()  # empty: the owner registers the session again, then appends
        reply = await sse.reply_to(request_id, timeout=WAIT)
        assert reply["result"]["content"] == [{"type": "text", "text": "kept"}]


async def test_a_cancelled_request_is_no_longer_pending_so_no_takeover_answers_it(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with held_call(serve_app, redis, "never") as held:  # never released
        sse, request_id = held.sse, held.request_id
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            pending = connection.key("pending", sse.session_id)
            # Pending before the 202 came back.
            keys = await connection.call(lambda: connection.client.hkeys(pending))
            assert list(keys) == [str(request_id)]
            await sse.notify("notifications/cancelled", {"requestId": request_id})
            with trio.fail_after(WAIT):
                while await connection.call(lambda: connection.client.hlen(pending)):
                    await trio.sleep(0.02)
