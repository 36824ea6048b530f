"""Task records in Redis (:class:`RedisTaskStore`): every worker that shares the Redis
sees every task.

Each write is one Lua script, so it is atomic and one round trip: ``create`` stores
the record and adds it to its worker's set of tasks; ``put`` is the compare-and-set
:class:`~trio_mcp.TaskStore` asks for (nothing is written over a terminal or deleted
record) and, in the same script, appends the change to the events stream that every
worker relays to its listeners (a status change costs one command); ``get`` returns
the record and whether the worker running it is alive. A record expires in Redis by
itself (``PEXPIRE``: ``task_ttl`` after the last update once ended, twice that while
running, renewed by the runner through :meth:`RedisTaskStore.keep`), so a worker that
dies leaves nothing behind for ever.

A task whose worker has no heartbeat any more (its ``alive`` key expired) is settled
``failed`` with an error saying so by whoever reads it first: the compare-and-set lets
exactly one writer do it, and its event reaches every listener.
"""

from __future__ import annotations

import json
from typing import Final

from ._jsonrpc import INTERNAL_ERROR, JSON
from ._redis_client import STREAM_LENGTH, RedisConnection
from ._task_store import TaskStore
from ._tasks import FAILED, TaskRecord, iso_now

#: The error a task whose worker was lost fails with.
WORKER_LOST: Final = (
    "the server process running this task was lost (its heartbeat in Redis stopped) "
    "before the task ended; start it again"
)

_TERMINAL_LUA = "s == 'completed' or s == 'failed' or s == 'cancelled'"

# The creating worker is alive: said here too, so that a Redis that restarted empty
# does not see its new task as a lost worker's before its next heartbeat.
_CREATE = """
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'status', ARGV[2], 'worker', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[6])
  redis.call('SADD', KEYS[4], ARGV[3])
end
return 1
"""

# -> false (no record), or {json, alive}: alive is 0 only for a record that is not
# terminal and whose worker (not the caller) has no heartbeat.
_GET = f"""
local v = redis.call('HMGET', KEYS[1], 'json', 'status', 'worker')
if not v[1] then return false end
local s, w = v[2], v[3]
if {_TERMINAL_LUA} or not w or w == '' or w == ARGV[2] then return {{v[1], 1}} end
return {{v[1], redis.call('EXISTS', ARGV[1] .. ':worker:' .. w .. ':alive')}}
"""

# The compare-and-set: 0 (nothing written) if the record is gone or terminal.
_PUT = f"""
local s = redis.call('HGET', KEYS[1], 'status')
if not s or {_TERMINAL_LUA} then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'status', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
s = ARGV[2]
if {_TERMINAL_LUA} then
  local w = redis.call('HGET', KEYS[1], 'worker')
  if w and w ~= '' then redis.call('SREM', ARGV[4] .. ':worker:' .. w .. ':tasks', ARGV[5]) end
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'o', ARGV[8], 'k', 'task', 'd', ARGV[6])
end
return 1
"""

_DELETE = """
local w = redis.call('HGET', KEYS[1], 'worker')
redis.call('DEL', KEYS[1])
if w and w ~= '' then redis.call('SREM', ARGV[1] .. ':worker:' .. w .. ':tasks', ARGV[2]) end
return 1
"""


class RedisTaskStore(TaskStore):
    """Task records in Redis, shared by every worker on ``connection``'s Redis.

    ``ttl`` is the runner's (``Settings.task_ttl``): seconds an ended task's record
    lives after its last update; a running one's lives twice that, renewed while it
    runs. None: records never expire by themselves. ``worker_timeout``
    (``Settings.redis_worker_timeout``) is how long the creating worker's heartbeat
    holds, renewed with each task it creates. Every method may raise
    :class:`~trio_mcp._task_store.StoreUnavailable`; none is ever cancelled mid-command
    (see :mod:`trio_mcp._redis_client`)."""

    def __init__(
        self, connection: RedisConnection, ttl: float | None, worker_timeout: float = 10.0
    ) -> None:
        self._redis = connection
        self._alive_ms = max(1, round(worker_timeout * 1000))
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))

    def _key(self, task_id: str) -> str:
        return self._redis.key("task", task_id)

    def _expiry(self, record: TaskRecord) -> int:
        return self._ttl_ms if record.terminal else 2 * self._ttl_ms

    async def create(self, record: TaskRecord) -> None:
        text = json.dumps(record.to_json())
        redis = self._redis
        worker = record.worker or ""
        await redis.script(
            _CREATE,
            [
                self._key(record.task_id),
                redis.worker_key(worker or "-", "tasks"),
                redis.worker_key(worker or "-", "alive"),
                redis.key("workers"),
            ],
            [text, record.status, worker, self._expiry(record), record.task_id, self._alive_ms],
        )

    async def get(self, task_id: str) -> TaskRecord | None:
        redis = self._redis
        found = await redis.script(_GET, [self._key(task_id)], [redis.prefix, redis.worker])
        if not found:
            return None
        text, alive = found
        record = TaskRecord.from_json(json.loads(text))
        if int(alive):
            return record
        return await self._settle_lost(record)

    async def _settle_lost(self, record: TaskRecord) -> TaskRecord | None:
        """Fail a task whose worker is gone; whoever's compare-and-set lands first
        writes it (and its event), the others read what it wrote."""
        record.status = FAILED
        record.input_requests = {}
        record.error = lost_error()
        record.status_message = WORKER_LOST
        record.last_updated_at = iso_now()
        # Origin "" : every worker's reader relays it, this one's included.
        if await self._put(record, origin=""):
            return record
        found = await self._redis.script(
            _GET, [self._key(record.task_id)], [self._redis.prefix, self._redis.worker]
        )
        return None if not found else TaskRecord.from_json(json.loads(found[0]))

    async def put(self, record: TaskRecord) -> bool:
        return await self._put(record, origin=self._redis.worker)

    async def _put(self, record: TaskRecord, origin: str) -> bool:
        text = json.dumps(record.to_json())  # first: an unsendable record changes nothing
        event = json.dumps({"p": record.principal, "t": record.detailed()})
        redis = self._redis
        stored = await redis.script(
            _PUT,
            [self._key(record.task_id), redis.key("events")],
            [
                text,
                record.status,
                self._expiry(record),
                redis.prefix,
                record.task_id,
                event,
                STREAM_LENGTH,
                origin,
            ],
        )
        return bool(int(stored))

    async def delete(self, task_id: str) -> None:
        await self._redis.script(_DELETE, [self._key(task_id)], [self._redis.prefix, task_id])

    async def keep(self, task_id: str) -> None:
        if self._ttl_ms:
            key, expiry = self._key(task_id), 2 * self._ttl_ms
            await self._redis.call(lambda: self._redis.client.pexpire(key, expiry))


def lost_error() -> JSON:
    """The JSON-RPC error of a task whose worker was lost."""
    return {"code": INTERNAL_ERROR, "message": WORKER_LOST}
