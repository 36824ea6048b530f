"""A connection to Redis that belongs to one task: the worker's hot commands (the
publisher's one script per round, the reader's ``XREAD``) without coredis's machinery.

Through coredis 6.9 on trio, a command costs a worker about 200 µs of CPU, ten times
its socket calls: the command hops from the caller to the connection's writer task,
the reply from its reader task back, through a pool, a retry policy and anyio's
scopes (examples/upstream/coredis-6.9-report.md, section 6). The publisher and the
reader each send one command at a time from one task, so none of that buys them
anything: a :class:`RedisLine` writes the command and reads its reply in the calling
task, on a socket of its own, parsing with coredis's RESP parser. Everything else
(registration, lookups, takeovers, the task store) stays on the coredis client.

Its contract matches :meth:`~._redis_client.RedisConnection.call`'s:

* A command that writes is never cancelled mid-flight: a cancelled caller is
  cancelled before the command is sent, never after; once sent, it runs shielded,
  bounded by its own deadline (connecting, then the reply). Past it, or when the
  connection breaks, the socket is closed (its state is unknown) and
  :class:`~._task_store.StoreUnavailable` is raised; the next command opens a new
  connection. A blocking read may be cancelled while Redis holds it: the connection
  goes with it (on a connection of its own that costs nothing more; in coredis's
  pool it cost a slot).
* A connection that Redis closed while it was idle (Redis restarted) is retried once
  on a new one, as the coredis client's retry policy does, and for the same reason it
  is safe: every script sent here is compare-and-set, and every ``XREAD`` names
  explicit ids.
* It belongs to one task: a second task sending while a command is in flight gets
  :class:`trio.BusyResourceError` (a bug in the caller, as for a trio stream).
"""

from __future__ import annotations

import hashlib
import socket
from typing import TYPE_CHECKING, Any, Final, Protocol

import coredis.exceptions
import trio
from coredis.connection import TCPLocation, UnixDomainSocketLocation
from coredis.parser import NOT_ENOUGH_DATA, Parser

from ._redis_client import CONNECT_TIMEOUT, REPLY_TIMEOUT
from ._task_store import StoreUnavailable

if TYPE_CHECKING:
    from ._redis_client import RedisConnection

#: Bytes read from the socket at once: an XREAD of a busy round fits.
_RECEIVE_SIZE: Final = 65_536


class _Lost(Exception):
    """The connection broke; ``reused`` when it had served a command before (so Redis
    may have closed it while idle, and one retry on a new one is worth it)."""

    def __init__(self, reused: bool) -> None:
        super().__init__()
        self.reused = reused


