"""Where task records live: a small seam, so they can live elsewhere than in memory.

The runner keeps what cannot leave the process (the running coroutine, its parked
asks) and writes everything a client may see into a :class:`TaskStore`: a task is in
the store before its ``CreateTaskResult`` is sent, so a ``tasks/get`` anywhere finds it.
Records cross the seam as :class:`~trio_mcp._tasks.TaskRecord`, whose
:meth:`~trio_mcp._tasks.TaskRecord.to_json` is all a store needs to keep.
"""

from __future__ import annotations

import abc
import json

from ._tasks import TaskRecord


class StoreUnavailable(Exception):
    """The store cannot be reached now (a remote store's server is down or too slow).

    Waiting may cure it: the stateless transport answers the request that needed the
    store with HTTP 503 and ``Retry-After: retry_after`` rather than a JSON-RPC error,
    so a client (or its load balancer) retries, and nothing of the request was kept."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TaskStore(abc.ABC):
    """Keeps task records by id. Every method is async, so a store may be remote.

    ``create`` must be durable when it returns (the spec's strong consistency of
    creation). ``put`` replaces a record and says whether it did: it must not bring
    back one deleted since (a reaped task stays gone) nor overwrite one that is
    terminal (``completed``, ``failed``, ``cancelled``: "once reached, the task's state
    does not change"), so a remote store makes it a compare-and-set on the stored
    status. ``delete`` of an unknown id is no error.
    """

    @abc.abstractmethod
    async def create(self, record: TaskRecord) -> None: ...

    @abc.abstractmethod
    async def get(self, task_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    async def put(self, record: TaskRecord) -> bool:
        """Replace the record; False (nothing written) if it is gone or terminal."""

    @abc.abstractmethod
    async def delete(self, task_id: str) -> None: ...

    async def keep(self, task_id: str) -> None:
        """The task still runs: a store that expires records by itself (Redis) keeps
        this one longer. Called by the runner once per ``ttl`` while the task runs;
        a store that never expires records on its own does nothing."""
        return None


class InMemoryTaskStore(TaskStore):
    """Records as JSON text in a dict: one process's tasks. Keeping the text, not the
    object, means a record that could not be stored remotely fails here too, and no
    caller can change a stored record behind the store's back."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        #: Ids whose stored record is terminal: never written again.
        self._ended: set[str] = set()

    async def create(self, record: TaskRecord) -> None:
        self._records[record.task_id] = json.dumps(record.to_json())
        if record.terminal:
            self._ended.add(record.task_id)

    async def get(self, task_id: str) -> TaskRecord | None:
        text = self._records.get(task_id)
        return None if text is None else TaskRecord.from_json(json.loads(text))

    async def put(self, record: TaskRecord) -> bool:
        text = json.dumps(record.to_json())  # first: an unsendable record changes nothing
        task_id = record.task_id
        if task_id not in self._records or task_id in self._ended:
            return False
        self._records[task_id] = text
        if record.terminal:
            self._ended.add(task_id)
        return True

    async def delete(self, task_id: str) -> None:
        self._records.pop(task_id, None)
        self._ended.discard(task_id)

    def __len__(self) -> int:
        return len(self._records)
