"""One worker process among several that share a Redis (:class:`RedisWorker`).

Three background tasks per worker, whatever the number of tasks or listeners:

- the **heartbeat** renews ``P:worker:{id}:alive`` (it expires after
  ``worker_timeout``) every third of that, and in the same script names the workers
  whose key has expired; this worker then settles their tasks ``failed`` (through the
  store's compare-and-set: once, by whoever comes first) and forgets them.
- the **reader** tails this worker's control stream and the shared events stream in
  one ``XREAD`` with explicit last ids (never ``$``: a read re-sent after a connection
  error would then skip what came meanwhile) and a short ``BLOCK``, on a connection of
  its own (:class:`~._redis_line.RedisLine`), so that cancelling it costs that
  connection and nothing else. Shutdown sets a flag and wakes the read with an entry
  on the control stream; a cancelled lifespan cancels it.
- the **publisher** appends the server's list changes and resource updates made
  here to the events stream, for the other workers' listeners.

Commands to a task on another worker travel on that worker's control stream:
``cancel`` is sent and acknowledged at once (the spec's cancellation is cooperative;
the task's worker settles it ``cancelled``); ``update`` waits for the worker's reply
on this worker's own control stream, so the client's ack means the answers were taken
(a ``tasks/get`` after it shows only the asks left).

A worker's own events reach its listeners directly, and its reader skips them in the
stream, so each is delivered once.
"""

from __future__ import annotations

import json
import logging
import secrets
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio
from coredis.tokens import PureToken

from ._jsonrpc import INTERNAL_ERROR, JSON, JSONRPCError
from ._redis_client import BLOCK_MS, STREAM_LENGTH, RedisConnection
from ._redis_line import RedisLine
from ._redis_tasks import RedisTaskStore
from ._task_store import StoreUnavailable
from ._tasks import TaskRecord

if TYPE_CHECKING:
    from ._redis_sessions import RedisSessions
    from ._server import Server
    from ._task_runner import TaskRunner

log = logging.getLogger("trio_mcp")

#: Changes waiting for the publisher; past it the newest are dropped (and logged).
_MAX_PENDING_CHANGES: Final = 1000
#: Entries taken per XREAD.
_READ_COUNT: Final = 100
#: Seconds between attempts while Redis cannot be reached.
_RETRY_DELAY: Final = 0.5
#: Seconds the client stays open at shutdown for the tasks to write their ends.
_SETTLE_BOUND: Final = 10.0
#: Entries kept in a worker's control stream.
_CONTROL_LENGTH: Final = 1000
_MAXLEN: Final = PureToken.MAXLEN
_APPROX: Final = PureToken.APPROXIMATELY

# Renew this worker's heartbeat; -> whether it had expired (1/0: Redis may have lost
# this worker's data), then the workers whose heartbeat has stopped.
_HEARTBEAT = """
local expired = 1 - redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local dead = {expired}
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if w ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. ':worker:' .. w .. ':alive') == 0 then
    table.insert(dead, w)
  end
end
return dead
"""

# Forget a lost worker once none of its tasks is left unsettled.
_FORGET = """
if redis.call('SCARD', KEYS[1]) > 0 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
"""

#: Milliseconds a retired worker's control stream is kept (only its wake-up is in it).
_RETIRED_CONTROL_MS: Final = 10_000

# A graceful end: this worker is gone, and nothing need be settled for it. Its reader
# blocks on the control stream: an entry there wakes it at once, not at the end of its
# BLOCK (a stopping worker would otherwise wait that long), and the stream then expires.
# ARGV: this worker's id, ms the control stream is kept.
_RETIRE = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'op', 'retired')
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"""


@attrs.define(eq=False)
class _Pending:
    """A forwarded ``tasks/update`` waiting for its worker's reply."""

    done: trio.Event = attrs.field(factory=trio.Event)
    error: JSON | None = None


