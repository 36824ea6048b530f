"""Calls run as guests: a Streamable HTTP call POSTed to a worker that does not own its
session runs there, on a copy of the session, with a real redis-server between two
apps on two loopback ports (trio_mcp/_redis_guests.py). What its client sees is what
the owner would have sent; what the owner would have done for it (cancelling it, ending
it with the session, answering it when its worker is lost) still happens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
from redispeer import RedisPeer
from sseclient import Event
from streamclient import McpClient
from test_redis_sessions import initialized_on as session_on
from test_redis_sessions import make_server as shared_server
from test_redis_sessions import on

import trio_mcp
from trio_mcp._jsonrpc import parse_body
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_guests import GUEST_METHODS, GuestCalls, _Copy, runner_of, runs_as_guest
from trio_mcp._redis_line import RedisLine
from trio_mcp._redis_sessions import DROPPED_MS
from trio_mcp._redis_takeover import LOST_CODE

Serve = Callable[[Any], Any]
#: Bound on every wait for something the other worker does (through Redis).
WAIT = 10.0
#: What a test sets to let its ``held`` calls end (by name: one per test).
RELEASES: dict[str, trio.Event] = {}


def make_server(started: list[str]) -> trio_mcp.Server:
    """test_redis_sessions.py's server (echo, steps, wait_for), and tools that note
    where they ran, ask the client, and log."""
    server = shared_server()

    @server.tool()
    async def long_call(seconds: float) -> str:
        started.append("long_call")
        await trio.sleep(seconds)
        return "waited"

    @server.tool()
    async def held(name: str) -> str:
        started.append("held")
        await RELEASES.setdefault(name, trio.Event()).wait()
        return "released"

    @server.tool()
    async def ask(ctx: trio_mcp.Context) -> str:
        answer = await ctx.sample("which colour?", max_tokens=5)
        return str(answer["content"]["text"])

    @server.tool()
    async def note(ctx: trio_mcp.Context) -> str:
        await ctx.info("a note")
        return "noted"

    return server


@asynccontextmanager
async def two_workers(
    serve_app: Serve, redis: RedisPeer, **changes: Any
) -> AsyncIterator[tuple[list[str], list[trio_mcp.App], list[list[str]]]]:
    """Two workers on one Redis; the third item lists the tools started on each."""
    async with AsyncExitStack() as stack:
        urls, apps, started = [], [], []
        for _ in range(2):
            log: list[str] = []
            settings = trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0, **changes)
            app = make_server(log).asgi_app(settings)
            urls.append(await stack.enter_async_context(serve_app(app)))
            apps.append(app)
            started.append(log)
        yield urls, apps, started


def guests(app: trio_mcp.App) -> GuestCalls:
    shared = app.supervisor.shared
    assert shared is not None and shared.guests is not None
    return shared.guests


async def post(client: McpClient, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request answered as one JSON body by a client that also takes streams."""
    response = await client.post(client.request(method, params))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return client.check(response.json())


async def all_data(events: AsyncIterator[Event]) -> list[Event]:
    """The events that carry a message, until the stream ends."""
    with trio.fail_after(WAIT):
        return [event async for event in events if event.data]


async def next_data(events: AsyncIterator[Event]) -> dict[str, Any]:
    """The next message on the stream."""
    with trio.fail_after(WAIT):
        async for event in events:
            if event.data:
                return dict(event.json())
    raise AssertionError("the stream ended")


async def forwarded(redis: RedisPeer, owner_app: trio_mcp.App) -> int:
    """POSTs the owner's control stream got from other workers."""
    connection = RedisConnection(redis.url, "trio-mcp")
    async with connection.client:
        shared = owner_app.supervisor.shared
        assert shared is not None
        control = connection.worker_key(shared.connection.worker, "control")
        entries = await connection.call(lambda: connection.client.xrange(control, "-", "+"))
    return sum(1 for e in entries if e.field_values.get("op") == "s.deliver")


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(WAIT):
        while not condition():
            await trio.sleep(0.01)


async def running(started: list[str], count: int = 1) -> None:
    await until(lambda: len(started) >= count)


