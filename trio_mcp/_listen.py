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
bound: a listener drops its oldest events rather than hold up the server.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

from ._jsonrpc import JSON, Request, RequestId, dumps, notification_message, result_message
from ._stateless import SUBSCRIPTION_ID_KEY, RequestMeta, complete
from ._stream import OutboundStream
from ._streaming import serve_stream

if TYPE_CHECKING:
    from ._config import Settings
    from ._http import Receive, Scope, Send
    from ._server import Server

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

    __slots__ = ("_lists", "_request_id", "_uris", "id", "stream")

    def __init__(
        self, request_id: RequestId, lists: frozenset[str], uris: frozenset[str], max_bytes: int
    ) -> None:
        self.id = secrets.token_hex(4)
        self._request_id = request_id
        self._lists = lists
        self._uris = uris
        self.stream = OutboundStream(
            max_events=MAX_EVENTS, max_bytes=max_bytes, drop_when_full=True
        )

    def touch(self) -> None:
        """Nothing to keep alive: the listener lives exactly as long as its response."""

    def send(self, method: str, params: JSON) -> None:
        params["_meta"] = {SUBSCRIPTION_ID_KEY: self._request_id}
        if not self.stream.closed:
            self.stream.append_nowait(dumps(notification_message(method, params)))

    def on_change(self, event: str, detail: str) -> None:
        if event == "list_changed" and detail in self._lists:
            self.send(f"notifications/{detail}/list_changed", {})
        elif event == "resource_updated" and detail in self._uris:
            self.send("notifications/resources/updated", {"uri": detail})

    def end(self, result: JSON) -> None:
        """End the stream with the request's result (a graceful end, e.g. shutdown)."""
        if self.stream.complete:
            return
        result["_meta"] = {**result.get("_meta", {}), SUBSCRIPTION_ID_KEY: self._request_id}
        self.stream.append_nowait(dumps(result_message(self._request_id, result)), response=True)
        self.stream.finish()


def honoured_filter(server: Server, requested: object) -> JSON:
    """The part of the client's filter this server can honour (the spec: unsupported
    kinds are left out of the acknowledgment)."""
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
    return honoured


class ListenStreams:
    """Every open listener of one app: so that a shutdown can end them all cleanly."""

    def __init__(self, server: Server, settings: Settings) -> None:
        self._server = server
        self._settings = settings
        self._open: set[_Listener] = set()
        self._closing = False

    async def listen(
        self, scope: Scope, receive: Receive, send: Send, request: Request, meta: RequestMeta
    ) -> None:
        params = request.params or {}
        honoured = honoured_filter(self._server, params.get("notifications"))
        lists = frozenset(LIST_FILTERS[field][0] for field in honoured if field in LIST_FILTERS)
        uris = frozenset(honoured.get("resourceSubscriptions", ()))
        listener = _Listener(request.id, lists, uris, self._settings.replay_bytes)
        listener.send("notifications/subscriptions/acknowledged", {"notifications": honoured})
        if self._closing:
            listener.end(complete({}, self._server.identity))
        self._server.subscribe_changes(listener.on_change)
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
            listener.stream.close()

    def end_all(self) -> None:
        """End every listener with its ``complete`` result; later ones end at once."""
        self._closing = True
        for listener in list(self._open):
            listener.end(complete({}, self._server.identity))

    def __len__(self) -> int:
        return len(self._open)
