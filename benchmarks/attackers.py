"""The attack section's hostile clients, run by one load worker beside the well-behaved
echo sessions another worker drives (see :mod:`.attacks` for what is measured).

An attack is *armed* first (whatever must exist before it: the idle sessions that will
leave together), *struck* when the echo window opens, and runs until the worker is told
to *disarm* it or its own time limit passes. Every client aims at the server under test
on 127.0.0.1, and each attack bounds how many connections it has at once: while it runs
it repeats its move (a client the server let go of starts again), it never adds
clients. What the clients saw comes back as a :class:`Tally`.

The clients build on the load generator's own HTTP and MCP code (:mod:`.httpclient`,
:mod:`.mcpclient`), as every other measurement does, so that they cost the load core
as little as the echo sessions' do.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Final, Protocol

import trio
import trio.testing

from .holding import HeldSessions
from .httpclient import TCP_ESTABLISHED, Connection, request_bytes
from .mcpclient import (
    ESTABLISH_TIMEOUT,
    FAILURES,
    Poster,
    SseSession,
    Target,
    encode,
    failure_name,
)
from .stats import summary

#: How often a client that must not read looks at its connection's state, seconds.
POLL: Final = 0.05

#: Linux's TCP states a connection the server let go of ends in, by how it let go.
_LET_GO: Final = {7: "reset", 8: "closed"}  # TCP_CLOSE after a RST, TCP_CLOSE_WAIT after FIN

#: A request the server refuses cheaply (no session): what a burst's connections send.
_BURST_PATH: Final = "/mcp"
#: Seconds one connection of a burst may take, connect to answer, before it counts as
#: failed (a dropped handshake is retried by the kernel after 1, 3, 7 s...).
_BURST_TIMEOUT: Final = 30.0


class Tally:
    """What an attack's clients did and how the server answered.

    ``attempts`` counts moves (sessions opened, bodies started, connects); ``outcomes``
    how each ended on the server's side (a status, ``reset``, ``closed``); ``seconds``
    how long after the move the server answered or let go; ``errors`` the client's own
    failures. A client still waiting on the server when the attack stops is *held*:
    ``held_at_end`` of them, the longest for ``longest_held`` seconds."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.attempts = 0
        self.outcomes: Counter[str] = Counter()
        self.seconds: list[float] = []
        self.errors: Counter[str] = Counter()
        self._waiting: dict[int, float] = {}

    def waiting(self, client: int) -> None:
        """``client`` has made its move and waits on the server from now."""
        self.attempts += 1
        self._waiting[client] = time.monotonic()

    def answered(self, client: int, outcome: str) -> None:
        began = self._waiting.pop(client)
        self.outcomes[outcome] += 1
        self.seconds.append(time.monotonic() - began)

    def failed(self, client: int, exc: BaseException) -> None:
        self._waiting.pop(client, None)
        self.errors[failure_name(exc)] += 1

    def report(self, **extra: Any) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "clients": self.clients,
            "attempts": self.attempts,
            "outcomes": dict(self.outcomes),
            "seconds": summary(self.seconds),
            "held_at_end": len(self._waiting),
            "longest_held": max((now - began for began in self._waiting.values()), default=0.0),
            "errors": dict(self.errors),
            **extra,
        }


class Attack(Protocol):
    async def prepare(self, nursery: trio.Nursery) -> dict[str, Any]:
        """Make what must exist before the strike; returns what the orchestrator is told."""

    async def strike(self) -> None:
        """Attack until cancelled (or done, for a one-off move)."""

    async def release(self) -> None:
        """Let go of whatever the attack still holds (after a strike, or instead of one)."""

    def report(self) -> dict[str, Any]: ...