@attrs.frozen
class GuestCall:
    """A session owned by worker A with a long call (30 s unless the test says
    otherwise) running on worker B as a guest."""

    client: McpClient
    there: McpClient
    call: dict[str, Any]
    events: AsyncIterator[Event]
    guest_app: trio_mcp.App
    owner_app: trio_mcp.App


@asynccontextmanager
async def long_call_on_b(
    serve_app: Serve,
    redis: RedisPeer,
    tool: str = "long_call",
    arguments: dict[str, Any] | None = None,
) -> AsyncIterator[GuestCall]:
    """:class:`GuestCall`, its reply stream open (and read by the test)."""
    # A call still running when the test ends is cut at shutdown after a second, not
    # after the default ten.
    async with (
        two_workers(serve_app, redis, shutdown_timeout=1.0) as ((a, b), apps, (_, on_b)),
        session_on(a) as client,
    ):
        there = on(client, b)
        params = {"name": tool, "arguments": arguments or {"seconds": 30}}
        call = there.request("tools/call", params)
        async with there.post_stream(call, accept="text/event-stream") as (_, events):
            await running(on_b)
            yield GuestCall(client, there, call, events, guest_app=apps[1], owner_app=apps[0])


# -- which POSTs a guest runs (no socket) ----------------------------------------------


def body(payload: Any) -> Any:
    return parse_body(json.dumps(payload).encode())


def request(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    return message


@pytest.mark.parametrize("method", sorted(GUEST_METHODS))
def test_a_lone_request_that_changes_nothing_of_its_session_runs_as_a_guest(method: str) -> None:
    assert runs_as_guest(body(request(method, {})), sse_ok=True) is not None


@pytest.mark.parametrize(
    "method", ["initialize", "logging/setLevel", "resources/subscribe", "tasks/get"]
)
def test_a_request_that_changes_or_reads_what_the_owner_keeps_goes_to_the_owner(
    method: str,
) -> None:
    assert runs_as_guest(body(request(method, {})), sse_ok=True) is None


def test_a_call_made_a_task_goes_to_the_owner() -> None:
    call = request("tools/call", {"name": "echo", "arguments": {}, "task": {"ttl": 1000}})
    assert runs_as_guest(body(call), sse_ok=True) is None


def test_a_client_that_takes_no_event_stream_has_its_call_forwarded() -> None:
    assert runs_as_guest(body(request("tools/call", {"name": "echo"})), sse_ok=False) is None


def test_a_batch_and_a_notification_go_to_the_owner() -> None:
    assert runs_as_guest(body([request("ping")]), sse_ok=True) is None
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}
    assert runs_as_guest(body(notification), sse_ok=True) is None


def test_a_guests_request_ids_name_its_worker() -> None:
    assert runner_of("guest:host-12-ab12/1.7") == "host-12-ab12"
    assert runner_of("guest:a/b/30.3") == "a/b"
    for other in (7, "7", "guest:", "guest:w/", "guest:/1.3", "guest:w/3", "guest:w/x.1", None):
        assert runner_of(other) is None


# -- a guest's call, over real HTTP ----------------------------------------------------


async def test_a_call_posted_to_another_worker_runs_there_not_on_the_owner(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), (app_a, app_b), (on_a, on_b)),
        session_on(a) as client,
    ):
        reply = await post(
            on(client, b), "tools/call", {"name": "long_call", "arguments": {"seconds": 0}}
        )
        assert reply["result"]["content"] == [{"type": "text", "text": "waited"}]
        assert (on_a, on_b) == ([], ["long_call"])
        assert guests(app_b).calls == 1
        assert await forwarded(redis, app_a) == 0
        assert len(app_b.supervisor.store) == 0


async def test_a_json_only_client_s_call_on_another_worker_is_forwarded_to_the_owner(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), (app_a, app_b), (on_a, on_b)),
        session_on(a) as client,
    ):
        reply = await on(client, b).call(
            "tools/call", {"name": "long_call", "arguments": {"seconds": 0}}
        )
        assert reply["result"]["content"] == [{"type": "text", "text": "waited"}]
        assert (on_a, on_b) == (["long_call"], [])
        assert await forwarded(redis, app_a) == 1
        assert guests(app_b).calls == 0