def pack(args: tuple[str | int | bytes, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = arg
        parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(parts)


class RedisLine:
    """One socket to the Redis of ``connection`` (same URL: host or Unix socket, TLS,
    user, password, database), opened at the first command."""

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        pool = connection.client.connection_pool
        location = pool.location
        if not isinstance(location, (TCPLocation, UnixDomainSocketLocation)):
            raise ValueError(f"{connection.url!r}: give Redis as redis://, rediss:// or unix://")
        self._location = location
        options = pool.connection_kwargs
        self._ssl_context = options.get("ssl_context")
        self._handshake: list[tuple[str | int, ...]] = []
        password = options.get("password")
        if password is not None:
            username = options.get("username")
            self._handshake.append(("AUTH", username, password) if username else ("AUTH", password))
        db = options.get("db") or 0
        if db:
            self._handshake.append(("SELECT", db))
        self._transport: _Transport | None = None
        self._parser = Parser()
        self._used = False
        self._busy = False
        self._shas: dict[str, str] = {}

    async def execute(
        self, *args: str | int | bytes, block_ms: int = 0, cancellable: bool = False
    ) -> Any:
        """Send one command and return its reply (strings decoded); ``block_ms``: how
        long Redis may hold the reply (a blocking read), added to the deadline.
        ``cancellable``: a read that changes nothing may be cancelled while Redis
        holds it; the connection is then closed, so that its reply, when it comes, is
        never taken for the next command's.

        Raises StoreUnavailable when Redis cannot be reached or does not answer in
        time, and coredis's :class:`~coredis.exceptions.ResponseError` for an error
        reply."""
        # Cancelled before it is sent, a command is not sent: the caller's loop (the
        # reader's, the publisher's) ends here, between commands.
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._busy:
            raise trio.BusyResourceError("another task is sending on this Redis connection")
        self._busy = True
        try:
            with trio.CancelScope(shield=not cancellable):
                reply = await self._send_retrying_once(args, block_ms)
        except trio.Cancelled:
            self.close()  # its reply may still come: never for the next command
            raise
        finally:
            self._busy = False
        self._connection.reached()
        if isinstance(reply, coredis.exceptions.RedisError):
            raise reply
        return reply

    async def _send_retrying_once(self, args: tuple[str | int | bytes, ...], block_ms: int) -> Any:
        try:
            return await self._round_trip(args, block_ms)
        except _Lost as lost:
            if not lost.reused:
                raise self._unavailable(lost) from lost
        except OSError as exc:  # refused, unreachable, timed out (TimeoutError)
            raise self._unavailable(exc) from exc
        # Redis closed it while idle (it restarted, say): once more, on a new one.
        self.close()
        try:
            return await self._round_trip(args, block_ms)
        except (_Lost, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        self.close()
        return self._connection.unreachable(exc)

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA1, loading it when Redis does not know it."""
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        call = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self.execute(*call)
        except coredis.exceptions.NoScriptError:
            await self.execute("SCRIPT", "LOAD", source)
            return await self.execute(*call)

    async def xread(
        self, streams: dict[str, str], *, count: int, block_ms: int
    ) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
        """``XREAD COUNT count BLOCK block_ms`` of ``streams`` (key -> the last id
        seen); -> each stream with entries, and its entries as (id, fields).
        Cancellable while Redis holds it (see :meth:`execute`)."""
        reply = await self.execute(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            block_ms,
            "STREAMS",
            *streams,
            *streams.values(),
            block_ms=block_ms,
            cancellable=True,
        )
        if reply is None:
            return []
        # RESP2: [[key, [[id, [field, value, ...]], ...]], ...]
        return [
            (key, [(entry_id, _pairs(flat)) for entry_id, flat in entries])
            for key, entries in reply
        ]

    def close(self) -> None:
        """Drop the socket (the next command opens another)."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.close()
        self._parser = Parser()
        self._used = False

    async def _round_trip(self, args: tuple[str | int | bytes, ...], block_ms: int) -> Any:
        if self._transport is None:
            with trio.move_on_after(CONNECT_TIMEOUT) as connecting:
                await self._open()
            if connecting.cancelled_caught:
                self.close()
                raise TimeoutError("Redis took too long to accept a connection")
        reused, self._used = self._used, True
        with trio.move_on_after(REPLY_TIMEOUT + block_ms / 1000):
            return await self._send_and_read(pack(args), reused)
        raise TimeoutError("Redis took too long to answer")

    async def _open(self) -> None:
        location = self._location
        if isinstance(location, UnixDomainSocketLocation):
            self._transport = _Plain(await trio.open_unix_socket(location.path))
        elif self._ssl_context is not None:
            self._transport = _Tls(
                await trio.open_ssl_over_tcp_stream(
                    location.host, location.port, ssl_context=self._ssl_context
                )
            )
        else:
            self._transport = _Plain(await trio.open_tcp_stream(location.host, location.port))
        for command in self._handshake:
            reply = await self._send_and_read(pack(command), reused=False)
            if isinstance(reply, coredis.exceptions.RedisError):
                self.close()
                raise reply

    async def _send_and_read(self, data: bytes, reused: bool) -> Any:
        transport = self._transport
        assert transport is not None
        try:
            await transport.send(data)
            while True:
                parsed = self._parser.parse(decode=True, encoding="utf-8")
                if parsed is not NOT_ENOUGH_DATA:
                    return parsed[1]  # type: ignore[index]
                chunk = await transport.receive()
                if not chunk:
                    raise _Lost(reused)
                self._parser.feed(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError) as exc:
            raise _Lost(reused) from exc


class _Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    def close(self) -> None: ...


class _Plain:
    """A TCP or Unix socket, used without trio's stream: a reply is awaited once (its
    socket readable) and read with one ``recv``, where a trio stream would yield to
    the scheduler after the send, try a ``recv`` that finds nothing yet, wait, and
    yield again after the read."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._socket = socket.socket(fileno=stream.socket.detach())
        self._socket.setblocking(False)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._socket.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._socket)
                continue
            view = view[sent:]

    async def receive(self) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self._socket)
            try:
                return self._socket.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                continue

    def close(self) -> None:
        trio.lowlevel.notify_closing(self._socket)
        self._socket.close()


class _Tls:
    """A TLS stream (``rediss://``), through trio's SSLStream."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream

    async def send(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def receive(self) -> bytes:
        return bytes(await self._stream.receive_some(_RECEIVE_SIZE))

    def close(self) -> None:
        # Without the TLS goodbye: the connection's state is unknown or done with.
        self._stream.transport_stream.socket.close()


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
