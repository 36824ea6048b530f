"""RedisTaskStore on a real redis-server: the compare-and-set ``put``, records that
expire by themselves, and one command per status change; and the settings that turn
it on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
from hosts import serving
from redispeer import RedisPeer
from statelessclient import open_stateless
from test_tasks import EXT, Client, task_server

from trio_mcp import Settings, TaskRecord
from trio_mcp._redis_client import RedisConnection
from trio_mcp._redis_tasks import RedisTaskStore
from trio_mcp._tasks import CANCELLED, COMPLETED, WORKING, iso_now

TTL = 60.0


@asynccontextmanager
async def store(redis: RedisPeer) -> AsyncIterator[tuple[RedisTaskStore, RedisConnection]]:
    connection = RedisConnection(redis.url, "store-test")
    async with connection.client:
        yield RedisTaskStore(connection, TTL, worker_timeout=5.0), connection


def record(task_id: str, worker: str) -> TaskRecord:
    now = iso_now()
    return TaskRecord(task_id, WORKING, now, now, 60_000, 1000, worker=worker)


async def test_put_never_changes_a_terminal_record(redis: RedisPeer) -> None:
    async with store(redis) as (tasks, connection):
        task = record("t1", connection.worker)
        await tasks.create(task)
        task.status = COMPLETED
        assert await tasks.put(task)
        task.status = CANCELLED
        assert not await tasks.put(task)
        stored = await tasks.get("t1")
        assert stored is not None and stored.status == COMPLETED


async def test_put_never_brings_back_a_deleted_record(redis: RedisPeer) -> None:
    async with store(redis) as (tasks, connection):
        task = record("t2", connection.worker)
        await tasks.create(task)
        await tasks.delete("t2")
        assert not await tasks.put(task)
        assert await tasks.get("t2") is None


async def test_records_expire_by_themselves_later_while_running(redis: RedisPeer) -> None:
    async with store(redis) as (tasks, connection):
        task = record("t3", connection.worker)
        await tasks.create(task)
        key = connection.key("task", "t3")
        running = await connection.call(partial(connection.client.pttl, key))
        assert 1.9 * TTL * 1000 < running <= 2 * TTL * 1000
        task.status = COMPLETED
        await tasks.put(task)
        ended = await connection.call(partial(connection.client.pttl, key))
        assert 0.9 * TTL * 1000 < ended <= TTL * 1000


async def test_a_status_change_is_one_round_trip(redis: RedisPeer) -> None:
    """Each status change costs one command (a script: the write, its expiry, its
    worker's set and the event for the listeners, atomically)."""
    async with store(redis) as (tasks, connection):
        task = record("t4", connection.worker)
        await tasks.create(task)
        sent: list[object] = []
        call = connection.call

        async def counted(command: Any) -> Any:
            sent.append(command)
            return await call(command)

        connection.call = counted  # type: ignore[method-assign]
        task.status = COMPLETED
        await tasks.put(task)
        assert len(sent) == 1
        events = await call(partial(connection.client.xrange, connection.key("events")))
        assert [entry.field_values["k"] for entry in events] == ["task"]


def test_settings_read_the_redis_url_from_the_environment_and_hide_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIO_MCP_REDIS_URL", "redis://user:s3cret@redis.internal:6379/0")
    settings = Settings()
    assert settings.redis_url == "redis://user:s3cret@redis.internal:6379/0"
    assert "s3cret" not in repr(settings)
    monkeypatch.delenv("TRIO_MCP_REDIS_URL")
    assert Settings().redis_url is None


async def test_an_app_whose_redis_is_down_at_startup_serves_and_says_503(
    redis: RedisPeer,
) -> None:
    redis.stop()
    server, _ = task_server()
    app = server.asgi_app(Settings(redis_url=redis.url, redis_worker_timeout=1.0))
    async with serving(app) as url, open_stateless(url, capabilities=EXT) as raw:
        response = await raw.post(raw.request("tools/call", {"name": "forever"}))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        # What needs no Redis is served as ever.
        assert (await Client(url, {}).call("quick", text="hi"))["content"][0]["text"] == "echo hi"