async def test_a_guests_call_streams_its_progress_then_its_reply_with_resumable_ids(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), (_, app_b), _),
        session_on(a) as client,
    ):
        there = on(client, b)
        call = there.request(
            "tools/call",
            {"name": "steps", "arguments": {"count": 3}, "_meta": {"progressToken": "p"}},
        )
        async with there.post_stream(call) as (response, events):
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["mcp-session-id"] == client.session_id
            got = [(e.id, there.check(e.json())) for e in await all_data(events)]
        assert [m.get("method") for _, m in got] == ["notifications/progress"] * 3 + [None]
        assert got[-1][1]["result"]["content"] == [{"type": "text", "text": "3 steps"}]
        # Resumed on the owner from the first event: the rest, from Redis.
        first_id = got[0][0]
        assert first_id is not None
        async with client.get_stream(last_event_id=first_id) as (response, events):
            assert response.status_code == 200
            replayed = [e.json() for e in await all_data(events)]
        assert replayed == [m for _, m in got[1:]]
        assert guests(app_b).calls == 1


async def test_a_guests_call_dropped_midway_resumes_on_the_owner_with_its_reply(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), _, (_, on_b)),
        session_on(a) as client,
    ):
        there = on(client, b)
        call = there.request("tools/call", {"name": "long_call", "arguments": {"seconds": 0.5}})
        async with there.post_stream(call, accept="text/event-stream") as (_, events):
            with trio.fail_after(WAIT):
                priming = await events.__anext__()
        assert priming.id and not priming.data
        await running(on_b)
        async with client.get_stream(last_event_id=priming.id) as (response, events):
            assert response.status_code == 200
            replies = [e.json() for e in await all_data(events)]
        assert [r["id"] for r in replies] == [call["id"]]
        assert replies[0]["result"]["content"] == [{"type": "text", "text": "waited"}]


@pytest.mark.parametrize("answer_on", ["owner", "guest"])
async def test_a_guests_request_to_the_client_is_answered_through_any_worker(
    serve_app: Serve, redis: RedisPeer, answer_on: str
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), _, _),
        session_on(a) as client,
    ):
        there = on(client, b)
        call = there.request("tools/call", {"name": "ask", "arguments": {}})
        async with there.post_stream(call, accept="text/event-stream") as (_, events):
            asked = await next_data(events)
            assert asked["method"] == "sampling/createMessage"
            assert runner_of(asked["id"]) is not None
            answer = {
                "jsonrpc": "2.0",
                "id": asked["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "teal"},
                    "model": "m",
                },
            }
            # To the owner, as a client unaware of workers sends it, or to the guest,
            # which forwards it to the owner as any other reply.
            sender = client if answer_on == "owner" else there
            assert (await sender.post(answer)).status_code == 202
            reply = await next_data(events)
        assert reply["result"]["content"] == [{"type": "text", "text": "teal"}]


def cancellation(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "changed my mind"},
    }


@pytest.mark.parametrize("cancel_on", ["owner", "guest"])
async def test_a_cancellation_sent_to_any_worker_stops_the_call_a_guest_runs(
    serve_app: Serve, redis: RedisPeer, cancel_on: str
) -> None:
    async with long_call_on_b(serve_app, redis) as running_call:
        request_id = running_call.call["id"]
        sender = running_call.client if cancel_on == "owner" else running_call.there
        assert (await sender.post(cancellation(request_id))).status_code == 202
        # Cancelled, the call gets no reply: its stream ends without one.
        assert await all_data(running_call.events) == []
        session_id = running_call.client.session_id or ""
        copy = guests(running_call.guest_app).copy_of(session_id)
        assert copy is not None and not copy.is_in_flight(request_id)


