"""Settings of how a server serves sessions (over HTTP, and over stdio where said), in
one immutable object."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ._sealing import check_keys

if TYPE_CHECKING:
    # Only a type here: the session core reads Settings and must not import HTTP code.
    from ._auth import BearerAuth


def _names(values: Iterable[str]) -> frozenset[str]:
    # Host names and origins compare case-insensitively; an origin has no trailing slash.
    return frozenset(value.strip().lower().rstrip("/") for value in values)


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be None or > 0, not {value!r}")


#: Where ``Settings.state_keys`` comes from when it is not given: comma-separated keys.
STATE_KEYS_ENV = "TRIO_MCP_STATE_KEYS"


def _state_keys_from_env() -> str:
    # Read when a Settings is made, not at import: a test or a launcher may set it later.
    return os.environ.get(STATE_KEYS_ENV, "")


#: Where ``Settings.redis_url`` comes from when it is not given.
REDIS_URL_ENV = "TRIO_MCP_REDIS_URL"


def _redis_url_from_env() -> str | None:
    return os.environ.get(REDIS_URL_ENV) or None


def _hide_password(url: str | None) -> str:
    # Settings get logged; a Redis URL may carry a password.
    if url is None or "@" not in url:
        return repr(url)
    scheme, _, rest = url.partition("://")
    return repr(f"{scheme}://***@{rest.rsplit('@', 1)[1]}")


def _state_keys(value: str | Iterable[str]) -> tuple[str, ...]:
    # One comma-separated str (as the environment has it) or any iterable of keys;
    # blanks around and between them are dropped.
    keys = value.split(",") if isinstance(value, str) else list(value)
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise TypeError(f"state_keys[{index}] is not a str but {type(key).__name__}")
    return tuple(key.strip() for key in keys if key.strip())


def _valid_state_keys(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    # A mistyped key fails when the settings are made (at startup), not on the first
    # input_required result; the message names the key by index, never by its text.
    try:
        check_keys(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.name} (or ${STATE_KEYS_ENV}): {exc}") from None


def _hide_keys(keys: tuple[str, ...]) -> str:
    # Settings get logged; keys are secrets.
    return f"<{len(keys)} keys>"


def _positive_finite(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be finite and > 0, not {value!r}")


@attrs.frozen
class Settings:
    """How the app serves sessions. Every field has a default fit for production.

    Under stdio (:func:`~trio_mcp.run_stdio`) only ``replay_events``/``replay_bytes``,
    ``stalled_client_timeout``, ``max_requests_in_flight``, ``max_body_bytes`` and
    ``client_request_timeout`` apply, as said below; the rest is HTTP's.

    Attributes:
        heartbeat_interval: seconds of silence after which an SSE stream gets a comment
            line, so that proxies and clients do not time it out. A heartbeat may go out
            up to 0.25 s (at most a twentieth of the interval) late, so that many
            streams' go out together: keep proxies' read timeouts a little longer.
        replay_events, replay_bytes: how much each stream keeps for a client that
            reconnects with ``Last-Event-ID``; also how far a writer may fall behind
            before the handlers that emit wait for it. Under stdio, how much may wait
            for stdout before the handlers wait, and stdin is no longer read, until the
            host reads.
        resume_grace: seconds an HTTP+SSE session (and its running calls) outlives its
            dropped stream, waiting for the client to reconnect with ``Last-Event-ID``.
        session_idle_timeout: seconds a Streamable HTTP session may go without a
            request or an open stream before it is ended.
        sse_retry_ms: the reconnection delay suggested to clients in priming events
            and endpoint events; also how long a session whose client left keeps its
            place at ``max_sessions`` before it gives way to a new client.
        json_reply_wait: seconds a Streamable HTTP request may take to be answered as
            one JSON body when its client takes event streams too; a slower one is
            answered as an event stream, which carries heartbeats and can be resumed.
        stalled_client_timeout: seconds a stream's client may take nothing (the send of
            one chunk blocks that long) before its connection is dropped; its events are
            kept for when it resumes, and no other session ever waits on it. The app
            resets the connection itself, since a host may not let the send be
            cancelled (hypercorn's trio worker does not; README, Limits, says how).
            ``python -m trio_mcp`` also gives every connection this as
            ``TCP_USER_TIMEOUT``: the kernel aborts one whose peer acknowledges nothing
            for that long, a peer that vanished included. Under stdio, how long the
            messages still queued when the session ends (stdin closed, or a signal) may
            take to reach the host before the process exits without them.
        max_sessions: sessions served at once (in the store: all workers', for a
            shared one). At it, this worker's session idle longest gives way to a new
            client, ended as if its resume grace or idle timeout had run out: an
            HTTP+SSE session whose stream is gone, a Streamable HTTP session with no
            stream open and no request running, once idle for ``sse_retry_ms``. When
            none can, the new client gets 503 with ``Retry-After``: the seconds until
            one can, or 5 when every session is in use.
        max_requests_in_flight: requests a session may have running at once; past it a
            request gets a JSON-RPC error (``SERVER_BUSY``, -32000) at once.
        max_session_bytes: bytes a session may hold (the JSON text of its requests
            running, of replies and notifications waiting for its client to read, and of
            its streams' replay logs) before a new request of that session is refused at
            once with a JSON-RPC error (``SERVER_BUSY``); past it, finished streams kept
            for a late resumption are let go first. The next request is admitted
            whenever the session holds less, so keep it above ``max_body_bytes``.
        max_body_bytes: the largest POST body accepted; under stdio, the longest line
            (one message or batch) read from stdin: a longer one is skipped to its end
            and answered with a -32600 error, and the session goes on.
        body_timeout: seconds a POST's body may take to arrive, from when the server
            starts reading it; past it the request gets 408 (with a JSON-RPC error) and
            its connection is closed. Without it a body trickled in a byte at a time
            holds a task, a connection and what arrived for as long as its client likes.
            30 s lets the largest body (``max_body_bytes``, 4 MiB) through at 140 KB/s,
            about 1.1 Mbit/s; MCP messages are mostly a few KB.
        client_request_timeout: default seconds a server-to-client request waits for
            the client's answer.
        sse_path, messages_path: where the HTTP+SSE transport is mounted.
        mcp_path: where the Streamable HTTP transport is mounted.
        allowed_hosts: Host header values (``name`` or ``name:port``) served besides
            the loopback names a server bound to loopback always answers. When the
            server is bound elsewhere and this is empty, any Host is served.
        auth: bearer-token authentication (:class:`~trio_mcp.BearerAuth`); None serves
            anyone who can reach the server.
        allowed_origins: browser origins (``https://app.example``, or ``*``) allowed
            besides the server's own; requests from any other get 403.
        shutdown_timeout: seconds a graceful shutdown (SIGTERM, Ctrl+C, or
            :meth:`App.shutdown`) gives running calls to finish before every session and
            stream is ended.
        gc_young_threshold: when serving starts, the app collects once, freezes what
            survives (it lives as long as the process) and has the garbage collector's
            young generation collected every this many allocations instead of 700, so
            that requests in flight are not promoted into costly full collections.
            None leaves the collector as it is (for an app sharing its process with
            others that tune it).
        state_keys: the keys that seal the ``requestState`` of MCP 2026-07-28's
            multi round-trip requests (the state a tool needing the user's input hands
            the client, to be echoed on its retry): the first seals, every one opens,
            so a key is rotated by putting a new one first and dropping the old one
            once ``state_ttl`` has passed. A tuple of keys, or one comma-separated str;
            by default the ``TRIO_MCP_STATE_KEYS`` environment variable, read when the
            Settings is made. Empty (no variable), the app makes one random key per
            process at startup: right for one process, but instances behind a load
            balancer, or a process that restarts while clients are mid-request, must
            share keys, or the retry lands where the state cannot be opened and the
            client must start again. Make a key with
            ``python -c "import trio_mcp; print(trio_mcp.generate_state_key())"``. A key
            that is not one fails here, named by its index; the repr hides them.
        state_ttl: seconds a sealed ``requestState`` stays valid after it is issued;
            a retry after that is refused (-32602) and the client starts the request
            again. Long enough for a user to answer, short enough to bound a replay.
        state_audience: who a sealed ``requestState`` is for; None means the server's
            name. Two deployments of the same server that share keys but should not
            accept each other's state (staging and production) set different ones.
        task_ttl: seconds a task's record (the ``io.modelcontextprotocol/tasks``
            extension) is kept after its last update once the task has ended, sent as
            its ``ttlMs``; then it is deleted. A task still running then is never
            cancelled for it (the spec lets a server discard a record, not stop work;
            the tool's timeout bounds the run) and keeps its record while it runs.
            None keeps records until the app stops. One timer serves every task,
            whatever their number.
        task_poll_interval: seconds a client is asked to wait between ``tasks/get``
            polls (a task's ``pollIntervalMs``).
        max_tasks: tasks running at once in the app (this process), whoever started
            them: each holds a trio task and what its tool holds. At the limit a tool
            that may run as a task (``task="optional"``) runs inline instead, as for
            a client without the extension, and one that must
            (``task="required"``) is refused with a JSON-RPC error (``SERVER_BUSY``,
            -32000) that names this setting: retry once some tasks have ended.
        max_tasks_per_principal: tasks one authenticated principal may have running
            at once, so that one client cannot take all of ``max_tasks``; at it, the
            same as at ``max_tasks`` (the error names this setting: end one with
            ``tasks/cancel`` or wait). Without authentication clients cannot be told
            apart, and only ``max_tasks`` applies.
        max_finished_tasks: records of ended tasks this app keeps in its task store;
            past it the oldest ended one is deleted first, before its ``task_ttl``
            if need be (a client polling it then gets "Task not found", as the spec
            allows). Bounds the store's memory whatever the TTL, None included.
        redis_url: a Redis server (``redis://host:port/db``, ``rediss://`` for TLS)
            that every worker process and host serving this server shares, so that
            they behave as one on MCP 2026-07-28's stateless wire: tasks live in
            Redis (``tasks/get``, ``tasks/update`` and ``tasks/cancel`` work on any
            worker, whichever runs the task) and ``subscriptions/listen`` hears the
            changes made on every worker. By default the ``TRIO_MCP_REDIS_URL``
            environment variable, read when the Settings is made; None (no variable)
            keeps everything in this process, as without it. Needs ``pip install
            'trio-mcp[redis]'``. While Redis cannot be reached, a request that needs
            it gets 503 with ``Retry-After`` and service resumes by itself once it
            is back; the app starts even when it is down. HTTP+SSE and 2025-era
            Streamable HTTP sessions are shared too: a POST, a GET or a resumption
            with ``Last-Event-ID`` reaches a session from any worker (it runs on
            the worker that opened it; its main stream's events are kept in Redis
            as long as it lives, a request stream's for ``max(resume_grace,
            session_idle_timeout) + redis_worker_timeout`` after its last one). A
            session whose worker dies is taken over by the next worker that needs
            it, and every request accepted (202) and not yet answered gets a
            worker-lost error (README, Scaling out). The repr hides a password.
        redis_prefix: the namespace of every Redis key and stream this server uses:
            servers that must not see each other's tasks share a Redis under
            different prefixes.
        redis_worker_timeout: seconds after which a worker whose heartbeat in Redis
            stopped (killed, paused, or cut off from Redis) counts as lost: its
            running tasks are then settled ``failed`` with an error saying so, and
            its sessions taken over, by whichever worker notices first. A worker
            renews its heartbeat every third of it: keep it well above the longest
            pause a busy worker may have, or its sessions are taken from it.
            Also how long a ``tasks/update`` sent to one worker waits for the worker
            running the task to take the answers, before it fails with -32603 (send
            them again: answers to questions no longer asked are ignored).
    """

    heartbeat_interval: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    replay_events: int = attrs.field(default=256, validator=attrs.validators.gt(0))
    replay_bytes: int = attrs.field(default=1024 * 1024, validator=attrs.validators.gt(0))
    resume_grace: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    session_idle_timeout: float = attrs.field(default=1800.0, validator=attrs.validators.gt(0))
    sse_retry_ms: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    json_reply_wait: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    stalled_client_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_sessions: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    max_requests_in_flight: int = attrs.field(default=100, validator=attrs.validators.gt(0))
    max_session_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=attrs.validators.gt(0))
    max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    body_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    client_request_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    sse_path: str = "/sse"
    messages_path: str = "/messages/"
    mcp_path: str = "/mcp"
    allowed_hosts: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    allowed_origins: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    auth: BearerAuth | None = None
    shutdown_timeout: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    gc_young_threshold: int | None = attrs.field(default=10_000, validator=_positive_or_none)
    state_keys: tuple[str, ...] = attrs.field(
        default=attrs.Factory(_state_keys_from_env),
        converter=_state_keys,
        validator=_valid_state_keys,
        repr=_hide_keys,
    )
    state_ttl: float = attrs.field(default=600.0, validator=_positive_finite)
    state_audience: str | None = None
    task_ttl: float | None = attrs.field(default=3600.0, validator=_positive_or_none)
    task_poll_interval: float = attrs.field(default=1.0, validator=_positive_finite)
    max_tasks: int = attrs.field(default=1000, validator=attrs.validators.gt(0))
    max_tasks_per_principal: int = attrs.field(default=100, validator=attrs.validators.gt(0))
    max_finished_tasks: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    redis_url: str | None = attrs.field(
        default=attrs.Factory(_redis_url_from_env),
        converter=attrs.converters.optional(str),
        repr=_hide_password,
    )
    redis_prefix: str = "trio-mcp"
    redis_worker_timeout: float = attrs.field(default=10.0, validator=_positive_finite)
