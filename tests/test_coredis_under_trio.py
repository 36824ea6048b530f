"""coredis 6.9 on trio, against a real redis-server: what the client library itself
does when a command is cancelled, a connection drops, a command is retried or a
subscriber falls behind. trio_mcp/_redis_client.py and _redis_worker.py are designed
around these; each test pins one behaviour as it is today, so an upgrade of coredis
that changes it shows here first (and README's "coredis 6.9 on trio: what we found"
and examples/upstream/coredis-6.9-report.md stay true).

Every wait is bounded. Nothing here goes through trio-mcp: only coredis, trio and
Redis's own view of its clients (CLIENT LIST, PUBSUB NUMSUB).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import coredis
import coredis.config
import coredis.exceptions
import pytest
import trio
from coredis.response.types import PubSubMessage
from coredis.retry import ConstantRetryPolicy, ExponentialBackoffRetryPolicy, NoRetryPolicy
from coredis.tokens import PureToken
from redispeer import RedisPeer

#: Seconds a command waits for a pooled connection (``pool_timeout``) in these tests.
POOL_TIMEOUT = 0.5
#: Seconds any condition here may take to come true before the test fails.
BOUND = 5.0
#: What coredis raises for a lost connection (not the builtin ConnectionError).
LOST = coredis.exceptions.ConnectionError

#: A script that counts its runs in KEYS[1], then keeps Redis busy ARGV[1] ms.
SLOW_INCR = """
redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local stop = t[1] * 1e6 + t[2] + ARGV[1] * 1e3
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop
return 1
"""
#: A script that publishes ARGV[1] messages of ARGV[2] bytes to KEYS[1].
PUBLISH_MANY = """
local payload = string.rep('x', tonumber(ARGV[2]))
for _ = 1, tonumber(ARGV[1]) do redis.call('PUBLISH', KEYS[1], payload) end
return 1
"""

Command = Callable[["coredis.Redis[str]"], Awaitable[Any]]
#: Blocking commands that wait (for 5 s) on keys nothing writes, and their name in
#: CLIENT LIST.
BLOCKING: dict[str, tuple[str, Command]] = {
    "XREAD BLOCK": ("xread", lambda client: client.xread({"unwritten": "0-0"}, block=5000)),
    "BLPOP": ("blpop", lambda client: client.blpop(["unpushed"], timeout=5)),
}


def client(redis: RedisPeer, **options: Any) -> coredis.Redis[str]:
    return coredis.Redis.from_url(redis.url, decode_responses=True, **options)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = BOUND) -> float:
    """Poll ``condition`` until it holds (failing after ``timeout``); the seconds it took."""
    start = time.monotonic()
    with trio.fail_after(timeout):
        while not await condition():
            await trio.sleep(0.005)
    return time.monotonic() - start


async def clients_running(admin: coredis.Redis[str], command: str) -> list[int]:
    """The ids of the connections Redis sees running (or blocked in) ``command``."""
    return [int(info["id"]) for info in await admin.client_list() if info["cmd"] == command]


async def blocked_in(admin: coredis.Redis[str], command: str) -> int:
    """Wait until one connection is blocked in ``command``; its id."""
    await until(lambda: _running(admin, command))
    return (await clients_running(admin, command))[0]


async def _running(admin: coredis.Redis[str], command: str) -> bool:
    return bool(await clients_running(admin, command))


async def others(admin: coredis.Redis[str]) -> int:
    """How many connections Redis has besides ``admin``'s own."""
    return len(await admin.client_list()) - 1


async def subscribed(admin: coredis.Redis[str], channel: str) -> bool:
    return (await admin.pubsub_numsub(channel)).get(channel, 0) > 0


async def cancelled_mid_command(command: Command, redis_client: Any, admin: Any, name: str) -> None:
    """Start ``command``, wait until Redis has it blocked, then cancel it (unshielded)."""

    async def run() -> None:
        await command(redis_client)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await blocked_in(admin, name)
        nursery.cancel_scope.cancel()


async def next_message(pubsub: Any, timeout: float = 1.0) -> Any:
    """The next published message the iterator side of ``pubsub`` holds, or None."""
    with trio.move_on_after(timeout):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
            if message is not None and message["type"] == "message":
                return message
    return None


# -- a. the connection pool -----------------------------------------------------------