class RedisWorker:
    """Makes one app's tasks, and its listeners' notifications, span every worker on
    the same Redis. Start it with ``await nursery.start(worker.run)`` before the task
    runner; :meth:`aclose` stops it."""

    def __init__(
        self,
        connection: RedisConnection,
        server: Server,
        runner: TaskRunner,
        store: RedisTaskStore,
        *,
        worker_timeout: float,
    ) -> None:
        self.connection = connection
        self._server = server
        self._runner = runner
        self._store = store
        self._timeout = worker_timeout
        self._pending: dict[str, _Pending] = {}
        self._closing = False
        self._wake = trio.Event()
        self._stopped = trio.Event()
        self._running = False
        #: True while relaying another worker's change to this server's subscribers:
        #: the publisher must not send it back.
        self._relaying = False
        self._changes_send, self._changes = trio.open_memory_channel[tuple[str, str]](
            _MAX_PENDING_CHANGES
        )
        self._nursery: trio.Nursery | None = None
        #: The sessions shared through Redis, whose streams this worker's reader
        #: also tails, and whose commands come on its control stream.
        self.sessions: RedisSessions | None = None
        self._beat_failed = False
        # Whether a heartbeat has been written yet (an expired one is news only then).
        self._beaten = False
        runner.remote = self
        server.subscribe_changes(self._on_change)

    @property
    def id(self) -> str:
        return self.connection.worker

    # -- life ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`aclose`. Starts even when Redis is down (logged; what
        needs it answers 503 until it is back)."""
        self._running = True
        try:
            async with self.connection.client:
                try:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        await self._beat()  # alive before the first task can be created
                        nursery.start_soon(self._heartbeat)
                        nursery.start_soon(self._publish)
                        if self.sessions is not None:
                            nursery.start_soon(self.sessions.run)
                        log.info("trio-mcp: worker %s shares tasks on Redis", self.id)
                        task_status.started()
                        await self._read()
                        nursery.cancel_scope.cancel()
                finally:
                    # Cancelled with the lifespan's nursery, the runner's tasks settle
                    # (writing their ends to Redis) at the same moment: the client
                    # stays open until they have, each within its own bound.
                    with trio.move_on_after(_SETTLE_BOUND, shield=True):
                        await self._runner.wait_stopped()
        finally:
            self._nursery = None
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop: write what is queued, say this worker is gone (so no one waits for it),
        which also wakes the reader's current read, and wait for the reader to end."""
        if self._closing:
            if self._running:
                await self._stopped.wait()
            return
        self._closing = True
        self._wake.set()
        self._server.unsubscribe_changes(self._on_change)
        self._changes_send.close()
        if not self._running:
            return
        with trio.move_on_after(BLOCK_MS / 1000 + 1):
            if self.sessions is not None:
                await self.sessions.flush()
            await self._retire()
        await self._stopped.wait()

    async def _retire(self) -> None:
        redis = self.connection
        try:
            await redis.script(
                _RETIRE,
                [
                    redis.worker_key(self.id, "alive"),
                    redis.key("workers"),
                    redis.worker_key(self.id, "control"),
                ],
                [self.id, _RETIRED_CONTROL_MS],
            )
        except StoreUnavailable:
            pass  # its heartbeat expires by itself

    async def _pause(self) -> None:
        with trio.move_on_after(_RETRY_DELAY):
            await self._wake.wait()

    # -- heartbeat ----------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self._timeout / 3)
            await self._beat()

    async def _beat(self) -> None:
        redis = self.connection
        try:
            lost = await redis.script(
                _HEARTBEAT,
                [redis.worker_key(self.id, "alive"), redis.key("workers")],
                [self.id, max(1, round(self._timeout * 1000)), redis.prefix],
            )
            expired = bool(int(lost[0])) and self._beaten
            if (self._beat_failed or expired) and self.sessions is not None:
                self.sessions.restore()
            self._beat_failed = False
            self._beaten = True
            for worker in lost[1:]:
                await self._settle_lost(str(worker))
        except StoreUnavailable:
            self._beat_failed = True  # logged once by the connection; tried again next beat

    async def _settle_lost(self, worker: str) -> None:
        """Take the sessions of a worker whose heartbeat stopped, fail every task of
        it, then forget it."""
        redis = self.connection
        if self.sessions is not None:
            await self.sessions.take_over_all(worker)
            if self.sessions.guests is not None:
                await self.sessions.guests.sweep(worker)
        tasks_key = redis.worker_key(worker, "tasks")
        task_ids = await redis.call(lambda: redis.client.smembers(tasks_key))
        for task_id in task_ids:
            record = await self._store.get(str(task_id))  # settles it failed, once
            if record is None:
                # Expired or deleted meanwhile: nothing left to settle.
                await redis.call(partial(redis.client.srem, tasks_key, [task_id]))
        forgotten = await redis.script(
            _FORGET,
            [
                tasks_key,
                redis.key("workers"),
                redis.worker_key(worker, "alive"),
                redis.worker_key(worker, "control"),
            ],
            [worker],
        )
        if forgotten:
            log.warning("trio-mcp: worker %s was lost; its tasks were settled failed", worker)

    # -- the reader ---------------------------------------------------------------------

    async def _read(self) -> None:
        # The reader's own connection, so that its reads cost what the socket costs.
        line = RedisLine(self.connection)
        try:
            await self._read_with(line)
        finally:
            line.close()

    async def _read_with(self, line: RedisLine) -> None:
        redis = self.connection
        control, events = redis.worker_key(self.id, "control"), redis.key("events")
        ids: dict[str, str] | None = None
        while not self._closing:
            try:
                if ids is None:
                    # Where each stream ends now: read from there on, never from "$".
                    ids = {
                        control: await self._last_id(control),
                        events: await self._last_id(events),
                    }
                    if self._closing:
                        # Stopped meanwhile: its wake-up may be in the ids just read,
                        # and a read from there would wait out the whole BLOCK.
                        break
                streams = dict(ids)
                if self.sessions is not None:
                    # The streams of other workers' sessions whose clients read here:
                    # in the same read (a change of the set wakes it: an entry on the control
                    # stream, see RedisSessions._send_batch).
                    streams.update(self.sessions.cursors())
                entries = await line.xread(streams, count=_READ_COUNT, block_ms=BLOCK_MS)
            except StoreUnavailable:
                await self._pause()
                continue
            for stream, items in entries:
                if stream not in ids:
                    if self.sessions is not None:
                        self.sessions.on_entries(stream, items)
                    continue
                for entry_id, fields in items:
                    ids[stream] = entry_id
                    try:
                        if stream == control:
                            self._on_control(fields)
                        else:
                            self._on_event(fields)
                    except Exception:
                        log.exception("trio-mcp: a malformed entry in %s: %r", stream, fields)

    async def _last_id(self, stream: str) -> str:
        redis = self.connection
        last = await redis.call(lambda: redis.client.xrevrange(stream, count=1))
        return str(last[0].identifier) if last else "0-0"

    def _on_event(self, fields: dict[str, Any]) -> None:
        if fields.get("o") == self.id:
            return  # this worker's own: its listeners had it directly
        data = json.loads(fields["d"])
        if fields.get("k") == "task":
            self._runner.relay(data["p"], data["t"])
        elif fields.get("k") == "change":
            self._relaying = True
            try:
                self._server.broadcast_change(data["e"], data["d"])
            finally:
                self._relaying = False

    def _on_control(self, fields: dict[str, Any]) -> None:
        op = fields.get("op")
        if op is not None and op.startswith("s."):
            if self.sessions is not None:
                self.sessions.on_control(fields)
        elif op == "cancel":
            self._runner.cancel_local(fields["task"])
        elif op == "update" and self._nursery is not None:
            self._nursery.start_soon(self._take_update, fields)
        elif op == "reply":
            pending = self._pending.get(fields["rid"])
            if pending is not None:
                pending.error = json.loads(fields["d"]) if fields.get("d") else None
                pending.done.set()

    async def _take_update(self, fields: dict[str, Any]) -> None:
        """Hand forwarded answers to the parked task here, then tell the sender."""
        error: JSON | None = None
        try:
            await self._runner.update_local(fields["task"], json.loads(fields["d"]))
        except JSONRPCError as exc:
            error = exc.to_json()
        except StoreUnavailable as exc:
            error = {"code": INTERNAL_ERROR, "message": str(exc)}
        data = "" if error is None else json.dumps(error)
        reply = {"op": "reply", "rid": fields["rid"], "d": data}
        try:
            await self._send(fields["from"], reply)
        except StoreUnavailable:
            log.warning("trio-mcp: could not confirm answers to task %s", fields["task"])

    # -- reaching other workers ---------------------------------------------------------

    async def _send(self, worker: str, fields: dict[str, str]) -> None:
        redis = self.connection
        stream = redis.worker_key(worker, "control")
        await redis.call(
            lambda: redis.client.xadd(
                stream,
                fields,
                trim_strategy=_MAXLEN,
                threshold=_CONTROL_LENGTH,
                trim_operator=_APPROX,
            )
        )

    async def cancel(self, record: TaskRecord) -> None:
        assert record.worker is not None
        await self._send(record.worker, {"op": "cancel", "task": record.task_id})

    async def update(self, record: TaskRecord, answers: dict[str, JSON]) -> None:
        assert record.worker is not None
        rid = secrets.token_hex(8)
        pending = self._pending[rid] = _Pending()
        try:
            await self._send(
                record.worker,
                {
                    "op": "update",
                    "task": record.task_id,
                    "rid": rid,
                    "from": self.id,
                    "d": json.dumps(answers),
                },
            )
            with trio.move_on_after(self._timeout):
                await pending.done.wait()
        finally:
            del self._pending[rid]
        if not pending.done.is_set():
            raise JSONRPCError(
                INTERNAL_ERROR,
                f"the server process running task {record.task_id!r} did not confirm the "
                f"answers within {self._timeout:g} s: send them again (answers to "
                "questions no longer asked are ignored)",
                {"taskId": record.task_id},
            )
        if pending.error is not None:
            raise JSONRPCError(
                int(pending.error.get("code", INTERNAL_ERROR)),
                str(pending.error.get("message", "")),
                pending.error.get("data"),
            )

    # -- changes made here --------------------------------------------------------------

    def _on_change(self, event: str, detail: str) -> None:
        if self._relaying or self._closing:
            return
        try:
            self._changes_send.send_nowait((event, detail))
        except trio.WouldBlock:
            log.warning(
                "trio-mcp: Redis is behind; a %s of %s reached no other worker", event, detail
            )

    async def _publish(self) -> None:
        redis = self.connection
        stream = redis.key("events")
        async for event, detail in self._changes:
            data = json.dumps({"e": event, "d": detail})
            fields = {"o": self.id, "k": "change", "d": data}
            try:
                await redis.call(
                    partial(
                        redis.client.xadd,
                        stream,
                        fields,
                        trim_strategy=_MAXLEN,
                        threshold=STREAM_LENGTH,
                        trim_operator=_APPROX,
                    )
                )
            except StoreUnavailable:
                log.warning("trio-mcp: a %s of %s reached no other worker", event, detail)
