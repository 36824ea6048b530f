"""RedisLine: the publisher's and the reader's own connection to a real redis-server
(trio_mcp/_redis_line.py). It must keep the contract of the coredis path it replaces:
replies in order, never a cancelled command, a dead connection replaced, Redis's
absence reported as StoreUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis.exceptions
import pytest
import trio
from redispeer import RedisPeer

import trio_mcp._redis_line
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_line import RedisLine, pack
from trio_mcp._task_store import StoreUnavailable

#: Seconds any condition here may take before the test fails.
BOUND = 5.0
#: Keeps Redis busy ARGV[1] ms, then answers ARGV[2].
SLOW_ECHO = """
local t = redis.call('TIME')
local stop = t[1] * 1e6 + t[2] + ARGV[1] * 1e3
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop
return ARGV[2]
"""


@asynccontextmanager
async def line_to(url: str) -> AsyncIterator[tuple[RedisLine, RedisConnection]]:
    connection = RedisConnection(url, "line-test")
    async with connection.client:
        line = RedisLine(connection)
        try:
            yield line, connection
        finally:
            line.close()


def test_a_command_is_packed_as_an_array_of_bulk_strings() -> None:
    assert pack(("SET", "k", 12, b"\x00v")) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00v\r\n"
    )
    assert pack(("GET", "ключ")) == "*2\r\n$3\r\nGET\r\n$8\r\nключ\r\n".encode()


async def test_replies_come_back_decoded_and_in_order(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, connection):
        assert await line.execute("SET", "k", "värde") == "OK"
        assert await line.execute("GET", "k") == "värde"
        assert await line.execute("INCR", "n") == 1
        assert await line.execute("GET", "missing") is None
        assert await line.execute("RPUSH", "l", "a", "b") == 2
        assert await line.execute("LRANGE", "l", 0, -1) == ["a", "b"]
        assert connection.available


async def test_an_error_reply_raises_and_the_connection_goes_on(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        await line.execute("SET", "k", "text")
        with pytest.raises(coredis.exceptions.ResponseError):
            await line.execute("INCR", "k")
        assert await line.execute("GET", "k") == "text"


async def test_a_script_loads_itself_when_redis_does_not_know_it(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        assert await line.script("return {ARGV[1], 7, {KEYS[1]}}", ["key"], ["a"]) == [
            "a",
            7,
            ["key"],
        ]
        await line.execute("SCRIPT", "FLUSH")
        assert await line.script("return ARGV[1]", [], ["again"]) == "again"


async def test_xread_returns_each_streams_entries_after_the_ids_given(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        await line.execute("XADD", "s1", "0-1", "a", "1", "b", "2")
        await line.execute("XADD", "s1", "0-2", "a", "3")
        await line.execute("XADD", "s2", "0-5", "z", "")
        read = await line.xread({"s1": "0-1", "s2": "0-0", "s3": "0-0"}, count=10, block_ms=10)
        assert read == [("s1", [("0-2", {"a": "3"})]), ("s2", [("0-5", {"z": ""})])]


async def test_xread_with_nothing_new_returns_nothing_after_its_block(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        await line.execute("XADD", "s", "0-1", "a", "1")
        with trio.fail_after(BOUND):
            assert await line.xread({"s": "0-1"}, count=10, block_ms=50) == []


async def test_a_connection_redis_dropped_while_idle_is_replaced_at_once(
    redis: RedisPeer,
) -> None:
    async with line_to(redis.url) as (line, connection):
        own_id = await line.execute("CLIENT", "ID")
        await connection.client.client_kill(identifier=own_id)
        assert await line.execute("PING") == "PONG"
        assert await line.execute("CLIENT", "ID") != own_id


async def test_redis_gone_is_store_unavailable_and_back_is_service(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, connection):
        await line.execute("PING")
        redis.stop()
        with trio.fail_after(BOUND), pytest.raises(StoreUnavailable):
            await line.execute("PING")
        assert not connection.available
        redis.start()
        assert await line.execute("PING") == "PONG"
        assert connection.available


async def test_a_cancelled_caller_does_not_cancel_its_command(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        with trio.move_on_after(0.05) as waited:
            await line.script(SLOW_ECHO, [], [300, "late"])
        assert not waited.cancelled_caught  # it ran to its reply, shielded
        assert await line.execute("ECHO", "next") == "next"


async def test_a_reply_past_its_deadline_is_unavailable_and_never_read_by_the_next(
    redis: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trio_mcp._redis_line, "REPLY_TIMEOUT", 0.1)
    async with line_to(redis.url) as (line, _):
        with trio.fail_after(BOUND), pytest.raises(StoreUnavailable):
            await line.script(SLOW_ECHO, [], [300, "late"])
        await trio.sleep(0.4)  # Redis is done with the script (and answered the old socket)
        # The late reply went with the closed connection: the next command has its own.
        assert await line.execute("ECHO", "next") == "next"


async def test_a_second_task_sending_while_a_command_is_in_flight_is_refused(
    redis: RedisPeer,
) -> None:
    async with line_to(redis.url) as (line, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(line.script, SLOW_ECHO, [], [100, "first"])
            await trio.sleep(0.02)
            with pytest.raises(trio.BusyResourceError):
                await line.execute("PING")
        assert await line.execute("ECHO", "after") == "after"


async def test_the_urls_password_and_database_are_used(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        await line.execute("CONFIG", "SET", "requirepass", "s3cret")
    try:
        url = f"redis://:s3cret@127.0.0.1:{redis.port}/3"
        async with line_to(url) as (line, _):
            await line.execute("SET", "where", "db3")
            assert " db=3 " in await line.execute("CLIENT", "INFO")
        async with line_to(f"redis://:wrong@127.0.0.1:{redis.port}/3") as (line, _):
            with pytest.raises(coredis.exceptions.AuthenticationFailureError):
                await line.execute("PING")
        async with line_to(url.replace("/3", "/0")) as (line, _):
            assert await line.execute("GET", "where") is None
            await line.execute("SELECT", 3)
            assert await line.execute("GET", "where") == "db3"
    finally:
        async with line_to(f"redis://:s3cret@127.0.0.1:{redis.port}/0") as (line, _):
            await line.execute("CONFIG", "SET", "requirepass", "")


async def test_a_blocking_read_is_cancelled_with_its_connection(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        first = await line.execute("CLIENT", "ID")
        with trio.move_on_after(0.05) as waited:
            await line.xread({"s": "0-0"}, count=1, block_ms=2000)
        assert waited.cancelled_caught
        # A new connection: the abandoned read's reply cannot reach the next command.
        assert await line.execute("CLIENT", "ID") != first
        await line.execute("XADD", "s", "0-1", "a", "1")
        assert await line.xread({"s": "0-0"}, count=1, block_ms=10) == [
            ("s", [("0-1", {"a": "1"})])
        ]


async def test_a_cancelled_caller_sends_nothing(redis: RedisPeer) -> None:
    async with line_to(redis.url) as (line, _):
        with trio.CancelScope() as scope:
            scope.cancel()
            await line.execute("SET", "k", "v")
        assert scope.cancelled_caught
        assert await line.execute("EXISTS", "k") == 0


async def test_a_read_cancelled_while_retried_on_a_new_connection_leaves_nothing_behind(
    redis: RedisPeer,
) -> None:
    async with line_to(redis.url) as (line, connection):
        await connection.client.client_kill(identifier=await line.execute("CLIENT", "ID"))
        # The first attempt finds the connection dropped; the retry blocks, and is
        # cancelled there.
        with trio.move_on_after(0.2) as waited:
            await line.xread({"s": "0-0"}, count=1, block_ms=2000)
        assert waited.cancelled_caught
        with trio.fail_after(1):  # not queued behind the abandoned XREAD
            assert await line.execute("ECHO", "next") == "next"
