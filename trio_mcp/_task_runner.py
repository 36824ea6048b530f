"""Running tasks (``io.modelcontextprotocol/tasks``): calls that outlive their request.

A ``tools/call`` that becomes a task is recorded in the :class:`~trio_mcp.TaskStore`
first (so the ``tasks/get`` a client sends the moment it has the id succeeds), then run
in the runner's nursery, which the app's lifespan owns: not in the request's, which ends
as soon as the ``CreateTaskResult`` is sent. The handler is the same coroutine it would
be inline; its :class:`~trio_mcp.Context` talks to a :class:`TaskPort`.

Asking the client from a task: ``await ctx.elicit(...)`` (or ``sample``, ``list_roots``,
or an :class:`~trio_mcp.InputRequired` the server answers through the port) parks the
coroutine on a :class:`trio.Event` and shows the question in the task's
``inputRequests`` under a key never used before in this task, with the status
``input_required``. ``tasks/update`` hands the answer to the parked coroutine, which
resumes where it waited: nothing runs twice. Several asks may be pending at once (a
handler asking in a nursery); each answer releases its own.

Cancellation: ``tasks/cancel`` cancels the task's cancel scope, as cancelling any trio
task does, and the task settles ``cancelled``. Shutting the runner down cancels every
task, and each settles ``cancelled`` with a message saying so.

Expiry: a task's record is deleted from the store ``ttl`` seconds after its last
update (one :class:`~trio_mcp._heartbeat.DelayQueue` for all of them, not a timer
each), once the task has ended. The spec's ``ttlMs`` counts from creation and lets the
server discard the record after it; it never asks for live work to be stopped, so a
task still running when its time comes is left running and looked at again a ``ttl``
later (its run is bounded by the tool's timeout). A record is thus kept at least
``ttlMs`` from its creation, as the client may expect.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from ._context import Context
from ._heartbeat import DelayQueue
from ._input import CAPABILITY_OF, check_answer
from ._jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, JSON, JSONRPCError, Request, RequestId
from ._stateless import complete
from ._task_store import InMemoryTaskStore, TaskStore
from ._tasks import (
    CANCELLED,
    COMPLETED,
    FAILED,
    INPUT_REQUIRED,
    WORKING,
    TaskRecord,
    TasksFull,
    iso_now,
    new_task_id,
    task_id_of,
    unknown_task,
)

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("trio_mcp")

#: ``watcher(principal, detailed_task)``: told of every change a client could see.
TaskWatcher = Callable[[str | None, JSON], None]


class RemoteTasks(Protocol):
    """Reaches the worker process that runs a task, for a runner that shares its
    store with others (:class:`~trio_mcp._redis_worker.RedisWorker`)."""

    async def cancel(self, record: TaskRecord) -> None:
        """Ask the task's worker to cancel it; returns once the request is sent."""

    async def update(self, record: TaskRecord, answers: dict[str, JSON]) -> None:
        """Hand checked answers to the task's worker; returns once it has taken them
        (a ``tasks/get`` after shows only what is left), else raises JSONRPCError."""


#: Seconds a settling write may take once the task itself was cancelled.
_SETTLE_TIMEOUT = 5.0
#: Seconds creating a task's record may take, shielded from the request's end.
_CREATE_TIMEOUT = 5.0


@attrs.define(eq=False)
class _Ask:
    method: str
    request: JSON
    event: trio.Event = attrs.field(factory=trio.Event)
    answer: JSON | None = None


@attrs.define(eq=False)
class _LiveTask:
    """What of a task only this process has: its cancel scope and its pending asks."""

    record: TaskRecord
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    #: Serialises the task's writes, so the store never gets an older snapshot last.
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    asks: dict[str, _Ask] = attrs.field(factory=dict)
    used_keys: set[str] = attrs.field(factory=set)
    counts: dict[str, int] = attrs.field(factory=dict)
    #: Why the scope was cancelled, for the ``cancelled`` status message.
    cancel_reason: str = "cancelled"