async def while_a_call_joins_on_b(
    serve_app: Serve,
    redis: RedisPeer,
    monkeypatch: pytest.MonkeyPatch,
    interfere: Callable[[McpClient, dict[str, Any], GuestCalls], Awaitable[None]],
) -> list[Event]:
    """``interfere`` with a call POSTed to worker B while it joins B's copy of the
    session (recorded in Redis as B's, not yet in the copy); -> what its stream carried.
    """
    async with (
        two_workers(serve_app, redis, shutdown_timeout=1.0) as ((a, b), (_, app_b), _),
        session_on(a) as client,
    ):
        calls = guests(app_b)
        recorded, release = trio.Event(), trio.Event()
        copy = calls._copy

        async def held_copy(*args: Any) -> _Copy:
            recorded.set()
            await release.wait()
            return await copy(*args)

        monkeypatch.setattr(calls, "_copy", held_copy)
        there = on(client, b)
        call = there.request("tools/call", {"name": "long_call", "arguments": {"seconds": 30}})
        replies: list[Event] = []

        async def post_the_call() -> None:
            async with there.post_stream(call, accept="text/event-stream") as (_, events):
                replies.extend(await all_data(events))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_the_call)
            with trio.fail_after(WAIT):
                await recorded.wait()
            await interfere(client, call, calls)
            release.set()
    return replies


async def test_a_cancellation_that_reaches_a_guest_before_its_call_starts_still_stops_it(
    serve_app: Serve, redis: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cancel(client: McpClient, call: dict[str, Any], calls: GuestCalls) -> None:
        assert (await client.post(cancellation(call["id"]))).status_code == 202
        joining = calls._joining[client.session_id or ""]
        await until(lambda: joining.cancelled[json.dumps(call["id"])])

    assert await while_a_call_joins_on_b(serve_app, redis, monkeypatch, cancel) == []


async def test_a_session_that_ends_before_a_guests_call_starts_ends_the_call(
    serve_app: Serve, redis: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def end(client: McpClient, call: dict[str, Any], calls: GuestCalls) -> None:
        response = await client.http.delete(client.url, headers=client.headers())
        assert response.status_code == 200
        joining = calls._joining[client.session_id or ""]
        await until(lambda: joining.ended)

    assert await while_a_call_joins_on_b(serve_app, redis, monkeypatch, end) == []


async def test_ending_the_session_ends_the_calls_its_guests_run(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with long_call_on_b(serve_app, redis) as running_call:
        client = running_call.client
        response = await client.http.delete(client.url, headers=client.headers())
        assert response.status_code == 200
        assert await all_data(running_call.events) == []
        await until(lambda: not guests(running_call.guest_app).copies)
        there = running_call.there
        echo = there.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert (await there.post(echo)).status_code == 404


async def test_a_guest_follows_the_log_level_its_owner_was_told(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, b), _, _),
        session_on(a) as client,
    ):
        there = on(client, b)

        async def logged() -> list[str]:
            call = there.request("tools/call", {"name": "note", "arguments": {}})
            async with there.post_stream(call, accept="text/event-stream") as (_, events):
                return [e.json().get("method", "reply") for e in await all_data(events)]

        await client.call("logging/setLevel", {"level": "info"})
        assert await logged() == ["notifications/message", "reply"]
        await client.call("logging/setLevel", {"level": "error"})
        assert await logged() == ["reply"]


@pytest.mark.parametrize("calls", ["many short ones", "one three times as long"])
async def test_a_session_used_only_through_a_guest_does_not_idle_out_on_its_owner(
    serve_app: Serve, redis: RedisPeer, calls: str
) -> None:
    # The owner's idle timeout is 1.2 s; the calls go on for twice or three times that,
    # all to the other worker, with no stream open on the owner: the guest reminds the
    # owner when a call starts and while one runs (every 0.3 s at most).
    async with (
        two_workers(serve_app, redis, session_idle_timeout=1.2) as ((a, b), (app_a, _), _),
        session_on(a) as client,
    ):
        there = on(client, b)
        if calls == "many short ones":
            for n in range(12):
                echo = {"name": "echo", "arguments": {"text": str(n)}}
                reply = await post(there, "tools/call", echo)
                assert reply["result"]["content"] == [{"type": "text", "text": str(n)}]
                await trio.sleep(0.2)
        else:
            long = {"name": "long_call", "arguments": {"seconds": 3.6}}
            call = there.request("tools/call", long)
            async with there.post_stream(call, accept="text/event-stream") as (_, events):
                replies = [e.json() for e in await all_data(events)]
            waited = [{"type": "text", "text": "waited"}]
            assert [r["result"]["content"] for r in replies] == [waited]
        assert app_a.supervisor.get(client.session_id or "", None) is not None


async def test_a_lost_guests_unanswered_call_is_answered_with_the_worker_lost_error(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, _), _, _),
        session_on(a) as client,
    ):
        # A worker that took a call of the session as a guest, then died without a
        # heartbeat left: the live workers' heartbeat finds it lost.
        connection = RedisConnection(redis.url, "trio-mcp")
        session_id, lost, key = client.session_id or "", "lost-worker-1", "lostcallstream"
        stream = connection.key("stream", key)
        async with connection.client:
            await connection.script(
                """
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
                redis.call('SADD', KEYS[2], ARGV[4])
                redis.call('XADD', KEYS[4], '0-1', 'd', '{}', 'r', 'n')
                return redis.call('SADD', KEYS[3], ARGV[2])
                """,
                [
                    connection.key("guests", session_id),
                    connection.worker_key(lost, "guested"),
                    connection.key("workers"),
                    stream,
                ],
                ["41", lost, key, session_id],
            )
            with trio.fail_after(WAIT):
                while (
                    len(
                        entries := await connection.call(
                            lambda: connection.client.xrange(stream, "-", "+")
                        )
                    )
                    < 3
                ):
                    await trio.sleep(0.05)
            remaining = await connection.call(
                lambda: connection.client.hgetall(connection.key("guests", session_id))
            )
        # After the event it had sent, the error, then the stream's end.
        error = json.loads(entries[1].field_values["d"])
        assert str(entries[1].identifier) == "0-2"
        assert error["id"] == 41 and error["error"]["code"] == LOST_CODE
        assert str(entries[2].identifier) == "1-0"
        assert remaining == {}


