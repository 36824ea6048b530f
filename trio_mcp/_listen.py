"""``subscriptions/listen`` (MCP 2026-07-28): a request whose response is a stream of
the change notifications its client asked for.

The response is an event stream like a session's: the same writer
(:func:`~trio_mcp._streaming.serve_stream`), the same heartbeat timer and stall watch,
so an idle listener costs what an idle ``/sse`` stream does and no task of its own. It
opens with ``notifications/subscriptions/acknowledged`` naming the filter honoured,
then carries only what that filter asks for (list changes of the server's tools,
prompts or resources; updates of the resources named), each tagged with the
subscription's id (the request's id). It ends when the client leaves, or when the
server shuts down: then with the request's ``complete`` result, so the client knows the
end was meant. Changes are coalesced while the client is behind, never queued without
bound: a listener drops its oldest events rather than hold up the server. Two kinds
are never dropped: the acknowledgment (the spec's first message) and a task's terminal
``notifications/tasks`` (the one a client would otherwise poll for). When making room
would cost one of those, the stream ends instead, without the ``complete`` result:
what it holds still goes out, in order, and the client, seeing an end that was not
meant, listens again.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

from ._auth import PRINCIPAL_KEY
from ._http import respond_json
from ._jsonrpc import (
    INVALID_PARAMS,
    JSON,
    JSONRPCError,
    Request,
    RequestId,
    dumps,
    error_message,
    notification_message,
    result_message,
)
from ._stateless import SUBSCRIPTION_ID_KEY, RequestMeta, complete
from ._stream import OutboundStream
from ._streaming import serve_stream
from ._tasks import TERMINAL, declares_tasks, missing_extension

if TYPE_CHECKING:
    from ._config import Settings
    from ._http import Receive, Scope, Send
    from ._server import Server
    from ._task_runner import TaskRunner

#: Filter field -> (the server's list it follows, the notification it brings).
LIST_FILTERS: Final = {
    "toolsListChanged": ("tools", "notifications/tools/list_changed"),
    "promptsListChanged": ("prompts", "notifications/prompts/list_changed"),
    "resourcesListChanged": ("resources", "notifications/resources/list_changed"),
}
#: A listener's stream keeps at most this many events for a slow client, then drops
#: the oldest: change notifications say "look again", so the newest ones suffice.
MAX_EVENTS: Final = 32


class _Listener:
    """One open ``subscriptions/listen`` response."""

    __slots__ = (
        "_kept",
        "_lists",
        "_max_bytes",
        "_principal",
        "_request_id",
        "_task_ids",
        "_uris",
        "id",
        "stream",
    )

    def __init__(
        self,
        request_id: RequestId,
        lists: frozenset[str],
        uris: frozenset[str],
        max_bytes: int,
        task_ids: frozenset[str] = frozenset(),
        principal: str | None = None,
    ) -> None:
        self.id = secrets.token_hex(4)
        self._request_id = request_id
        self._lists = lists
        self._uris = uris
        self._task_ids = task_ids
        self._principal = principal
        self.stream = OutboundStream(
            max_events=MAX_EVENTS, max_bytes=max_bytes, drop_when_full=True
        )
        #: Event numbers that must reach the client, until they are written.
        self._kept: set[int] = set()

    def touch(self) -> None:
        """Nothing to keep alive: the listener lives exactly as long as its response."""

    def send(self, method: str, params: JSON, *, keep: bool = False) -> None:
        """Queue a notification; ``keep``: one that must not be dropped."""
        params["_meta"] = {SUBSCRIPTION_ID_KEY: self._request_id}
        self._append(dumps(notification_message(method, params)), keep=keep)

    def _append(self, data: str, *, keep: bool = False, response: bool = False) -> bool:
        """Queue an event, unless the stream is complete (nothing may follow its
        result) or room for it would cost a kept one: then the stream ends here."""
        stream = self.stream
        if stream.complete:
            return False
        kept = self._kept
        if kept:
            kept.difference_update([seq for seq in kept if seq <= stream.written])
            horizon = stream.drop_horizon()
            if any(seq <= horizon for seq in kept):
                # The client is too far behind: end rather than lose what must arrive.
                stream.finish()
                return False
        stream.append_nowait(data, response=response)
        if keep:
            kept.add(stream.log.last_seq)
        return True

    def on_change(self, event: str, detail: str) -> None:
        if event == "list_changed" and detail in self._lists:
            self.send(f"notifications/{detail}/list_changed", {})
        elif event == "resource_updated" and detail in self._uris:
            self.send("notifications/resources/updated", {"uri": detail})

    def on_task(self, principal: str | None, task: JSON) -> None:
        """A task changed: ``notifications/tasks`` with its ``DetailedTask``, if this
        listener named it and belongs to the task's owner."""
        if task["taskId"] in self._task_ids and principal == self._principal:
            self.send("notifications/tasks", dict(task), keep=task["status"] in TERMINAL)

    def end(self, result: JSON) -> None:
        """End the stream with the request's result (a graceful end, e.g. shutdown)."""
        if self.stream.complete:
            return
        result["_meta"] = {**result.get("_meta", {}), SUBSCRIPTION_ID_KEY: self._request_id}
        self._append(dumps(result_message(self._request_id, result)), response=True)
        self.stream.finish()


