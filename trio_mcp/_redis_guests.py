"""Calls of another worker's session, run where their POST arrived (``Settings.redis_url``).

Forwarding a Streamable HTTP call to its session's owner and reading the reply back
costs the two workers together far more than the call costs on the owner alone (a
round of writes and a read on each side; issue 14's benchmark measured 1.6 to 1.9
times). Most calls need nothing of their session but what it negotiated, which its
owner keeps in Redis for a takeover anyway. So the worker a POST reaches runs such a
call itself, as a *guest*: on a copy of the session rebuilt from that state
(:func:`~._redis_takeover.restore`), its reply stream appended to Redis as the owner's
would be. The client sees what the owner would have sent: the same statuses, the same
event ids, a stream it can resume on any worker.

What the owner would otherwise have known of the call is in Redis too:

* **Which worker runs which call.** ``P:guests:{session}`` (request id as JSON ->
  worker and stream key) is written before the call starts and cleared with its reply.
  A cancellation sent to the session also reaches that worker (``s.gcancel``), and the
  session's end tells every worker with a call in it (``s.gend``); either one, reaching
  a call recorded but not yet in its copy, waits for it. ``P:grun:{stream key}`` names
  the worker writing a stream: a resumption elsewhere attaches to it.
* **Replies to the server's own requests.** A guest numbers its requests to the client
  ``guest:{worker}/{copy}.{n}``, so a reply POSTed to any worker finds it, and a late
  reply to an earlier copy's request is never taken for a later copy's.
* **A lost guest.** The worker that finds a guest's heartbeat gone answers its
  unanswered calls with the worker-lost error (:data:`_SWEEP`), as a lost owner's are.
  A guest that was only paused finds, when it goes on, that Redis refuses the rest of
  those streams ('G' answers which): it shows their clients nothing more, so that a
  client never sees an event Redis does not hold, and ends the calls. (A reply sent
  as one JSON body has no event id to resume from, and never goes to Redis: it is
  sent as it would have been.)
* **The owner hears its session is in use** (``s.touch``, at most every
  :data:`_TOUCH_EVERY` seconds per session, when a call joins and while one runs), so
  its idle timeout does not end a session whose calls all run elsewhere.

Only a lone request that changes nothing of its session runs as a guest
(:func:`runs_as_guest`): ``initialize``, ``logging/setLevel``, subscriptions, a call
made a task, notifications, replies and batches go to the owner, where the state they
change lives. A guest's copy hears none of the server's list changes (its owner's
streams carry them) and ends after :data:`GUEST_IDLE` seconds without a call.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ._budget import ByteBudget
from ._jsonrpc import (
    Body,
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    parse_body,
)
from ._redis_sessions import (
    MirroredStream,
    RedisSessions,
    _Outgoing,
    cancelled_ids,
    encode_message,
)
from ._redis_takeover import APPEND_LOST, LOST_CODE, LOST_MESSAGE, parse_state, restore
from ._session import Session, SessionClosed, SessionOverloaded
from ._stream import OutboundStream

if TYPE_CHECKING:
    from ._supervisor import SessionSupervisor

log = logging.getLogger("trio_mcp")

#: What a guest may run: requests whose answer depends on the session only through
#: what it negotiated (a change of its state must reach the owner, which keeps it).
GUEST_METHODS: Final = frozenset(
    {
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
    }
)
#: Seconds a guest's copy of a session is kept without a call: the next call from the
#: same client usually comes within it, and the copy costs a session's memory.
GUEST_IDLE: Final = 30.0
#: Seconds between the owner's reminders that its session is in use here (at most).
_TOUCH_EVERY: Final = 10.0
_PREFIX: Final = "guest:"

# Answer a lost worker's guest calls with the worker-lost error, and end their streams.
# KEYS: the lost worker's set of sessions it ran calls of. ARGV: prefix, lost worker,
# error message, error code, ttl ms of a request stream. -> the calls answered.
_SWEEP = (
    APPEND_LOST
    + """
local answered = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local gkey = ARGV[1] .. ':guests:' .. sid
  local all = redis.call('HGETALL', gkey)
  for i = 1, #all, 2 do
    local worker, key = string.match(all[i + 1], '^(%S+) (%S+)$')
    if worker == ARGV[2] then
      local skey = ARGV[1] .. ':stream:' .. key
      if #redis.call('XRANGE', skey, '1-0', '1-0') == 0 then
        append_lost(skey, all[i], ARGV[4], ARGV[3])
        redis.call('XADD', skey, '1-0', 'e', '1')
        redis.call('PEXPIRE', skey, ARGV[5])
        answered = answered + 1
      end
      redis.call('HDEL', gkey, all[i])
    end
  end