async def test_a_guest_taken_for_lost_midcall_shows_its_late_reply_to_no_one(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with long_call_on_b(serve_app, redis, "held", {"name": "swept"}) as running_call:
        with trio.fail_after(WAIT):
            priming = await running_call.events.__anext__()
        # Worker B paused past its heartbeat timeout, and A swept it as lost: Redis
        # answers the call with the worker-lost error. B then carries on, and its call
        # ends with a reply Redis no longer takes.
        lost = guests(running_call.guest_app).shared.connection.worker
        await guests(running_call.owner_app).sweep(lost)
        RELEASES.setdefault("swept", trio.Event()).set()
        late = await all_data(running_call.events)
        assert late == [] and priming.id
        client = running_call.client
        async with client.get_stream(last_event_id=priming.id) as (response, events):
            assert response.status_code == 200
            replies = [e.json() for e in await all_data(events)]
        assert [r["id"] for r in replies] == [running_call.call["id"]]
        assert replies[0]["error"]["code"] == LOST_CODE


async def test_a_guests_round_sent_again_is_not_taken_for_a_sweep(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis) as ((a, _), (app_a, _), _),
        session_on(a) as client,
    ):
        shared = app_a.supervisor.shared
        assert shared is not None
        session_id = client.session_id or ""
        # Not the publisher's connection, which its rounds may be using.
        line = RedisLine(shared.connection)
        try:
            # A call's progress, reply and stream end, in a round whose answer was lost
            # with its connection: sent again as it was, it is no sweep's doing.
            ended = ["G", session_id]
            for item in ((1, '{"n":1}', "n", ""), (2, '{"id":7}', "r", "7"), (0, "", "e", "")):
                ended += ["againstream", *item]
            assert await shared._commit([ended], line=line) == [1]
            assert await shared._commit([ended], line=line) == [1]
            # A sweep answered another call and ended its stream: the rest is refused.
            await line.script(
                "redis.call('XADD', KEYS[1], '0-1', 'd', 'lost', 'r', 'r')"
                " return redis.call('XADD', KEYS[1], '1-0', 'e', '1')",
                [shared.connection.key("stream", "sweptstream")],
                [],
            )
            reply = ["G", session_id, "sweptstream", 1, '{"id":8}', "r", "8"]
            assert await shared._commit([reply], line=line) == [[2, "sweptstream"]]
        finally:
            line.close()