@pytest.mark.parametrize("command", sorted(BLOCKING))
async def test_a_cancelled_blocking_command_loses_its_pool_slot_for_good(
    redis: RedisPeer, command: str
) -> None:
    """A blocking command cancelled while Redis holds it: coredis closes the connection
    (right: its reply would come later) but never gives the slot back to the pool
    (``release`` drops an unusable connection without putting ``None`` in its place).
    With ``max_connections=2``, after two such cancellations the pool is spent: the
    next PING waits ``pool_timeout`` and raises TimeoutError although Redis sees no
    connection of this client at all. Why it matters to us: a request cancelled mid
    command (its client left) would drain a worker's pool, so trio-mcp shields every
    command (RedisConnection.call; pinned on our side by test_redis_workers.py's
    test_cancelled_commands_never_spend_the_connection_pool). About 0.5 s each."""
    name, run = BLOCKING[command]
    options = {"max_connections": 2, "pool_timeout": POOL_TIMEOUT}
    async with (
        client(redis, retry_policy=NoRetryPolicy(), **options) as spent,
        client(redis) as admin,
    ):
        await cancelled_mid_command(run, spent, admin, name)
        assert await spent.ping() == "PONG"  # one slot of two left

        await cancelled_mid_command(run, spent, admin, name)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await spent.ping()
        assert time.monotonic() - started >= POOL_TIMEOUT  # it waited for a slot
        assert await others(admin) == 0  # no connection is open: the slots are lost


async def test_a_spent_pool_without_pool_timeout_makes_the_next_command_wait_forever(
    redis: RedisPeer,
) -> None:
    """``pool_timeout`` is unset by default: once a cancelled blocking command has spent
    the pool, the next command waits for a slot with no end (bounded here at 1 s), and
    the client's retry policy never runs since nothing fails. So trio-mcp always sets
    ``pool_timeout`` (POOL_TIMEOUT, 2 s): a spent pool then shows as 503s and log
    lines, not as a worker that hangs. About 1 s."""
    name, run = BLOCKING["XREAD BLOCK"]
    async with client(redis, max_connections=1) as spent, client(redis) as admin:
        await cancelled_mid_command(run, spent, admin, name)
        with trio.move_on_after(1.0) as waited:
            await spent.ping()
        assert waited.cancelled_caught


async def test_a_connection_redis_drops_mid_xread_loses_its_pool_slot(redis: RedisPeer) -> None:
    """A connection Redis closes (CLIENT KILL; a restart or a proxy does the same)
    while a blocking XREAD waits on it: the XREAD raises coredis's ConnectionError, and
    the slot is lost exactly as for a cancellation. Why it matters to us: trio-mcp's
    one reader per worker is nearly always blocked in XREAD, so every Redis restart or
    dropped connection would cost a worker one of its MAX_CONNECTIONS (64) slots, for
    the life of the process; trio-mcp's pool gives the slot back (_redis_client.py).
    About 0.5 s."""
    name, run = BLOCKING["XREAD BLOCK"]
    options = {"max_connections": 1, "pool_timeout": POOL_TIMEOUT}
    async with (
        client(redis, retry_policy=NoRetryPolicy(), **options) as spent,
        client(redis) as admin,
    ):
        raised: list[BaseException] = []

        async def read() -> None:
            try:
                await run(spent)
            except LOST as exc:
                raised.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await admin.client_kill(identifier=await blocked_in(admin, name))
        assert len(raised) == 1
        with pytest.raises(TimeoutError):
            await spent.ping()


async def test_a_connection_redis_drops_while_idle_in_the_pool_keeps_its_slot(
    redis: RedisPeer,
) -> None:
    """The same drop on a connection resting in the pool costs nothing: coredis notices
    the closed socket and puts an empty slot in its place, and the next command opens
    a new connection. (A non-blocking command is released to the pool as soon as it is
    sent, so it is in this case too.) About 0.1 s."""
    async with client(redis, max_connections=1, pool_timeout=POOL_TIMEOUT) as pooled:
        async with client(redis) as admin:
            assert await pooled.ping() == "PONG"
            await admin.client_kill(type_=PureToken.NORMAL, skipme=True)
            assert await others(admin) == 0
            await trio.sleep(0.1)  # coredis sees the socket closed (at once, on loopback)
            assert await pooled.ping() == "PONG"


async def test_a_blocking_command_outliving_stream_timeout_loses_its_pool_slot(
    redis: RedisPeer,
) -> None:
    """A blocking command whose reply takes longer than ``stream_timeout`` raises
    TimeoutError and, like a cancelled one, closes its connection and loses its slot.
    Why it matters to us: trio-mcp's reader blocks 1 s under a 5 s reply timeout, so
    only a Redis that stalls (or a network that drops packets) for 5 s costs a slot;
    but each such stall costs one, for good. About 0.7 s."""
    options = {"max_connections": 1, "pool_timeout": POOL_TIMEOUT, "stream_timeout": 0.2}
    async with client(redis, retry_policy=NoRetryPolicy(), **options) as spent:
        with pytest.raises(TimeoutError):
            await spent.xread({"unwritten": "$"}, block=1000)
        with pytest.raises(TimeoutError):
            await spent.ping()