def honoured_filter(server: Server, requested: object, tasks: bool = False) -> JSON:
    """The part of the client's filter this server can honour (the spec: unsupported
    kinds are left out of the acknowledgment). ``tasks``: whether ``taskIds`` (the
    tasks extension's status notifications) can be honoured."""
    if not isinstance(requested, dict):
        return {}
    offered = server.change_kinds()
    honoured: JSON = {}
    for field, (kind, _) in LIST_FILTERS.items():
        if requested.get(field) is True and kind in offered:
            honoured[field] = True
    uris = requested.get("resourceSubscriptions")
    if "resources" in offered and isinstance(uris, list):
        honoured["resourceSubscriptions"] = [uri for uri in uris if isinstance(uri, str)]
    task_ids = requested.get("taskIds")
    if tasks and isinstance(task_ids, list):
        honoured["taskIds"] = [task_id for task_id in task_ids if isinstance(task_id, str)]
    return honoured


class ListenStreams:
    """Every open listener of one app: so that a shutdown can end them all cleanly."""

    def __init__(self, server: Server, settings: Settings, tasks: TaskRunner | None = None) -> None:
        self._server = server
        self._settings = settings
        self._tasks = tasks
        self._open: set[_Listener] = set()
        self._closing = False

    async def listen(
        self, scope: Scope, receive: Receive, send: Send, request: Request, meta: RequestMeta
    ) -> None:
        params = request.params or {}
        requested = params.get("notifications")
        if not isinstance(requested, dict):
            refusal = JSONRPCError(
                INVALID_PARAMS,
                "subscriptions/listen needs 'notifications': an object saying what to listen "
                'for, e.g. {"toolsListChanged": true}',
            )
            await respond_json(send, 400, error_message(request.id, refusal))
            return
        tasks = self._tasks
        if isinstance(requested, dict) and "taskIds" in requested and tasks is not None:
            if not declares_tasks(meta.client_capabilities):
                refusal = missing_extension("a subscription to task status notifications")
                await respond_json(send, 400, error_message(request.id, refusal))
                return
        honoured = honoured_filter(self._server, requested, tasks is not None)
        lists = frozenset(LIST_FILTERS[field][0] for field in honoured if field in LIST_FILTERS)
        uris = frozenset(honoured.get("resourceSubscriptions", ()))
        principal = scope.get(PRINCIPAL_KEY)
        listener = _Listener(
            request.id,
            lists,
            uris,
            self._settings.replay_bytes,
            frozenset(honoured.get("taskIds", ())),
            None if principal is None else str(principal),
        )
        listener.send(
            "notifications/subscriptions/acknowledged", {"notifications": honoured}, keep=True
        )
        if self._closing:
            listener.end(complete({}, self._server.identity))
        self._server.subscribe_changes(listener.on_change)
        if tasks is not None:
            tasks.watch(listener.on_task)
        self._open.add(listener)
        try:
            await serve_stream(
                listener,
                listener.stream,
                receive,
                send,
                self._settings,
                cursor=0,
                take_over=False,
                scope=scope,
            )
        finally:
            self._open.discard(listener)
            self._server.unsubscribe_changes(listener.on_change)
            if tasks is not None:
                tasks.unwatch(listener.on_task)
            listener.stream.close()

    def end_all(self) -> None:
        """End every listener with its ``complete`` result; later ones end at once."""
        self._closing = True
        for listener in list(self._open):
            listener.end(complete({}, self._server.identity))

    def __len__(self) -> int:
        return len(self._open)