class StoppedReaders:
    """``clients`` sessions on ``/sse`` at once, each with a receive buffer of a few KB,
    each asking for ``requests`` replies of ``reply_bytes`` from the ``big`` tool and
    reading nothing more. A client watches its stream's TCP state (reading no data) and,
    once the server has reset or closed it, opens a fresh session and does it again.

    With many clients and one request each, it is the clients that stop reading; with
    one client and many requests, the session flooded with replies it does not read."""

    def __init__(
        self,
        target: Target,
        first_index: int,
        clients: int,
        requests: int,
        reply_bytes: int,
        receive_buffer: int,
    ) -> None:
        self.target = target
        self.first_index = first_index
        self.requests = requests
        self.reply_bytes = reply_bytes
        self.receive_buffer = receive_buffer
        self.tally = Tally(clients)

    async def prepare(self, nursery: trio.Nursery) -> dict[str, Any]:
        return {}

    async def strike(self) -> None:
        async with trio.open_nursery() as nursery:
            for client in range(self.tally.clients):
                nursery.start_soon(self._client, client)

    async def _client(self, client: int) -> None:
        index = self.first_index + client
        poster = Poster(self.target, index)
        try:
            while True:
                session = SseSession(self.target, index, poster.post, self.receive_buffer)
                try:
                    await self._stop_reading(client, session)
                except (*FAILURES, trio.TooSlowError) as exc:
                    self.tally.failed(client, exc)
                    await trio.sleep(POLL)  # never a busy loop against a refusing server
                finally:
                    session.close()
        finally:
            poster.close()

    async def _stop_reading(self, client: int, session: SseSession) -> None:
        big = {"name": "big", "arguments": {"size": self.reply_bytes}}
        with trio.fail_after(ESTABLISH_TIMEOUT):
            await session.establish()
            # From the first request on: the server may let go before the last is sent.
            self.tally.waiting(client)
            for _ in range(self.requests):
                await session.send_request("tools/call", big)
        stream = session.stream_connection
        # Polled: the socket is readable all along (the reply waits in it, unread), so
        # no wakeup says that the server has let go; its TCP state does.
        while (state := stream.tcp_state()) == TCP_ESTABLISHED:  # noqa: ASYNC110
            await trio.sleep(POLL)
        self.tally.answered(client, _LET_GO.get(state, f"state {state}"))

    async def release(self) -> None:
        pass  # each client closes its own connections as it is cancelled

    def report(self) -> dict[str, Any]:
        return self.tally.report(requests=self.requests, reply_bytes=self.reply_bytes)


class TrickledBodies:
    """``clients`` connections at once, each POSTing a ping to ``/mcp`` one byte every
    ``interval`` seconds and reading meanwhile: the server answers (408 past its
    ``body_timeout``) and closes, and the client starts again on a new connection."""

    def __init__(self, target: Target, first_index: int, clients: int, interval: float) -> None:
        self.target = target
        self.first_index = first_index
        self.interval = interval
        self.tally = Tally(clients)

    async def prepare(self, nursery: trio.Nursery) -> dict[str, Any]:
        return {}

    async def strike(self) -> None:
        async with trio.open_nursery() as nursery:
            for client in range(self.tally.clients):
                nursery.start_soon(self._client, client)

    async def _client(self, client: int) -> None:
        body = encode(1, "ping")
        headers = {"Accept": "application/json, text/event-stream"}
        request = request_bytes("POST", "/mcp", self.target.authority, headers, body)
        head, tail = request[: -len(body)], request[-len(body) :]
        while True:
            try:
                await self._trickle(client, head, tail)
            except FAILURES as exc:
                self.tally.failed(client, exc)
                await trio.sleep(POLL)

    async def _trickle(self, client: int, head: bytes, body: bytes) -> None:
        index = self.first_index + client
        conn = await Connection.open(self.target.host, self.target.port, self.target.source(index))
        try:
            await conn.send(head)
            self.tally.waiting(client)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._drip, conn, body)
                answer = await conn.read_head()
                await conn.read_body(answer)
                nursery.cancel_scope.cancel()
            self.tally.answered(client, str(answer.status))
        finally:
            conn.close()

    async def _drip(self, conn: Connection, body: bytes) -> None:
        for byte in body:
            await trio.sleep(self.interval)
            try:
                await conn.send(bytes([byte]))
            except FAILURES:
                return  # the server gave up on this body: its answer says how

    async def release(self) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return self.tally.report(interval=self.interval)


class ConnectBurst:
    """``connections`` connects at once, each sending ``GET /mcp`` (no session: the
    server refuses it with 400, cheaply) with ``Connection: close`` and reading the
    answer to its end; again every ``every`` seconds, ``repeats`` bursts in all. A
    connection whose handshake the server's kernel dropped shows in its
    retransmissions, even when it got through later."""

    def __init__(
        self,
        target: Target,
        first_index: int,
        connections: int,
        repeats: int,
        every: float,
    ) -> None:
        self.target = target
        self.first_index = first_index
        self.repeats = repeats
        self.every = every
        self.tally = Tally(connections)
        self.retransmitted = 0
        self.begun = 0
        #: How long each burst that ended took, from the go to its last answer.
        self.bursts: list[float] = []

    async def prepare(self, nursery: trio.Nursery) -> dict[str, Any]:
        return {}

    async def strike(self) -> None:
        for burst in range(self.repeats):
            began = trio.current_time()
            self.begun += 1
            await self._burst(burst)
            self.bursts.append(trio.current_time() - began)
            await trio.sleep_until(began + self.every)

    async def _burst(self, burst: int) -> None:
        go = trio.Event()
        async with trio.open_nursery() as nursery:
            for connection in range(self.tally.clients):
                client = burst * self.tally.clients + connection
                nursery.start_soon(self._connect, client, go)
            # Every connection waits at the line, then they all go in one pass.
            await trio.testing.wait_all_tasks_blocked()
            go.set()

    async def _connect(self, client: int, go: trio.Event) -> None:
        await go.wait()
        request = request_bytes("GET", _BURST_PATH, self.target.authority, {"Connection": "close"})
        self.tally.waiting(client)
        try:
            with trio.fail_after(_BURST_TIMEOUT):
                conn = await Connection.open(
                    self.target.host,
                    self.target.port,
                    self.target.source(self.first_index + client),
                )
                try:
                    await conn.send(request)
                    answer = await conn.read_head()
                    await conn.read_body(answer)
                    self.retransmitted += conn.retransmissions() > 0
                finally:
                    conn.close()
        except (*FAILURES, trio.TooSlowError) as exc:
            self.tally.failed(client, exc)
            return
        self.tally.answered(client, str(answer.status))

    async def release(self) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return self.tally.report(
            repeats=self.repeats,
            bursts=self.begun,
            bursts_done=len(self.bursts),
            burst_seconds=summary(self.bursts),
            retransmitted=self.retransmitted,
        )