# -- b. pub/sub after a reconnect -----------------------------------------------------


def drop_subscriber(redis: RedisPeer, how: str) -> Callable[[coredis.Redis[str]], Awaitable[None]]:
    async def drop(admin: coredis.Redis[str]) -> None:
        if how == "CLIENT KILL":
            await admin.client_kill(type_=PureToken.PUBSUB)
        else:  # redis-server killed and started again on the same port
            redis.stop()
            await trio.sleep(0.3)
            redis.start()

    return drop


@pytest.mark.parametrize("how", ["CLIENT KILL", "restart"])
async def test_pubsub_resubscribes_after_a_reconnect_but_forgets_its_channel_handlers(
    redis: RedisPeer, how: str
) -> None:
    """After its connection drops, coredis's PubSub reconnects and subscribes again
    (PUBSUB NUMSUB is back to 1, within 5 s) but with ``None`` for every handler
    (``run`` resubscribes with ``subscribe(*self.channels.keys())``): a message
    published afterwards no longer reaches the ``channel_handlers`` callback; it waits
    in the buffer for an iterator the application may not run, so a handler-only
    subscriber goes silent without any error. One reason trio-mcp uses Redis Streams
    read with explicit ids, not pub/sub. About 0.2 s (CLIENT KILL), 0.6 s (restart)."""
    handled: list[str] = []
    async with client(redis) as subscriber, client(redis) as admin:

        def handler(message: PubSubMessage) -> None:
            handled.append(str(message["data"]))

        async with subscriber.pubsub(channel_handlers={"news": handler}) as pubsub:
            assert await admin.publish("news", "before") == 1
            await until(lambda: _holds(handled, "before"))

            await drop_subscriber(redis, how)(admin)
            await until(lambda: subscribed(admin, "news"))
            assert await admin.publish("news", "after") == 1

            message = await next_message(pubsub)
            assert message is not None and message["data"] == "after"
            assert handled == ["before"]


async def _holds(values: list[str], value: str) -> bool:
    return value in values


async def test_pubsub_iteration_ends_without_error_while_it_reconnects(redis: RedisPeer) -> None:
    """From a dropped connection until its resubscription is acknowledged, coredis's
    PubSub says it has no subscription (``_cleanup`` replaces ``_subscribed`` with a
    new Event), and ``async for message in pubsub`` stops (StopAsyncIteration, no
    error) although the PubSub then resubscribes and buffers messages. Here the window
    is widened to 1 s by the retry delay so that a loop started in it ends at once.
    With a 0.1 s retry delay (the default's first), a loop already waiting for a
    message ended on 11 of 30 CLIENT KILLs with ``ignore_subscribe_messages=True`` and
    19 of 30 without (a race with the resubscription's acknowledgement, measured
    once): the application's reader is gone, silently. About 1 s."""
    policy = ConstantRetryPolicy((LOST,), retries=None, delay=1.0)
    async with client(redis) as subscriber, client(redis) as admin:
        async with subscriber.pubsub(
            channels=["news"], ignore_subscribe_messages=True, retry_policy=policy
        ) as pubsub:
            await admin.client_kill(type_=PureToken.PUBSUB)
            await trio.sleep(0.2)  # coredis sees its socket closed (at once, on loopback)

            with trio.fail_after(0.5):  # ends at once: it does not wait for the resubscription
                async for message in pubsub:
                    raise AssertionError(f"nothing was published, got {message}")

            await until(lambda: subscribed(admin, "news"))
            assert await admin.publish("news", "after") == 1
            message = await next_message(pubsub)
            assert message is not None and message["data"] == "after"  # it was alive