end
redis.call('DEL', KEYS[1])
return answered
"""
)


def runs_as_guest(body: Body, sse_ok: bool) -> Request | None:
    """The POST's one request, if a guest may run it; None: it goes to the owner.

    Its client must take an event stream (``sse_ok``): a JSON-only client's
    notifications and the server's requests go to the session's own stream, which only
    the owner writes."""
    if body.is_batch or not sse_ok or len(body.items) != 1:
        return None
    message = body.items[0]
    if not isinstance(message, Request) or message.method not in GUEST_METHODS:
        return None
    if isinstance(message.params, dict) and "task" in message.params:
        return None  # a task lives in the task store its owner's worker runs
    return message


def runner_of(request_id: RequestId | None) -> str | None:
    """The worker that sent a server-to-client request with this id as a guest."""
    if isinstance(request_id, str) and request_id.startswith(_PREFIX):
        worker, slash, number = request_id[len(_PREFIX) :].rpartition("/")
        copy, dot, n = number.partition(".")
        if slash and worker and dot and copy.isdigit() and n.isdigit():
            return worker
    return None


class RequestInFlight(Exception):
    """A request with this id is in flight in the session already (the client must use
    another id: 400)."""


class GuestMirror:
    """The :class:`~._session.StreamMirror` of a guest's copies of sessions."""

    def __init__(self, calls: GuestCalls) -> None:
        self._calls = calls

    def new_stream(
        self,
        session: Session,
        *,
        max_events: int,
        max_bytes: int,
        drop_when_full: bool,
        budget: ByteBudget,
    ) -> OutboundStream:
        if drop_when_full:
            # The copy's main stream (a Streamable HTTP session's drops when full): the
            # owner's carries the session's messages; this one is never read or stored.
            return OutboundStream(
                max_events=max_events, max_bytes=max_bytes, drop_when_full=True, budget=budget
            )
        return MirroredStream(
            self._calls.shared,
            session.id,
            guest=True,
            max_events=max_events,
            max_bytes=max_bytes,
            drop_when_full=False,
            budget=budget,
        )

    async def accept(self, session: Session, requests: list[tuple[RequestId, str]]) -> bool:
        return await self._calls.record(session.id, session.owner, requests) is not None

    def settled(self, session: Session, request_id: RequestId) -> None:
        self._calls.shared.queue(
            _Outgoing(session.id, session.main.key, 0, "", "x", json.dumps(request_id), guest=True)
        )


@attrs.define(eq=False)
class _Copy:
    """A copy of another worker's session kept here, and what this worker knows of it."""

    session: Session
    #: The session's owner, as Redis last named it.
    owner: str = ""
    #: The state the copy was last given, as Redis had it (None: none yet).
    state: str | None = None
    #: When its owner was last told the session is in use here.
    reminded: float = -math.inf


@attrs.define(eq=False)
class _Joining:
    """A session's calls joining their copy here: recorded in Redis as run here, so a
    cancellation or the session's end may come for them, but not yet in the copy."""

    #: Request id (JSON) -> whether a cancellation came for it meanwhile.
    cancelled: dict[str, bool] = attrs.field(factory=dict)
    #: Whether the session ended meanwhile.
    ended: bool = False