class TaskPort:
    """The :class:`~trio_mcp._context.SessionPort` of a task's handler.

    Progress and log notifications have nowhere to go (the spec supports neither on
    tasks) and are dropped; a request to the client parks the handler until
    ``tasks/update`` answers it."""

    __slots__ = ("_capabilities", "_live", "_runner", "_version", "subscriptions")

    def __init__(
        self, runner: TaskRunner, live: _LiveTask, protocol_version: str, capabilities: JSON
    ) -> None:
        self._runner = runner
        self._live = live
        self._version = protocol_version
        self._capabilities = capabilities
        self.subscriptions: set[str] = set()

    @property
    def protocol_version(self) -> str:
        return self._version

    @property
    def client_capabilities(self) -> JSON:
        return self._capabilities

    @property
    def log_level(self) -> str | None:
        return None

    def set_log_level(self, level: str) -> None:
        """Unreachable: a task serves no ``logging/setLevel``."""

    async def notify(
        self, method: str, params: JSON | None, *, related_request: RequestId | None = None
    ) -> None:
        """Dropped: no stream belongs to a task."""

    async def request(
        self,
        method: str,
        params: JSON | None,
        *,
        related_request: RequestId | None = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> JSON:
        if method not in CAPABILITY_OF:
            raise JSONRPCError(INTERNAL_ERROR, f"{method} cannot be asked of a client in a task")
        return await self._runner._ask(self._live, method, params, key, timeout)


class TaskRunner:
    """Runs the tasks of one :class:`~trio_mcp.Server` and serves ``tasks/*``.

    ``ttl`` is the seconds a task is kept after its last update (None: until the
    runner stops), ``poll_interval`` the seconds suggested between polls. At most
    ``max_tasks`` run at once, ``max_per_principal`` of them for one authenticated
    principal; of those that ended, the newest ``max_finished`` records are kept.
    Start it with ``await nursery.start(runner.run)``; :meth:`close` stops it.
    """

    def __init__(
        self,
        server: Server,
        store: TaskStore | None = None,
        *,
        ttl: float | None = 3600.0,
        poll_interval: float = 1.0,
        max_tasks: int = 1000,
        max_per_principal: int = 100,
        max_finished: int = 10_000,
        worker: str | None = None,
    ) -> None:
        self._server = server
        #: This process's id in a shared store (written into each task's record), and
        #: what reaches the others' tasks; None when one process serves everything.
        self.worker = worker
        self.remote: RemoteTasks | None = None
        self.store: TaskStore = store if store is not None else InMemoryTaskStore()
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.max_tasks = max_tasks
        self.max_per_principal = max_per_principal
        self.max_finished = max_finished
        self._live: dict[str, _LiveTask] = {}
        #: Tasks running now per authenticated principal.
        self._running_for: dict[str, int] = {}
        #: Ids of ended tasks whose records this runner keeps, oldest first.
        self._finished: dict[str, None] = {}
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._started = False
        #: Set once :meth:`run` has returned: every task has settled.
        self._stopped = trio.Event()
        self._watchers: set[TaskWatcher] = set()
        self._reaper: DelayQueue[str] | None = None
        self._expired_send, self._expired = trio.open_memory_channel[str](math.inf)

    # -- life ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`close` (or cancelled): every task runs in here."""
        self._started = True
        async with trio.open_nursery() as nursery:
            if self.ttl is not None:
                self._reaper = DelayQueue(self.ttl, self._expired_send.send_nowait)
                nursery.start_soon(self._reaper.run)
                nursery.start_soon(self._reap)
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
        self._stopped.set()

    @property
    def running(self) -> bool:
        return self._nursery is not None

    def close(self) -> None:
        """Stop: every running task is cancelled and settles ``cancelled``."""
        self._closing = True
        if self._nursery is not None:
            for live in self._live.values():
                live.cancel_reason = "the server shut down"
            self._nursery.cancel_scope.cancel()

    async def aclose(self) -> None:
        """:meth:`close`, then wait until every task has settled (each within its own
        bound), so that whoever is told of their ends is told before what follows."""
        self.close()
        if self.running:
            await self._stopped.wait()

    async def wait_stopped(self) -> None:
        """Wait until every task has settled, once :meth:`run` was started (at once
        if it never was): what a shared store's client waits for before it closes."""
        if self._started:
            await self._stopped.wait()

    def __len__(self) -> int:
        """Tasks running in this process now."""
        return len(self._live)

    def watch(self, watcher: TaskWatcher) -> None:
        self._watchers.add(watcher)

    def unwatch(self, watcher: TaskWatcher) -> None:
        self._watchers.discard(watcher)

    # -- creating -----------------------------------------------------------------------

    async def start(
        self,
        request: Request,
        *,
        protocol_version: str,
        capabilities: JSON,
        meta: JSON,
        principal: str | None,
        prepared: Any = None,
        prepared_ready: bool = False,
    ) -> JSON:
        """Record a task for ``request`` and start running it; its ``CreateTaskResult``.

        ``prepared`` is what the tool's ``before_task`` returned on the request, handed
        to the handler as ``ctx.prepared``."""
        nursery = self._nursery
        if self._closing:
            raise TasksFull("the server is shutting down: retry on another instance")
        if nursery is None:
            raise JSONRPCError(
                INTERNAL_ERROR,
                "tasks cannot run: the app's lifespan (which runs them) is not running",
            )
        self._check_room(principal)
        now = iso_now()
        record = TaskRecord(
            task_id=new_task_id(),
            status=WORKING,
            created_at=now,
            last_updated_at=now,
            ttl_ms=None if self.ttl is None else max(1, round(self.ttl * 1000)),
            poll_interval_ms=max(1, round(self.poll_interval * 1000)),
            principal=principal,
            worker=self.worker,
        )
        # Armed before the store hears of it: a record it kept while the create failed
        # or timed out below is still reaped (once it is known not to run).
        if self._reaper is not None:
            self._reaper.touch(record.task_id)
        # Durable before anyone hears of it: the spec's strong consistency of creation.
        # Shielded from the request's cancellation (its client leaving), within a
        # bound: a create the store completed must become a running task, or its
        # ``working`` record would be an orphan that nothing ever ends.
        with trio.move_on_after(_CREATE_TIMEOUT, shield=True) as creating:
            await self.store.create(record)
            live = _LiveTask(record)
            self._live[record.task_id] = live
            if principal is not None:
                self._running_for[principal] = self._running_for.get(principal, 0) + 1
            context = Context(
                TaskPort(self, live, protocol_version, capabilities), request.id, dict(meta)
            )
            context.prepared = prepared
            context.prepared_ready = prepared_ready
            nursery.start_soon(self._run, live, request, context, name=f"task {record.task_id}")
        if creating.cancelled_caught:
            raise JSONRPCError(
                INTERNAL_ERROR,
                f"the task store took longer than {_CREATE_TIMEOUT:g} s to create the task; "
                "it was not started",
            )
        return record.created()

    def _check_room(self, principal: str | None) -> None:
        """Refuse a new task past a limit (:class:`TasksFull`), saying which and what
        to do. Without authentication every client is the same principal (None), so
        only the whole app's limit applies."""
        if len(self._live) >= self.max_tasks:
            raise TasksFull(
                f"the server runs as many tasks as it may at once (Settings.max_tasks, "
                f"{self.max_tasks}): retry once some have ended"
            )
        if principal is not None and self._running_for.get(principal, 0) >= (
            self.max_per_principal
        ):
            raise TasksFull(
                f"you run as many tasks as one client may at once "
                f"(Settings.max_tasks_per_principal, {self.max_per_principal}): retry once "
                "one has ended, or end one with tasks/cancel"
            )

    async def _run(self, live: _LiveTask, request: Request, context: Context) -> None:
        status: str = CANCELLED
        fields: dict[str, Any] = {"status_message": live.cancel_reason}
        try:
            with live.scope:
                result = await self._server.handle_request(request, context)
                # What the request would have returned inline: a result of this wire.
                result = complete(result, self._server.identity)
                status, fields = COMPLETED, {"result": result}
            if live.scope.cancelled_caught:
                status, fields = CANCELLED, {"status_message": live.cancel_reason}
        except JSONRPCError as exc:
            status, fields = FAILED, {"error": exc.to_json(), "status_message": exc.message}
        except Exception:
            log.exception("task %s of %s failed", live.record.task_id, request.method)
            status = FAILED
            fields = {"error": {"code": INTERNAL_ERROR, "message": "Internal error"}}
        finally:
            # Also when the runner itself is cancelled (shutdown): say how it ended.
            with trio.move_on_after(_SETTLE_TIMEOUT, shield=True):
                if status == CANCELLED:
                    fields = {"status_message": live.cancel_reason}
                try:
                    await self._settle(live, status, fields)
                except Exception:
                    # The store's failure is this task's alone: raised on, it would end
                    # the runner's nursery, every other task and the app with it.
                    log.exception(
                        "task %s: the task store failed to record that it ended %s",
                        live.record.task_id,
                        live.record.status,
                    )
            self._ended(live)
            with trio.move_on_after(_SETTLE_TIMEOUT, shield=True):
                await self._forget_oldest_finished()

    def _ended(self, live: _LiveTask) -> None:
        task_id, principal = live.record.task_id, live.record.principal
        self._live.pop(task_id, None)
        if principal is not None:
            left = self._running_for.pop(principal, 1) - 1
            if left:
                self._running_for[principal] = left
        self._finished[task_id] = None

    async def _forget_oldest_finished(self) -> None:
        """Delete the oldest ended tasks' records past ``max_finished``: whatever the
        TTL, a flood of short tasks never holds the store's memory without bound."""
        while len(self._finished) > self.max_finished:
            oldest = next(iter(self._finished))
            del self._finished[oldest]
            if self._reaper is not None:
                self._reaper.forget(oldest)
            await self._delete(oldest, "dropped (Settings.max_finished_tasks)")

    async def _settle(self, live: _LiveTask, status: str, fields: dict[str, Any]) -> None:
        """Record how the task ended. Its watchers are told even when the store fails
        (which is raised on, for the caller to log): a listener still learns the end."""
        async with live.lock:
            record = live.record
            record.status = status
            record.input_requests = {}
            for name, value in fields.items():
                setattr(record, name, value)
            stored: bool | None = None
            try:
                try:
                    stored = await self._store(live)
                except (TypeError, ValueError) as exc:
                    # A result that is not JSON: the call failed, as it would have inline.
                    log.warning("task %s: its result cannot be stored: %s", record.task_id, exc)
                    record.status, record.result = FAILED, None
                    record.error = {"code": INTERNAL_ERROR, "message": "the result is not JSON"}
                    record.status_message = None
                    stored = await self._store(live)
            finally:
                # Refused (False): the stored record is gone or already terminal, and
                # what the watchers were told of it stands.
                if stored is not False:
                    self._tell(record)

    async def _write(self, live: _LiveTask) -> None:
        """Store the task's record as it is now and tell the watchers; its lock is held."""
        if await self._store(live):
            self._tell(live.record)

    async def _store(self, live: _LiveTask) -> bool:
        """Put the record; whether the store took it (see :meth:`TaskStore.put`)."""
        record = live.record
        record.last_updated_at = iso_now()
        try:
            stored = await self.store.put(record)
            if not stored:
                log.debug("task %s: the store kept its record as it was", record.task_id)
            return stored
        finally:
            # Armed even when the store failed: whatever it kept is reaped in time.
            if self._reaper is not None:
                self._reaper.touch(record.task_id)

    def _tell(self, record: TaskRecord) -> None:
        if self._watchers:
            self.relay(record.principal, record.detailed())

    def relay(self, principal: str | None, detailed: JSON) -> None:
        """Tell the watchers (listeners) of a task's change: this runner's own, or one
        another worker made, heard through the shared store."""
        for watcher in list(self._watchers):
            watcher(principal, detailed)

    # -- asking the client --------------------------------------------------------------

    def _key(self, live: _LiveTask, method: str, key: str | None) -> str:
        """A key for an ask never used before in this task (the spec requires keys to
        be unique over a task's life, so an answer can only mean one question)."""
        if key is None:
            kind = CAPABILITY_OF[method]
            live.counts[kind] = count = live.counts.get(kind, 0) + 1
            key = f"{kind}-{count}"
        unique, n = key, 1
        while unique in live.used_keys:
            n += 1
            unique = f"{key}-{n}"
        live.used_keys.add(unique)
        return unique

    async def _ask(
        self,
        live: _LiveTask,
        method: str,
        params: JSON | None,
        key: str | None,
        timeout: float | None,
    ) -> JSON:
        request: JSON = {"method": method}
        if params is not None:
            request["params"] = params
        ask = _Ask(method, request)
        wire_key = self._key(live, method, key)
        async with live.lock:
            live.asks[wire_key] = ask
            await self._show_asks(live)
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                await ask.event.wait()
        except trio.TooSlowError:
            async with live.lock:
                if live.asks.pop(wire_key, None) is not None:
                    await self._show_asks(live)
            raise
        finally:
            live.asks.pop(wire_key, None)
        assert ask.answer is not None
        return ask.answer

    async def _show_asks(self, live: _LiveTask) -> None:
        record = live.record
        if record.terminal:
            return
        record.input_requests = {key: ask.request for key, ask in live.asks.items()}
        record.status = INPUT_REQUIRED if live.asks else WORKING
        await self._write(live)

    # -- tasks/* ------------------------------------------------------------------------

    async def serve(self, method: str, params: JSON, principal: str | None) -> JSON:
        """The result of ``tasks/get``, ``tasks/update`` or ``tasks/cancel``."""
        task_id = task_id_of(params)
        record = await self.store.get(task_id)
        if record is None or record.principal != principal:
            raise unknown_task(task_id)
        if method == "tasks/get":
            return record.detailed()
        if method == "tasks/update":
            await self._update(task_id, params.get("inputResponses"))
            return {}
        if method == "tasks/cancel":
            await self._cancel(record)
            return {}
        raise JSONRPCError(INVALID_PARAMS, f"not a tasks method: {method}")

    async def _update(self, task_id: str, responses: Any) -> None:
        if not isinstance(responses, dict):
            raise JSONRPCError(INVALID_PARAMS, "tasks/update needs an object 'inputResponses'")
        if task_id in self._live:
            await self.update_local(task_id, responses)
            return
        # Looked up again: it may have ended here since. An ended task's answers are
        # ignored, as answers to keys no longer asked are (the spec).
        record = await self.store.get(task_id)
        if record is None or record.terminal:
            return
        if self.remote is not None and record.worker not in (None, self.worker):
            # Checked here against the asks the record shows, so a malformed answer is
            # refused at once and the task's worker only ever gets good ones.
            taken = {
                key: check_answer(key, str(record.input_requests[key].get("method")), answer)
                for key, answer in responses.items()
                if key in record.input_requests
            }
            if taken:
                await self.remote.update(record, taken)
            return
        # Its coroutine, and what it waits for, are in another process: an ack here
        # would lose the answers.
        raise JSONRPCError(
            INTERNAL_ERROR,
            f"task {task_id!r} runs on another instance of this server, which alone "
            "can take its answers: send tasks/update where it runs (route on the "
            "Mcp-Name header, the task's id)",
            {"taskId": task_id},
        )

    async def update_local(self, task_id: str, responses: dict[str, Any]) -> None:
        """Hand answers to a task running here: each releases its parked ask. Answers
        to keys not outstanding (or to a task no longer running) are ignored."""
        live = self._live.get(task_id)
        if live is None:
            return
        async with live.lock:
            # Answers to keys not outstanding are ignored (the spec); the others are all
            # checked before any is taken, so a bad one loses nothing.
            taken = {
                key: check_answer(key, live.asks[key].method, answer)
                for key, answer in responses.items()
                if key in live.asks
            }
            for key, answer in taken.items():
                ask = live.asks.pop(key)
                ask.answer = answer
                ask.event.set()
            if taken:
                # Shown before the ack: a tasks/get right after sees only what is left.
                await self._show_asks(live)

    async def _cancel(self, record: TaskRecord) -> None:
        """Cancel the task where it runs; it then settles ``cancelled`` by itself.

        Here, its cancel scope is cancelled. On another worker sharing the store, that
        worker is asked to (``remote``) and the cancel is acknowledged once the request
        is sent: the spec's cancellation is cooperative, so the ack promises nothing,
        and the ``cancelled`` state appears when the task's own worker settles it.
        Without a way to reach it the cancel is acknowledged and left alone: writing
        ``cancelled`` here would fabricate an end that its runner may contradict (a
        terminal state never changes)."""
        if record.terminal:
            return
        if self.cancel_local(record.task_id):
            return
        if self.remote is not None and record.worker not in (None, self.worker):
            await self.remote.cancel(record)
            return
        log.debug("task %s: cancelled where it does not run; only its instance can", record.task_id)

    def cancel_local(self, task_id: str, reason: str = "cancelled by the client") -> bool:
        """Cancel a task running here; whether one was."""
        live = self._live.get(task_id)
        if live is None:
            return False
        live.cancel_reason = reason
        live.scope.cancel()
        return True

    # -- expiry -------------------------------------------------------------------------

    async def _reap(self) -> None:
        async for task_id in self._expired:
            if task_id in self._live and self._reaper is not None:
                # Still working: its record stays while it runs, and is due again later.
                self._reaper.touch(task_id)
                try:
                    await self.store.keep(task_id)
                except Exception:
                    log.exception("task %s: the task store failed to keep its record", task_id)
                continue
            self._finished.pop(task_id, None)
            await self._delete(task_id, "expired")

    async def _delete(self, task_id: str, why: str) -> None:
        try:
            await self.store.delete(task_id)
        except Exception:
            # One record left behind is the store's problem; the runner goes on.
            log.exception("task %s %s, but the task store failed to delete it", task_id, why)
            return
        log.debug("task %s %s", task_id, why)