async def test_pubsub_reconnect_backoff_never_resets_after_a_successful_reconnect(
    redis: RedisPeer,
) -> None:
    """PubSub runs its whole life in one ``retry_policy.call_with_retries``, so the
    attempt count is never reset by a reconnect that worked: the k-th reconnect of its
    life waits the k-th delay. Pinned without jitter (base 0.05 s): the gaps without a
    subscription double at each CLIENT KILL. With the default (exponential, base 0.1 s,
    max 16 s, jitter, unlimited) one run measured gaps of 0.1, 0.2, 0.37, 0.73, 1.13,
    2.29, 0.19, 11.1 and 9.3 s over nine kills: messages published meanwhile are lost.
    About 1 s."""
    base = 0.05
    policy = ExponentialBackoffRetryPolicy((LOST,), retries=None, base_delay=base, jitter=False)
    gaps: list[float] = []
    async with client(redis) as subscriber, client(redis) as admin:
        async with subscriber.pubsub(channels=["news"], retry_policy=policy):
            for _ in range(4):
                await admin.client_kill(type_=PureToken.PUBSUB)
                gaps.append(await until(lambda: subscribed(admin, "news")))
    for attempt, gap in enumerate(gaps):
        assert gap >= base * 2**attempt, gaps


async def test_leaving_a_pubsub_while_it_reconnects_never_returns(redis: RedisPeer) -> None:
    """Leaving ``async with client.pubsub()`` cancels only the task group of the
    connection that was lost; the retry loop then reconnects and runs the new one
    until something outside cancels it, so the ``async with`` never exits (bounded
    here at 1.5 s, past the 1 s reconnect). With the default policy the window is
    about 0.1 s per reconnect, growing as above: a subscriber shut down during a Redis
    outage hangs its shutdown. About 1.7 s."""
    policy = ConstantRetryPolicy((LOST,), retries=None, delay=1.0)
    async with client(redis) as subscriber, client(redis) as admin:
        with trio.move_on_after(1.5) as leaving:
            async with subscriber.pubsub(channels=["news"], retry_policy=policy):
                await admin.client_kill(type_=PureToken.PUBSUB)
                await trio.sleep(0.2)  # coredis sees its socket closed and waits to retry
        assert leaving.cancelled_caught


async def test_each_pubsub_reconnect_loses_a_pool_slot(redis: RedisPeer) -> None:
    """PubSub takes its connection from the client's pool and, when Redis drops it,
    loses that slot like a blocking command does (a.): with ``max_connections=2`` one
    CLIENT KILL of the subscriber leaves the client unable to PING (TimeoutError after
    ``pool_timeout``), while Redis sees only the resubscribed connection. About 0.7 s."""
    options = {"max_connections": 2, "pool_timeout": POOL_TIMEOUT}
    async with (
        client(redis, retry_policy=NoRetryPolicy(), **options) as spent,
        client(redis) as admin,
    ):
        async with spent.pubsub(channels=["news"]):
            assert await spent.ping() == "PONG"
            await admin.client_kill(type_=PureToken.PUBSUB)
            await until(lambda: subscribed(admin, "news"))
            with pytest.raises(TimeoutError):
                await spent.ping()
            assert await others(admin) == 1


# -- c. the retry policy --------------------------------------------------------------


async def xread_across_a_dropped_connection(redis: RedisPeer, start: str) -> list[str]:
    """XREAD BLOCK from ``start`` (``$`` or the id before entry 1) with trio-mcp's retry
    policy (one retry on a lost connection, after 50 ms); Redis drops the connection
    and adds entry 1 in one transaction, then adds entry 2 once the retried XREAD waits
    again (or has returned). The ``n`` of the entries the XREAD returned."""
    policy = ConstantRetryPolicy((LOST,), retries=1, delay=0.05)
    got: list[str] = []
    async with client(redis, retry_policy=policy) as reader, client(redis) as admin:
        last = await admin.xadd("stream", {"n": "0"})
        cursor = "$" if start == "$" else str(last)
        done = trio.Event()

        async def read() -> None:
            entries = await reader.xread({"stream": cursor}, block=3000)
            got.extend(str(entry.field_values["n"]) for entry in (entries or {}).get("stream", ()))
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            victim = await blocked_in(admin, "xread")
            async with admin.pipeline(transaction=True) as transaction:
                transaction.client_kill(identifier=victim)
                transaction.xadd("stream", {"n": "1"})
            await until(lambda: _again(admin, done))
            await admin.xadd("stream", {"n": "2"})
    return got


async def _again(admin: coredis.Redis[str], done: trio.Event) -> bool:
    return done.is_set() or await _running(admin, "xread")


async def test_a_retried_xread_from_dollar_misses_the_entry_added_before_the_retry(
    redis: RedisPeer,
) -> None:
    """coredis's retry policy re-sends a command as it was: an XREAD from ``$`` that
    loses its connection is sent again from ``$``, which now means "after entry 1", so
    entry 1 (added between the drop and the retry) is never returned, and the caller
    sees no error at all. trio-mcp never reads from ``$``: its reader starts from the
    ids it looked up and names the last id it saw in every XREAD. About 0.1 s."""
    assert await xread_across_a_dropped_connection(redis, "$") == ["2"]