class GuestCalls:
    """This worker's copies of other workers' sessions, and the calls they run."""

    def __init__(self, shared: RedisSessions, supervisor: SessionSupervisor) -> None:
        self.shared = shared
        self._supervisor = supervisor
        self._mirror = GuestMirror(self)
        self._request_id_prefix = f"{_PREFIX}{shared.connection.worker}/"
        #: Copies started here so far: each numbers its requests to the client apart.
        self._started = 0
        #: The copies, by session id.
        self.copies: dict[str, _Copy] = {}
        #: Copies being started: a second call of the same session waits for the first.
        self._starting: dict[str, trio.Event] = {}
        #: Calls joining their copy, by session id: what comes for them meanwhile
        #: waits for :meth:`deliver` (the copy would not know them yet).
        self._joining: dict[str, _Joining] = {}
        self._touch_every = min(_TOUCH_EVERY, supervisor.settings.session_idle_timeout / 4)
        #: Calls run here as a guest since the worker started (to watch the spread).
        self.calls = 0

    @property
    def hosting(self) -> bool:
        """Whether a new call may start here (not while the worker stops)."""
        return self._supervisor.accepting

    def copy_of(self, session_id: str) -> Session | None:
        """This worker's copy of the session, if it keeps one."""
        copy = self.copies.get(session_id)
        return copy.session if copy is not None else None

    async def join(
        self, session_id: str, principal: str | None, request_id: RequestId, key: str
    ) -> Session | None:
        """The copy of the session to run a call on, the call recorded in Redis as run
        here with its replies on the stream ``key``; None: no such session (for this
        principal). Raises :class:`RequestInFlight`, StoreUnavailable, or NotServing once
        the worker stops (the call is then no longer recorded as run here).

        The call is *joining* until :meth:`deliver` hands its request to the copy."""
        joining = self._joining.setdefault(session_id, _Joining())
        # A second POST with the same id racing this one leaves the mark alone: it is
        # refused as in flight.
        marked = json.dumps(request_id) not in joining.cancelled
        joining.cancelled.setdefault(json.dumps(request_id), False)
        joined = False
        try:
            answer = await self.record(session_id, principal, [(request_id, key)])
            if answer is None:
                return None
            owner, state = answer
            try:
                copy = await self._copy(session_id, principal, state)
            except BaseException:
                self.abandon(session_id, request_id)
                raise
            joined = True
        finally:
            if marked and not joined:
                _, ended = self._stop_joining(session_id, request_id)
                session = self.copy_of(session_id)
                if ended and session is not None:
                    session.close()  # the session ended meanwhile: so does its copy
        self.calls += 1
        copy.owner = owner
        self._remind(copy)
        return copy.session

    async def deliver(self, session: Session, request: Request, size: int) -> None:
        """Start a joined call on its copy (raises as :meth:`Session.deliver`), then
        end it as told while it was joining: cancelled, or its session ended."""
        try:
            await session.deliver([request], size=size, recorded=True)
        finally:
            cancelled, ended = self._stop_joining(session.id, request.id)
            if ended:
                session.close()
        if cancelled and not ended:
            await self._cancel(session, request.id)

    def _stop_joining(self, session_id: str, request_id: RequestId) -> tuple[bool, bool]:
        """No longer joining; -> whether it was cancelled, and whether its session
        ended, meanwhile."""
        joining = self._joining.get(session_id, _Joining())
        cancelled = joining.cancelled.pop(json.dumps(request_id), False)
        if not joining.cancelled:
            self._joining.pop(session_id, None)
        return cancelled, joining.ended

    def _remind(self, copy: _Copy) -> None:
        """Tell the session's owner it is in use (at most every ``_touch_every``)."""
        now = trio.current_time()
        if now - copy.reminded >= self._touch_every:
            copy.reminded = now
            self.shared.send_later(copy.owner, {"op": "s.touch", "sid": copy.session.id})

    async def remind_owners(self) -> None:
        """Until cancelled: keep reminding the owners of sessions whose calls run here
        (or whose streams are read here) that they are in use, however long a call
        takes: a single call may outlast the owner's idle timeout."""
        while True:
            await trio.sleep(self._touch_every)
            for copy in list(self.copies.values()):
                if not copy.session.closed and copy.session.idle_since() is None:
                    self._remind(copy)

    async def record(
        self, session_id: str, principal: str | None, requests: list[tuple[RequestId, str]]
    ) -> tuple[str, str] | None:
        """Record calls as run here (the 'GA' operation); -> the session's owner and
        state, or None for no such session. Raises :class:`RequestInFlight`."""
        operation: list[Any] = ["GA", session_id, principal or "", "streamable"]
        for request_id, key in requests:
            operation += [json.dumps(request_id), key]
        answer = await self.shared.submit(operation)
        if int(answer[0]) == 2:
            raise RequestInFlight([request_id for request_id, _ in requests])
        if int(answer[0]) != 1:
            return None
        return str(answer[1]), str(answer[3])

    def abandon(self, session_id: str, request_id: RequestId) -> None:
        """A call recorded as run here that will not run (its POST was refused after
        all): no longer recorded, so nothing answers it for this worker later."""
        self.shared.queue(_Outgoing(session_id, "", 0, "", "x", json.dumps(request_id), guest=True))

    async def _copy(self, session_id: str, principal: str | None, state: str) -> _Copy:
        while (starting := self._starting.get(session_id)) is not None:
            await starting.wait()
        copy = self.copies.get(session_id)
        if copy is None or copy.session.closed:
            started = self._starting[session_id] = trio.Event()
            self._started += 1
            try:
                session = await self._supervisor.host_guest(
                    session_id,
                    principal,
                    self._mirror,
                    guest_prefix=f"{self._request_id_prefix}{self._started}.",
                    idle_timeout=GUEST_IDLE,
                    on_end=self._ended,
                )
            finally:
                del self._starting[session_id]
                started.set()
            copy = self.copies[session_id] = _Copy(session)
        if state != copy.state:
            # The owner wrote a change (a log level, most often): the copy takes it.
            restore(copy.session, parse_state(state))
            copy.state = state
        return copy

    def _ended(self, session: Session) -> None:
        copy = self.copies.get(session.id)
        if copy is not None and copy.session is session:
            del self.copies[session.id]
            self.shared.send_later("guest-gone", {"sid": session.id})

    # -- the publisher's side -----------------------------------------------------------

    def append_operation(self, session_id: str, items: Sequence[_Outgoing]) -> list[Any]:
        """The 'G' operation appending a copy's events (unfenced: the owner's token is
        not the guest's to hold; the session must still exist)."""
        operation: list[Any] = ["G", session_id]
        for item in items:
            operation += [item.key, item.seq, item.data, item.flag, item.answers]
        return operation

    def appended(
        self, session_id: str, refused: set[tuple[str, str]], answer: Any
    ) -> Awaitable[None] | None:
        """Act on a 'G' answer; the streams a sweep ended go in ``refused``."""
        if isinstance(answer, list):
            keys = [str(key) for key in answer[1:]]
            refused.update((session_id, key) for key in keys)
            session = self.copy_of(session_id)
            return None if session is None else self._end_swept(session, keys)
        if int(answer) == 0:
            session = self.copy_of(session_id)
            if session is not None:
                log.info("session %s ended while a call ran here; ending it", session_id[:8])
                session.close()
        return None

    async def _end_swept(self, session: Session, keys: list[str]) -> None:
        """Another worker took this one for lost (a pause past its heartbeat timeout)
        and answered these streams' calls with the worker-lost error: Redis holds that
        answer, so their clients are shown nothing more from here. Each call is
        cancelled and its stream ended, and its client, resuming anywhere, reads the
        error from Redis."""
        for key in keys:
            stream = session.find_stream(key)
            if stream is None or stream.closed:
                continue  # ended already: a later round of its events was refused too
            log.warning(
                "session %s: a call run here was answered as lost meanwhile; ending it",
                session.id[:8],
            )
            for request_id in list(stream.pending):
                await self._cancel(session, request_id)
            stream.close()

    # -- messages for the copies --------------------------------------------------------

    def route_replies(self, session_id: str, messages: Sequence[Message]) -> None:
        """Send the client's replies to requests of a guest to that guest's worker."""
        for message in messages:
            if isinstance(message, Response | ErrorResponse):
                worker = runner_of(message.id)
                if worker is not None:
                    data = json.dumps(encode_message(message))
                    self.shared.send_later(worker, {"op": "s.gresp", "sid": session_id, "d": data})

    def route_cancels(self, session_id: str, messages: Sequence[Message]) -> None:
        """Cancellations the owner took itself: for calls run by a guest, tell it."""
        ids = cancelled_ids(messages)
        if ids:
            self.shared.send_later("guest-cancel", {"sid": session_id, "ids": json.dumps(ids)})

    async def on_control(self, fields: dict[str, str]) -> None:
        """``s.gend``, ``s.gcancel``, ``s.gresp`` from the control stream, in order."""
        joining = self._joining.get(fields["sid"])
        if joining is not None:  # kept for :meth:`deliver`, once the copy has them
            if fields["op"] == "s.gend":
                joining.ended = True
            elif fields["op"] == "s.gcancel" and fields["id"] in joining.cancelled:
                joining.cancelled[fields["id"]] = True
                return
        session = self.copy_of(fields["sid"])
        if session is None or session.closed:
            return
        if fields["op"] == "s.gend":
            session.close()
        elif fields["op"] == "s.gcancel":
            await self._cancel(session, json.loads(fields["id"]))
        else:
            await self._deliver_quietly(session, parse_body(fields["d"].encode()).messages)

    async def _cancel(self, session: Session, request_id: RequestId) -> None:
        cancel = {"requestId": request_id, "reason": "cancelled by the client"}
        await self._deliver_quietly(session, [Notification("notifications/cancelled", cancel)])

    @staticmethod
    async def _deliver_quietly(session: Session, messages: list[Message]) -> None:
        """Deliver what the client sent to another worker (dropped if the copy has
        ended or is full meanwhile: its POST was answered there)."""
        try:
            await session.deliver(messages, recorded=True)
        except (SessionClosed, SessionOverloaded):
            pass

    async def sweep(self, worker: str) -> None:
        """``worker`` is lost: answer its unanswered guest calls (whoever comes first)."""
        redis = self.shared.connection
        answered = await redis.script(
            _SWEEP,
            [redis.worker_key(worker, "guested")],
            [redis.prefix, worker, LOST_MESSAGE, LOST_CODE, self.shared.ttl_ms],
        )
        if int(answered):
            log.warning("trio-mcp: answered %s calls of lost worker %s", answered, worker)
