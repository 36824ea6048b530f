"""One worker's connection to Redis (``Settings.redis_url``): the client, the key
names every worker agrees on, and the one way a command is sent.

coredis 6.9 loses a slot of its connection pool for good whenever a command is
cancelled mid-flight (a blocking ``XREAD`` above all, but any command whose reply is
abandoned), and with the pool spent the next command waits ``pool_timeout`` and
fails. So no command here is ever cancelled: :meth:`RedisConnection.call` shields it,
and what bounds it instead is the client's own timeouts (connecting, reading a reply,
waiting for a pooled connection), all finite. A request whose client leaves meanwhile
waits at most that long for its command, then goes on being cancelled.

A command that fails for want of Redis (refused, reset, timed out) raises
:class:`~trio_mcp._task_store.StoreUnavailable`, which the stateless transport answers
with 503 and ``Retry-After``; the next command tries again, so service resumes by
itself once Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import coredis
import coredis.exceptions
import trio
from coredis._concurrency import QueueFull
from coredis.retry import ConstantRetryPolicy

from ._task_store import StoreUnavailable

log = logging.getLogger("trio_mcp")

T = TypeVar("T")

#: Seconds to open a connection to Redis (loopback or a LAN: refusals come at once).
CONNECT_TIMEOUT = 1.0
#: Seconds for a command's reply; above the reader's XREAD BLOCK (:data:`BLOCK_MS`).
REPLY_TIMEOUT = 5.0
#: Seconds a command waits for a pooled connection before failing.
POOL_TIMEOUT = 2.0
#: Pooled connections per worker, for every command but the reader's and the sessions'
#: publisher's (each has one of its own: :mod:`._redis_line`).
MAX_CONNECTIONS = 64
#: Milliseconds the one reader blocks in XREAD: a stopping worker wakes it, but cannot
#: when Redis is out of reach, and then waits for it to return.
BLOCK_MS = 1000
#: Entries kept in each stream (``MAXLEN ~``): what a reader may be behind by.
STREAM_LENGTH = 10_000
#: What a request told 503 waits before retrying.
RETRY_AFTER = 1
#: How coredis 6.9 says a connection is gone: refused or reset, or (anyio's) a
#: pooled connection whose socket Redis closed (it restarted) when next used.
_CONNECTION_LOST: tuple[type[Exception], ...] = (
    coredis.exceptions.ConnectionError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)
#: What :meth:`RedisConnection.call` turns into StoreUnavailable (TimeoutError: no
#: reply, or no pooled connection, in time).
_FAILURES: tuple[type[Exception], ...] = (*_CONNECTION_LOST, TimeoutError, OSError)


class RedisConnection:
    """The client of one worker process, its id, and the namespaced key names.

    Keys (``P`` is ``prefix``): ``P:task:{id}`` (a hash: the record's JSON, its
    status, its worker), ``P:workers`` (ids of workers seen), ``P:worker:{w}:alive``
    (expires unless renewed: the worker's heartbeat), ``P:worker:{w}:tasks`` (ids of
    the tasks it runs), ``P:worker:{w}:control`` (a stream of commands for it) and
    ``P:events`` (a stream of changes every worker relays to its listeners).
    """

    def __init__(self, url: str, prefix: str, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.url = url
        self.prefix = prefix
        #: Unique per process and start; the host and pid make logs readable.
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        pool = _SlotKeepingPool.from_url(
            url,
            decode_responses=True,
            connect_timeout=CONNECT_TIMEOUT,
            stream_timeout=REPLY_TIMEOUT,
            timeout=POOL_TIMEOUT,
            max_connections=max_connections,
        )
        self.client: coredis.Redis[str] = coredis.Redis(
            connection_pool=pool,
            decode_responses=True,
            # One quick retry on a broken connection: a pooled connection that Redis
            # dropped (it restarted) fails once, then a new one is opened. Safe for
            # what is sent here: XREAD always names explicit ids, scripts are
            # compare-and-set, and a duplicated event only says "look again" twice.
            retry_policy=ConstantRetryPolicy(_CONNECTION_LOST, retries=1, delay=0.05),
        )
        #: Whether the last command reached Redis: what new work that needs Redis
        #: (a listener) checks before it starts.
        self.available = False
        self._said_down = False
        self._scripts: dict[str, Any] = {}

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def worker_key(self, worker: str, what: str) -> str:
        return self.key("worker", worker, what)

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Send ``command()`` shielded from cancellation (bounded by the client's
        timeouts); a failure to reach Redis becomes :class:`StoreUnavailable`."""
        with trio.CancelScope(shield=True):
            try:
                result = await command()
            except _FAILURES as exc:
                raise self.unreachable(exc) from exc
        self.reached()
        return result

    def unreachable(self, exc: BaseException) -> StoreUnavailable:
        """A command failed for want of Redis: logged once, until it is reached again;
        -> what to raise (the 503 its request is answered with)."""
        self.available = False
        if not self._said_down:
            self._said_down = True
            log.warning("Redis at %s cannot be reached: %s", _safe(self.url), exc or type(exc))
        return StoreUnavailable(
            "the server's shared store (Redis) cannot be reached right now", RETRY_AFTER
        )

    def reached(self) -> None:
        self.available = True
        if self._said_down:
            self._said_down = False
            log.warning("Redis at %s is reachable again", _safe(self.url))

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script (EVALSHA, loading it once): one command, atomic."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = self.client.register_script(source)
        return await self.call(lambda: registered(keys=keys, args=args))


class _SlotKeepingPool(coredis.ConnectionPool[Any]):
    """coredis 6.9's pool, minus its leak: releasing a connection that can no longer be
    used (Redis dropped it, or a blocking read outlived its timeout) drops the
    connection *and its slot*, so each Redis restart cost a worker one of its
    connections for good (when the reader's XREAD went through this pool, it was
    nearly always one), and after
    ``max_connections`` of them every command failed. An empty slot goes back instead,
    and the next command opens a new connection in it. (tests/test_coredis_under_trio.py
    pins coredis's behaviour; examples/upstream/coredis-6.9-report.md reports it.)"""

    def release(self, connection: Any) -> None:
        super().release(connection)
        if not connection.usable:
            with contextlib.suppress(QueueFull):
                self._available_connections.put_nowait(None)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest
