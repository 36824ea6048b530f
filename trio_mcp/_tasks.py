"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663), free of I/O.

A client that declares the extension in a request's ``clientCapabilities`` may get, in
answer to ``tools/call``, a *task*: a handle (``resultType: "task"``) it polls with
``tasks/get``, answers questions through with ``tasks/update`` and stops with
``tasks/cancel``. This module holds what every part agrees on: the record of one task
(JSON-able, so that a store may keep it anywhere), the shapes the wire shows of it, how
a tool says whether it may run as one, and the errors of the extension. It knows no
trio and no HTTP: the runner (:mod:`trio_mcp._task_runner`) runs tasks, a
:class:`~trio_mcp.TaskStore` keeps their records.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Final, Literal

import attrs

from ._jsonrpc import INVALID_PARAMS, JSON, SERVER_BUSY, JSONRPCError

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
#: MissingRequiredClientCapability (2026-07-28).
MISSING_REQUIRED_CAPABILITY: Final = -32021
#: The methods of the extension (``tasks/result`` and ``tasks/list`` are gone).
TASK_METHODS: Final = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
#: Requests that may become a task (the spec names only this one so far).
TASKABLE_METHODS: Final = frozenset({"tools/call"})

WORKING: Final = "working"
INPUT_REQUIRED: Final = "input_required"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
TERMINAL: Final = frozenset({COMPLETED, FAILED, CANCELLED})

#: How a tool runs for a client that declared the extension: never as a task (the
#: default), as one (``optional``: inline for a client without it), or only as one
#: (``required``: a client without it gets -32021).
TaskMode = Literal["never", "optional", "required"]
TASK_MODES: Final = ("never", "optional", "required")


def declares_tasks(client_capabilities: JSON) -> bool:
    """Whether a request's ``clientCapabilities`` declare the extension."""
    extensions = client_capabilities.get("extensions")
    return isinstance(extensions, dict) and isinstance(extensions.get(TASKS_EXTENSION), dict)


def missing_extension(what: str) -> JSONRPCError:
    """-32021 naming the extension, as the spec asks of a client that did not declare it."""
    return JSONRPCError(
        MISSING_REQUIRED_CAPABILITY,
        f"{what} needs the client's {TASKS_EXTENSION!r} extension, which this request did "
        "not declare in clientCapabilities.extensions",
        {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


class TasksFull(JSONRPCError):
    """No task may start now: as many run as a limit allows. The overload code
    (:data:`~trio_mcp.SERVER_BUSY`), since waiting cures it; an ``optional`` tool
    runs inline instead, as for a client without the extension."""

    def __init__(self, message: str) -> None:
        super().__init__(SERVER_BUSY, message)


def unknown_task(task_id: object) -> JSONRPCError:
    # Expired, never issued or someone else's: the same answer, so ids leak nothing.
    return JSONRPCError(INVALID_PARAMS, f"Task not found: {task_id!r}", {"taskId": task_id})


def task_id_of(params: JSON) -> str:
    task_id = params.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise JSONRPCError(INVALID_PARAMS, "tasks/* needs a non-empty string 'taskId'")
    return task_id


def new_task_id() -> str:
    """An unguessable id: the spec lets it serve as the bearer of the task's state."""
    return secrets.token_urlsafe(18)


def iso_now(now: datetime | None = None) -> str:
    """An ISO 8601 timestamp in UTC with millisecond precision."""
    moment = now or datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.define
class TaskRecord:
    """One task as the store keeps it: everything ``tasks/get`` shows, plus its owner.

    Only JSON-able values, so a store may keep :meth:`to_json` anywhere (a dict, Redis).
    ``input_requests`` are the outstanding asks by key; ``result`` or ``error`` is set
    once the task is ``completed`` or ``failed``.
    """

    task_id: str
    status: str
    created_at: str
    last_updated_at: str
    #: Milliseconds the task is kept after its last update; None: until the server ends.
    ttl_ms: int | None
    poll_interval_ms: int | None
    #: Who created it (the authenticated principal), or None without authentication.
    principal: str | None = None
    status_message: str | None = None
    input_requests: dict[str, JSON] = attrs.field(factory=dict)
    result: JSON | None = None
    error: JSON | None = None
    #: Which worker process runs it (a shared store routes ``tasks/cancel`` and
    #: ``tasks/update`` there); None where one process serves everything.
    worker: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> JSON:
        data: JSON = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.last_updated_at,
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_interval_ms,
            "principal": self.principal,
            "statusMessage": self.status_message,
            "inputRequests": self.input_requests,
            "result": self.result,
            "error": self.error,
        }
        if self.worker is not None:
            data["worker"] = self.worker
        return data

    @classmethod
    def from_json(cls, data: JSON) -> TaskRecord:
        return cls(
            task_id=data["taskId"],
            status=data["status"],
            created_at=data["createdAt"],
            last_updated_at=data["lastUpdatedAt"],
            ttl_ms=data.get("ttlMs"),
            poll_interval_ms=data.get("pollIntervalMs"),
            principal=data.get("principal"),
            status_message=data.get("statusMessage"),
            input_requests=dict(data.get("inputRequests") or {}),
            result=data.get("result"),
            error=data.get("error"),
            worker=data.get("worker"),
        )

    def _base(self) -> JSON:
        shape: JSON = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.last_updated_at,
            "ttlMs": self.ttl_ms,
        }
        if self.poll_interval_ms is not None:
            shape["pollIntervalMs"] = self.poll_interval_ms
        if self.status_message is not None:
            shape["statusMessage"] = self.status_message
        return shape

    def created(self) -> JSON:
        """The ``CreateTaskResult`` (flat: ``Result & Task``): no result, error or asks."""
        return {"resultType": "task", **self._base()}

    def detailed(self) -> JSON:
        """The ``DetailedTask`` of ``tasks/get`` and ``notifications/tasks``: the status's
        own payload inlined (``inputRequests``, ``result`` or ``error``)."""
        shape = self._base()
        if self.status == INPUT_REQUIRED:
            shape["inputRequests"] = dict(self.input_requests)
        elif self.status == COMPLETED and self.result is not None:
            shape["result"] = self.result
        elif self.status == FAILED and self.error is not None:
            shape["error"] = self.error
        return shape


def check_mode(mode: Any) -> TaskMode:
    if mode not in TASK_MODES:
        raise ValueError(f"task= must be one of {', '.join(map(repr, TASK_MODES))}, not {mode!r}")
    return mode  # type: ignore[no-any-return]