async def test_a_request_id_already_running_as_a_guest_is_refused_there(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with long_call_on_b(serve_app, redis) as running_call:
        again = await running_call.there.post(running_call.call)
        assert again.status_code == 400
        assert again.json()["error"]["code"] == -32600


async def test_redis_lets_go_of_a_guests_call_answered_as_one_body_soon(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # Its client holds no event id to resume it with: the names its call was given
    # in Redis go as soon as an owner's would, not with the session's long expiry.
    async with (
        two_workers(serve_app, redis) as ((a, b), _, _),
        session_on(a) as client,
    ):
        reply = await post(
            on(client, b), "tools/call", {"name": "echo", "arguments": {"text": "j"}}
        )
        assert reply["result"]["content"] == [{"type": "text", "text": "j"}]
        connection = RedisConnection(redis.url, "trio-mcp")
        async with connection.client:
            (name,) = [k async for k in connection.client.scan_iter(connection.key("grun", "*"))]
            with trio.fail_after(WAIT):
                while await connection.call(lambda: connection.client.pttl(name)) > DROPPED_MS:
                    await trio.sleep(0.02)
            assert await stored_streams(connection) == []


async def stored_streams(connection: RedisConnection) -> list[str]:
    """Request streams in Redis (a Streamable HTTP session's main stream aside)."""
    keys = [key async for key in connection.client.scan_iter(connection.key("stream", "*"))]
    mains = [
        await connection.call(lambda k=k: connection.client.hget(k, "main"))
        async for k in connection.client.scan_iter(connection.key("session", "*"))
    ]
    return [k for k in keys if k.rsplit(":", 1)[1] not in mains]


async def test_each_copy_of_a_session_numbers_its_requests_to_the_client_apart(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # A late reply to a request of a copy that has ended must not reach a later copy's
    # request of the same number.
    async with (
        two_workers(serve_app, redis) as ((a, b), (_, app_b), _),
        session_on(a) as client,
    ):
        there = on(client, b)
        asked = []
        for _ in range(2):
            call = there.request("tools/call", {"name": "ask", "arguments": {}})
            async with there.post_stream(call, accept="text/event-stream") as (_, events):
                asked.append((await next_data(events))["id"])
            copy = guests(app_b).copy_of(client.session_id or "")
            assert copy is not None
            copy.close()
            await until(lambda: client.session_id not in guests(app_b).copies)
        assert asked[0] != asked[1]
        assert {runner_of(request_id) for request_id in asked} == {
            app_b.supervisor.shared.connection.worker  # type: ignore[union-attr]
        }


async def test_a_request_id_in_flight_on_the_owner_is_refused_by_a_guest(
    serve_app: Serve, redis: RedisPeer
) -> None:
    async with (
        two_workers(serve_app, redis, shutdown_timeout=1.0) as ((a, b), _, (on_a, _)),
        session_on(a) as client,
    ):
        call = client.request("tools/call", {"name": "long_call", "arguments": {"seconds": 30}})
        async with client.post_stream(call, accept="text/event-stream"):
            await running(on_a)
            again = await on(client, b).post(call)
            assert again.status_code == 400
            assert "in flight" in again.json()["error"]["message"]


async def test_a_stopping_worker_answers_the_calls_it_still_runs_as_a_guest(
    serve_app: Serve, redis: RedisPeer
) -> None:
    # The session goes on, on its owner: its client must not be left without a reply.
    async with long_call_on_b(serve_app, redis) as running_call:
        await running_call.guest_app.supervisor.drain(trio.current_time() + 0.2)
        replies = [e.json() for e in await all_data(running_call.events)]
        assert [r["id"] for r in replies] == [running_call.call["id"]]
        assert "stopped" in replies[0]["error"]["message"]
        client = running_call.client
        reply = await post(client, "tools/call", {"name": "echo", "arguments": {"text": "on"}})
        assert reply["result"]["content"] == [{"type": "text", "text": "on"}]