class MassDisconnect:
    """``sessions`` idle ``/sse`` sessions, opened and initialized when armed (as the
    idle sweep opens them), their connections all closed in one pass at the strike (no
    task switch between two closes): the server sees thousands of clients leave at
    once, as when a client process exits, then (``resume_grace`` later) ends their
    sessions together."""

    def __init__(self, open_command: dict[str, Any]) -> None:
        self.held = HeldSessions(open_command)
        self.tally = Tally(self.held.count)
        self._ended = trio.Event()
        self._closed_by_server_before = 0

    async def prepare(self, nursery: trio.Nursery) -> dict[str, Any]:
        nursery.start_soon(self._hold)
        with trio.fail_after(ESTABLISH_TIMEOUT * 2):
            await self.held.settled.wait()
        return {"established": self.held.established, "failed": self.held.failed}

    async def _hold(self) -> None:
        try:
            await self.held.run()
        finally:
            self._ended.set()

    async def strike(self) -> None:
        self._closed_by_server_before = self.held.stats.closed_by_server
        began = time.monotonic()
        self.held.drop_all()  # every connection closed in one pass, as at a process exit
        # How long the closes took: the span over which the server saw them leave.
        self.tally.seconds.append(time.monotonic() - began)
        await self._ended.wait()
        self.tally.attempts = self.held.established - self._closed_by_server_before
        self.tally.outcomes["left"] = self.tally.attempts

    async def release(self) -> None:
        self.held.scope.cancel()
        await self._ended.wait()

    def report(self) -> dict[str, Any]:
        return self.tally.report(
            established=self.held.established,
            failed=self.held.failed,
            closed_by_server_before=self._closed_by_server_before,
            establish_errors=dict(self.held.errors),
        )


def make_attack(command: dict[str, Any]) -> Attack:
    """The attack an ``arm`` command describes (see :mod:`.attacks` for its fields)."""
    target = Target(command["host"], command["port"], command["sources"])
    kind, first = command["kind"], command["first_index"]
    if kind in ("stalled-readers", "flooded-session"):
        return StoppedReaders(
            target,
            first,
            command["clients"],
            command["requests"],
            command["reply_bytes"],
            command["receive_buffer"],
        )
    if kind == "trickled-bodies":
        return TrickledBodies(target, first, command["clients"], command["interval"])
    if kind == "connect-burst":
        return ConnectBurst(target, first, command["clients"], command["repeats"], command["every"])
    if kind == "mass-disconnect":
        return MassDisconnect(
            {
                "host": command["host"],
                "port": command["port"],
                "sources": command["sources"],
                "transport": "sse",
                "n": command["clients"],
                "first_index": first,
                "concurrency": command["concurrency"],
                "pool": command["pool"],
            }
        )
    raise ValueError(f"unknown attack {kind!r}")


class Armed:
    """An attack armed in a worker: struck once at most, stopped at most once, and bounded
    by its own time limit should the orchestrator never say stop."""

    def __init__(self, attack: Attack) -> None:
        self.attack = attack
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._struck = False

    async def run(self, limit: float) -> None:
        """The strike, in the worker's nursery: ends when stopped, done, or ``limit``
        seconds have passed."""
        self._struck = True
        try:
            with self._scope:
                self._scope.deadline = trio.current_time() + limit
                await self.attack.strike()
        finally:
            self._done.set()

    async def stop(self) -> dict[str, Any]:
        """Stop the strike (if it began), release what is held; what the clients saw."""
        self._scope.cancel()
        if self._struck:
            await self._done.wait()
        await self.attack.release()
        return self.attack.report()