async def test_a_retried_xread_from_an_explicit_id_gets_the_entry_added_before_the_retry(
    redis: RedisPeer,
) -> None:
    """The same drop and retry with an explicit last-seen id: the retried XREAD
    returns entry 1 at once. This is why trio-mcp's one retry on a lost connection is
    safe for its reader. About 0.1 s."""
    assert await xread_across_a_dropped_connection(redis, "id") == ["1"]


async def test_the_default_retry_policy_runs_a_timed_out_script_three_times(
    redis: RedisPeer,
) -> None:
    """``Redis.from_url``'s default retry policy retries TimeoutError twice, and a reply
    slower than ``stream_timeout`` is a TimeoutError although Redis ran the command: a
    script that increments a counter and takes 150 ms, sent with a 50 ms timeout, runs
    three times and the caller still gets TimeoutError. Anything not idempotent is
    done again. trio-mcp's policy retries only a lost connection, once, and every
    script it sends is a compare-and-set or safe twice. About 0.7 s."""
    async with client(redis, stream_timeout=0.05) as impatient, client(redis) as admin:
        with pytest.raises(TimeoutError):
            await impatient.eval(SLOW_INCR, ["runs"], [150])
        await until(lambda: _counter_is(admin, 3), timeout=2.0)
        await trio.sleep(0.2)
        assert await admin.get("runs") == "3"


async def _counter_is(admin: coredis.Redis[str], value: int) -> bool:
    return await admin.get("runs") == str(value)


# -- d. the pub/sub receive buffer ----------------------------------------------------


async def test_pubsub_holds_every_unread_message_in_process_memory(redis: RedisPeer) -> None:
    """coredis reads a subscriber's socket eagerly into unbounded buffers (a memory
    stream of size ``math.inf`` in PubSub, another in the connection), whether or not
    the application reads: 5000 messages of 1000 bytes published to a PubSub no one
    reads are all held by the process, measured at about 1.3 bytes per payload byte
    (tracemalloc). Redis's own guard against slow subscribers (client-output-buffer-
    limit pubsub, 32 MB hard) never fires, since Redis sees a fast reader: the backlog
    moves into the Python process, without limit. trio-mcp uses no pub/sub; its reader
    asks for at most a fixed count of entries per XREAD. About 1.2 s."""
    count, size = 5000, 1000
    async with client(redis) as subscriber, client(redis) as admin:
        async with subscriber.pubsub(channels=["news"], subscription_timeout=BOUND) as pubsub:
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                await admin.eval(PUBLISH_MANY, ["news"], [count, size])
                # Acknowledged after every message before it is buffered (one connection).
                await pubsub.subscribe("fence")
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            assert held >= count * size

            received = 0
            while (message := await next_message(pubsub, timeout=0.5)) is not None:
                assert message["channel"] == "news" and len(message["data"]) == size
                received += 1
            assert received == count


# -- e. coredis.Config ----------------------------------------------------------------


async def test_coredis_reads_the_environment_on_every_command(
    redis: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``coredis.Config.optimized`` and ``Config.otel_enabled`` are properties that call
    ``os.environ.get`` (``_env_truthy``) each time they are read, and every command
    reads them: 6 reads per PING, GET or XREAD (2 of COREDIS_OPTIMIZED, 4 of
    COREDIS_OTEL_ENABLED), 8 per SET or XADD with MAXLEN. One read costs 0.76 us in a
    tight loop; in a PING loop they cost about 9 % of its CPU (16 of 168 us; quartiles
    7.5 to 13 % over 16 paired runs with them patched out; 2 shared cores, noisy).
    Why it matters to us: a worker under load sends thousands of commands a second;
    trio-mcp leaves it be (only coredis can read the variables once). About 0.05 s."""
    reads: dict[str, int] = {}
    env_truthy = coredis.config._env_truthy

    def counting(name: str) -> bool:
        reads[name] = reads.get(name, 0) + 1
        return env_truthy(name)

    async with client(redis) as pinging:
        await pinging.ping()  # connected: what follows is per command only
        monkeypatch.setattr(coredis.config, "_env_truthy", counting)
        for _ in range(100):
            await pinging.ping()
        first = dict(reads)
        for _ in range(100):
            await pinging.ping()
    assert set(first) == {"COREDIS_OPTIMIZED", "COREDIS_OTEL_ENABLED"}
    assert sum(first.values()) >= 100  # at least once per command
    assert reads == {name: 2 * n for name, n in first.items()}  # per command, not once
