"""HTTP+SSE and 2025-era Streamable HTTP sessions shared by the workers on one Redis.

A session still lives in one worker, its *owner* (the one that opened it): its
handlers, its :class:`~trio_mcp._protocol.ProtocolState` and its outbound streams are
there. What Redis adds, behind ``Settings.redis_url`` only:

* **A registry.** ``P:session:{id}`` (a hash: owner worker, principal, kind, main
  stream key, negotiated version, fencing token) is written before the session's id is
  handed out, and deleted when it ends. ``P:skey:{stream key}`` names the session of a
  stream, for a resumption by event id alone (HTTP+SSE). Another principal's session
  is answered as no session: a guessed id is worth nothing.
* **Every event in Redis.** Each event a session's streams carry is appended, in
  order, to the Redis stream ``P:stream:{stream key}`` with the id ``0-{seq}``, so the
  event ids clients see (``{stream key}.{seq}``) are unchanged and a resumption
  anywhere reads exactly what followed ``seq``. The id ``1-0`` marks a stream's end.
  One task per worker (the publisher) sends them, one script per round for all of
  the worker's sessions (:data:`_COMMIT`), checking each session's fencing token: a
  worker whose session was taken from it can append nothing more.
* **POSTs from anywhere.** A POST that reaches another worker is checked and appended
  to the owner's control stream (:data:`_COMMIT`), then answered 202;
  the owner's single reader hands it to the session in order. (A Streamable HTTP call
  that changes nothing of its session runs where it landed instead: :mod:`._redis_guests`.)
* **Streams from anywhere.** A stream a client opens or resumes on another worker is
  fed from its Redis stream by that worker's single reader (:class:`RemoteStream`);
  the owner is told (``attach``/``detach`` on its control stream), so the session
  counts its client as present, and a later writer elsewhere takes the stream over.

* **Nothing accepted is lost.** A POST's requests are pending in Redis before its 202,
  an owner's stream shows an event only once Redis holds it, and the sessions of a
  worker that died are taken over by the next worker that needs them
  (:mod:`._redis_takeover`).

Nothing here ever cancels a Redis command (see :mod:`._redis_client`): sends go
through the publisher task, which is cancelled only between commands.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ._eventlog import Event, InMemoryEventLog
from ._jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    parse_body,
)
from ._redis_client import RedisConnection
from ._redis_line import RedisLine
from ._redis_takeover import (
    LOST_CODE,
    LOST_MESSAGE,
    TAKE,
    Taken,
    parse_taken,
    snapshot,
    state_marks,
)
from ._session import SessionClosed, SessionOverloaded
from ._stream import OutboundStream

if TYPE_CHECKING:
    from ._redis_guests import GuestCalls
    from ._session import Session

log = logging.getLogger("trio_mcp")

#: Entries kept in a worker's control stream, which carries forwarded POSTs.
CONTROL_LENGTH: Final = 10_000
#: Milliseconds Redis keeps a stream its session let go of (a request stream past the
#: ones a session keeps, or any stream of an ended session): long enough for a reader
#: on another worker to see its end.
DROPPED_MS: Final = 10_000
#: Operations in one script of a round at most (an append carries many events).
_ROUND: Final = 256
#: Scheduler passes a round waits for at most while they still add to it (see
#: RedisSessions._gather).
_GATHER_PASSES: Final = 8
#: Forwarded deliveries waiting for the owner's session, in order.
_MAX_DELIVERIES: Final = 10_000

# Register a new session; -> its fencing token. Its main stream (and the name of its
# session) are kept as long as the session: a client may stay on it for hours, and
# resume it anywhere after a drop. Ending the session lets them expire ('D').
# KEYS: session hash, the worker's sessions set, the main stream's skey, the counter.
# ARGV: owner, principal, kind, main key, session id.
_REGISTER = """
local token = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'principal', ARGV[2], 'kind', ARGV[3],
           'main', ARGV[4], 'token', token)
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], ARGV[5])
return token
"""

# Everything a worker writes for its sessions in one round, as one script: a POST's
# requests made pending before its 202 ('A'), events appended ('P'), POSTs forwarded
# to another worker's session ('F'), sessions ended ('E') and commands for other
# workers ('X'). Every worker sends one of these per round instead of one command per
# call: under load a round carries the work of many calls, which is what keeps a call
# with Redis close in cost to one without (each command costs the worker far more CPU
# than Redis spends on it).
# ARGV: prefix, ttl ms, stream max length, control max length, ttl ms of a dropped
# stream, this worker's id, then per operation:
# its kind, how many arguments follow, the arguments:
# 'A' session id, token, main stream key, then pairs of request id (JSON) and the key
#     of the stream its reply goes to (resumable by that key from now on: a client may
#     hold its priming event's id before any event is appended). -> 1; 0 when the token
#     no longer holds (the session was taken); -1 when Redis no longer knows the session
#     (it restarted without its data: the owner registers it again).
# 'P' session id, token, main stream key, version ('' unchanged), state ('' unchanged),
#     then per event: stream key, seq, data, flag ('r' a response, 'n' anything else,
#     'e' the end, 'x' no event: a request cancelled, which gets no reply, 'h' no
#     event: a reply sent as a JSON body, never stored), the id (JSON) of the request
#     it answers ('' none), which leaves the session's pending requests in the same
#     step. Fenced like 'A', with the same answers.
# 'F' session id, principal, kind, messages (JSON), request stream key ('' none),
#     carry notifications (1/0), size, batch (1/0), how many cancelled request ids
#     follow, those ids (JSON: each also goes to the worker running it as a guest, if
#     one does), then the ids (JSON) of the requests: kept pending until answered (a
#     new owner answers them if this one dies first).
#     -> {0} no such session (for this principal), {-1} its worker is lost, {2, version}
#     a batch its revision refuses, {1, version, owner, kind, main key} forwarded.
# 'D' session id, token, then keys of streams the session no longer keeps: they expire
#     soon (the same resumptions fail as on a single server; a reader elsewhere still
#     gets their end). Fenced, but done too when the session has ended. -> 1
# 'R' session id, writer id, stream key ('' gone), worker: a client reading a stream of
#     the session on another worker, kept for a new owner to know of (for as long as
#     the session: a client may read for hours). -> 1
# 'E' session id, token, the owner's sessions set; the workers running calls of the
#     session as guests are told it ended. -> 1
# 'X' a worker's control stream, then field/value pairs. -> 1
# A guest's calls (see :mod:`._redis_guests`):
# 'GA' session id, principal, kind, then pairs of request id (JSON) and the key of the
#      stream its reply goes to: calls run by this worker. -> {0} no such session (for
#      this principal), {2} a request with one of these ids is in flight (here, on the
#      owner or on another guest), {1, owner, version, state}.
# 'G'  session id, then events as for 'P' (and flag 'd': the stream is let go of, its
#      keys expire soon): a guest's, unfenced (the session must exist).
#      -> 1, or 0 when the session has ended (only ends of streams are written then),
#      or {2, stream key...}: these streams were ended by a sweep (this worker was taken
#      for lost; the sweep answered their calls), their events were not appended.
# 'GC' session id, then request ids (JSON): cancelled; their guests are told. -> 1
# 'GX' session id: its copy here ended; forgotten unless a call of it still runs. -> 1
# What lives as long as its session (its hash, pending requests, readers elsewhere, main
# stream and the name of it) is let go of when the session ends; what a request opened
# expires by itself once the session stops renewing it.
_COMMIT = """
local prefix, ttl, maxlen, ctl, dropped, me = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local out = {}
-- A round carries many operations of one session (a call's accept and the reply of
-- the one before): its token is read once, a request stream's expiry renewed once.
local tokens, renewed = {}, {}
-- Cancellations of calls a guest runs (ARGV[from..to]: their ids) go to its worker too.
local function tell_guests(sid, from, to)
  for j = from, to do
    local runner = redis.call('HGET', prefix .. ':guests:' .. sid, ARGV[j])
    local w = runner and string.match(runner, '^(%S+)')
    if w and redis.call('EXISTS', prefix .. ':worker:' .. w .. ':alive') == 1 then
      redis.call('XADD', prefix .. ':worker:' .. w .. ':control',
                 'MAXLEN', '~', ctl, '*', 'op', 's.gcancel', 'sid', sid, 'id', ARGV[j])
    end
  end
end
local function token_of(skey)
  local token = tokens[skey]
  if token == nil then
    token = redis.call('HGET', skey, 'token')
    tokens[skey] = token
  end
  return token
end
local i = 7
while i <= #ARGV do
  local kind, a = ARGV[i], i + 2
  local last = a + tonumber(ARGV[i + 1]) - 1
  local sid = ARGV[a]
  local skey = prefix .. ':session:' .. sid
  local answer = 1
  if kind == 'A' or kind == 'P' then
    local token = token_of(skey)
    if not token then answer = -1 elseif token ~= ARGV[a + 1] then answer = 0 end
  end
  local pkey = prefix .. ':pending:' .. sid
  if answer ~= 1 then
    -- Fenced off: nothing is written.
  elseif kind == 'A' then
    for j = a + 3, last, 2 do
      redis.call('HSET', pkey, ARGV[j], ARGV[j + 1])
      if ARGV[j + 1] ~= ARGV[a + 2] then
        redis.call('SET', prefix .. ':skey:' .. ARGV[j + 1], sid, 'PX', ttl)
      end
    end
  elseif kind == 'P' then
    local main = ARGV[a + 2]
    if ARGV[a + 3] ~= '' then redis.call('HSET', skey, 'v', ARGV[a + 3]) end
    if ARGV[a + 4] ~= '' then redis.call('HSET', skey, 'state', ARGV[a + 4]) end
    for j = a + 5, last, 5 do
      if ARGV[j + 4] ~= '' then redis.call('HDEL', pkey, ARGV[j + 4]) end
      local flag = ARGV[j + 3]
      if flag ~= 'x' and flag ~= 'h' then
        local key = prefix .. ':stream:' .. ARGV[j]
        if flag == 'e' then
          redis.pcall('XADD', key, '1-0', 'e', '1')
        else
          redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '0-' .. ARGV[j + 1],
                      'd', ARGV[j + 2], 'r', flag)
        end
        if ARGV[j] ~= main and not renewed[key] then
          -- (SET, not PEXPIRE: a call may answer after its stream's name expired.)
          renewed[key] = true
          redis.call('PEXPIRE', key, ttl)
          redis.call('SET', prefix .. ':skey:' .. ARGV[j], sid, 'PX', ttl)
        end
      end
    end
  elseif kind == 'F' then
    local s = redis.call('HMGET', skey, 'owner', 'principal', 'kind', 'v', 'main')
    local version = s[4] or ''
    if not s[1] or s[2] ~= ARGV[a + 1] or s[3] ~= ARGV[a + 2] then
      answer = {0}
    elseif ARGV[a + 7] == '1' and version ~= '' and version ~= '2024-11-05'
           and version ~= '2025-03-26' then
      answer = {2, version}
    elseif s[1] ~= me and redis.call('EXISTS', prefix .. ':worker:' .. s[1] .. ':alive') == 0 then
      -- (A worker is alive to itself, even when a stall let its heartbeat lapse.)
      answer = {-1}
    else
      local rkey = ARGV[a + 4]
      if rkey ~= '' then redis.call('SET', prefix .. ':skey:' .. rkey, sid, 'PX', ttl) end
      local cancels = a + 8 + tonumber(ARGV[a + 8])
      tell_guests(sid, a + 9, cancels)
      for j = cancels + 1, last do
        redis.call('HSET', pkey, ARGV[j], rkey ~= '' and rkey or s[5])
      end
      redis.call('XADD', prefix .. ':worker:' .. s[1] .. ':control', 'MAXLEN', '~', ctl, '*',
                 'op', 's.deliver', 'sid', sid, 'd', ARGV[a + 3], 'k', rkey,
                 'c', ARGV[a + 5], 'n', ARGV[a + 6])
      answer = {1, version, s[1], s[3], s[5]}
    end
  elseif kind == 'R' then
    local rkey = prefix .. ':readers:' .. sid
    if ARGV[a + 2] == '' then
      redis.call('HDEL', rkey, ARGV[a + 1])
    elseif redis.call('EXISTS', skey) == 1 then
      redis.call('HSET', rkey, ARGV[a + 1], ARGV[a + 2] .. ' ' .. ARGV[a + 3])
    end
  elseif kind == 'E' then
    if token_of(skey) == ARGV[a + 1] then
      local gkey = prefix .. ':guests:' .. sid
      local told = {}
      for _, runner in ipairs(redis.call('HVALS', gkey)) do
        local w = string.match(runner, '^(%S+)')
        if not told[w] then
          told[w] = true
          redis.call('SREM', prefix .. ':worker:' .. w .. ':guested', sid)
          if redis.call('EXISTS', prefix .. ':worker:' .. w .. ':alive') == 1 then
            redis.call('XADD', prefix .. ':worker:' .. w .. ':control', 'MAXLEN', '~', ctl, '*',
                       'op', 's.gend', 'sid', sid)
          end
        end
      end
      redis.call('DEL', skey, pkey, prefix .. ':readers:' .. sid, gkey)
      tokens[skey] = false
    end
    redis.call('SREM', ARGV[a + 2], sid)
  elseif kind == 'D' then
    local token = token_of(skey)
    if not token or token == ARGV[a + 1] then
      for j = a + 2, last do
        redis.call('PEXPIRE', prefix .. ':stream:' .. ARGV[j], dropped)
        redis.call('PEXPIRE', prefix .. ':skey:' .. ARGV[j], dropped)
      end
    end
  elseif kind == 'X' then
    local fields = {}
    for j = a + 1, last do fields[#fields + 1] = ARGV[j] end
    redis.call('XADD', ARGV[a], 'MAXLEN', '~', ctl, '*', unpack(fields))
  elseif kind == 'GA' then
    local s = redis.call('HMGET', skey, 'owner', 'principal', 'kind', 'v', 'state')
    local busy = false
    for j = a + 3, last, 2 do
      if redis.call('HEXISTS', prefix .. ':guests:' .. sid, ARGV[j]) == 1
         or redis.call('HEXISTS', pkey, ARGV[j]) == 1 then busy = true end
    end
    if not s[1] or s[2] ~= ARGV[a + 1] or s[3] ~= ARGV[a + 2] then
      answer = {0}
    elseif busy then
      answer = {2}
    else
      for j = a + 3, last, 2 do
        redis.call('HSET', prefix .. ':guests:' .. sid, ARGV[j], me .. ' ' .. ARGV[j + 1])
        redis.call('SET', prefix .. ':skey:' .. ARGV[j + 1], sid, 'PX', ttl)
        redis.call('SET', prefix .. ':grun:' .. ARGV[j + 1], me, 'PX', ttl)
      end
      redis.call('SADD', prefix .. ':worker:' .. me .. ':guested', sid)
      answer = {1, s[1], s[4] or '', s[5] or ''}
    end
  elseif kind == 'G' then
    answer = redis.call('EXISTS', skey)
    local swept, named = {}, {}
    for j = a + 1, last, 5 do
      if ARGV[j + 4] ~= '' then redis.call('HDEL', prefix .. ':guests:' .. sid, ARGV[j + 4]) end
      local flag = ARGV[j + 3]
      local key = prefix .. ':stream:' .. ARGV[j]
      if flag == 'e' then
        redis.pcall('XADD', key, '1-0', 'e', '1')
        redis.call('PEXPIRE', key, answer == 1 and ttl or dropped)
      elseif flag == 'd' then
        -- Let go of by its copy (answered as one body, or past the streams it keeps).
        redis.call('PEXPIRE', key, dropped)
        redis.call('PEXPIRE', prefix .. ':skey:' .. ARGV[j], dropped)
        redis.call('PEXPIRE', prefix .. ':grun:' .. ARGV[j], dropped)
      elseif flag ~= 'x' and flag ~= 'h' and answer == 1 then
        local added = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '0-' .. ARGV[j + 1],
                                  'd', ARGV[j + 2], 'r', flag)
        if type(added) == 'table' and added.err then
          -- Refused: appended already (this round sent again), or the stream was ended
          -- by another worker's sweep that took this one for lost and answered the call.
          local seq = '0-' .. ARGV[j + 1]
          local same = redis.call('XRANGE', key, seq, seq)
          if not (same[1] and same[1][2][2] == ARGV[j + 2]) and not named[ARGV[j]]
              and #redis.call('XRANGE', key, '1-0', '1-0') > 0 then
            named[ARGV[j]] = true
            swept[#swept + 1] = ARGV[j]
          end
        end
        if not renewed[key] then
          renewed[key] = true
          redis.call('PEXPIRE', key, ttl)
          redis.call('SET', prefix .. ':skey:' .. ARGV[j], sid, 'PX', ttl)
          redis.call('SET', prefix .. ':grun:' .. ARGV[j], me, 'PX', ttl)
        end
      end
    end
    if #swept > 0 then answer = {2, unpack(swept)} end
  elseif kind == 'GC' then
    tell_guests(sid, a + 1, last)
  elseif kind == 'GX' then
    -- A guest's copy of the session ended here: forgotten unless it still runs a call.
    local mine = false
    for _, runner in ipairs(redis.call('HVALS', prefix .. ':guests:' .. sid)) do
      if string.match(runner, '^(%S+)') == me then mine = true end
    end
    if not mine then redis.call('SREM', prefix .. ':worker:' .. me .. ':guested', sid) end
  end
  out[#out + 1] = answer
  i = last + 1
end
return out
"""

# End a stream whose session is not served here, for its reader elsewhere, and let it
# go soon (an end already there stays); fenced: nothing is written while the session
# lives on with another token (another worker's now, or adopting it).
# KEYS: the stream, the session hash. ARGV: ttl ms of a dropped stream, this worker's
# token for the session ('' none). -> 1 ended, 0 fenced off.
_END_ORPHAN = """
local token = redis.call('HGET', KEYS[2], 'token')
if token and token ~= ARGV[2] then return 0 end
redis.pcall('XADD', KEYS[1], '1-0', 'e', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The clients reading a session's streams on live workers, for its new owner; those of
# lost workers are forgotten. KEYS: the session's readers hash. ARGV: prefix.
# -> a flat list of writer id, stream key, worker.
_READERS = """
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local key, worker = string.match(all[i + 1], '^(%S+) (%S+)$')
  if key and redis.call('EXISTS', ARGV[1] .. ':worker:' .. worker .. ':alive') == 1 then
    out[#out + 1] = all[i]
    out[#out + 1] = key
    out[#out + 1] = worker
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
"""

# A session for a GET, a resumption or a DELETE on a worker that does not own it.
# ARGV: prefix, session id ('' to find it by the stream key), stream key ('' none),
# principal, this worker's id (alive to itself).
# -> {0}, or {1, session id, owner, kind, main key, version, first seq, last seq,
#    owner alive (1/0), the worker running the stream's call as a guest ('' none)}
#    (the stream's first and last event ids, '' for none).
_LOOKUP = """
local sid = ARGV[2]
if ARGV[3] ~= '' then
  local owner = redis.call('GET', ARGV[1] .. ':skey:' .. ARGV[3])
  if not owner or (sid ~= '' and owner ~= sid) then return {0} end
  sid = owner
end
local s = redis.call('HMGET', ARGV[1] .. ':session:' .. sid, 'owner', 'principal', 'kind',
                     'main', 'v')
if not s[1] or s[2] ~= ARGV[4] then return {0} end
local key = ARGV[1] .. ':stream:' .. (ARGV[3] ~= '' and ARGV[3] or s[4])
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', key, '(1-0', '-', 'COUNT', 1)
local f = first[1] and first[1][1] or ''
local l = last[1] and last[1][1] or ''
local alive = 1
if s[1] ~= ARGV[5] then alive = redis.call('EXISTS', ARGV[1] .. ':worker:' .. s[1] .. ':alive') end
local runner = ARGV[3] ~= '' and redis.call('GET', ARGV[1] .. ':grun:' .. ARGV[3]) or ''
return {1, sid, s[1], s[3], s[4], s[5] or '', f, l, alive, runner}
"""


@attrs.frozen
class SharedSession:
    """What another worker knows of a session (from its hash)."""

    id: str
    owner: str
    kind: str
    main: str
    version: str


@attrs.frozen
class Lookup:
    session: SharedSession
    #: The stream's oldest and newest event numbers in Redis (0 for none).
    first: int
    last: int
    #: Whether the owner's heartbeat still runs.
    alive: bool = True
    #: The worker running the stream's call as a guest ('' none: the owner writes it).
    runner: str = ""


class Forwarded(Exception):
    """Why a forwarded POST was not taken: ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _seq(entry_id: str) -> int:
    # Events are 0-{seq}; the end marker is 1-0.
    major, _, minor = entry_id.partition("-")
    return int(minor) if major == "0" else -1


def cancelled_ids(messages: Sequence[Message]) -> list[str]:
    """The requests (their ids as JSON) the client cancels in these messages."""
    return [
        json.dumps(message.params["requestId"])
        for message in messages
        if isinstance(message, Notification)
        and message.method == "notifications/cancelled"
        and isinstance(message.params, dict)
        and isinstance(message.params.get("requestId"), str | int)
    ]


def encode_message(message: Message) -> Any:
    """A parsed message as the JSON the client sent (to forward it)."""
    if isinstance(message, Request):
        value: dict[str, Any] = {"jsonrpc": "2.0", "id": message.id, "method": message.method}
        if message.params is not None:
            value["params"] = message.params
        return value
    if isinstance(message, Notification):
        value = {"jsonrpc": "2.0", "method": message.method}
        if message.params is not None:
            value["params"] = message.params
        return value
    if isinstance(message, Response):
        return {"jsonrpc": "2.0", "id": message.id, "result": message.result}
    assert isinstance(message, ErrorResponse)
    return {"jsonrpc": "2.0", "id": message.id, "error": message.error}


class MirroredStream(OutboundStream):
    """An owner's outbound stream whose every event is also appended to Redis.

    A stream read on another worker (``remote_readers``) counts an event as written
    once it is in Redis: that is where its reader takes it from, and the emitters'
    backpressure must not wait for a local writer that will never come.

    A POST's stream whose client takes a JSON body is *held* (:meth:`hold`): its
    events stay here until the POST knows how it answers. Answered as one body, the
    stream is never resumed (its client has no event id), so only its replies leaving
    the session's pending requests go to Redis, before the body does; its events never
    do. Served as events after all, it sends Redis every event it held, in order, and
    goes on as any other stream (:meth:`stop_holding`)."""

    __slots__ = (
        "_dropped",
        "_ended",
        "_guest",
        "_held",
        "_mirror",
        "_session_id",
        "durable",
        "remote_readers",
    )

    def __init__(
        self, mirror: RedisSessions, session_id: str, *, guest: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._mirror = mirror
        self._session_id = session_id
        #: A stream of a guest's call (see :mod:`._redis_guests`): appended unfenced.
        self._guest = guest
        self._ended = False
        self._dropped = False
        #: The newest event known to be in Redis.
        self.durable = 0
        self.remote_readers = 0
        #: What is kept from Redis while the stream is held, in order; None: not held.
        self._held: list[_Outgoing] | None = None

    def hold(self) -> None:
        if not self.log.last_seq and not self._ended:
            self._held = []

    def stop_holding(self) -> None:
        held, self._held = self._held, None
        for item in held or ():
            self._mirror.queue(item)

    def _queue(self, item: _Outgoing) -> None:
        if self._held is not None:
            self._held.append(item)
        else:
            self._mirror.queue(item)

    def _push(self, data: str, response: bool) -> None:
        super()._push(data, response)
        answers = ""
        if response:
            try:
                answered = json.loads(data).get("id")
            except (ValueError, AttributeError):
                answered = None
            answers = "" if answered is None else json.dumps(answered)
        flag = "r" if response else "n"
        self._queue(
            _Outgoing(
                self._session_id, self.key, self.log.last_seq, data, flag, answers, self._guest
            )
        )

    async def plain_responses(self) -> list[Event] | None:
        if self._held is None:
            return await super().plain_responses()
        while self.responses_only and not self.complete:
            await self._changed.park()
        if not self.responses_only:
            return None  # the caller serves the events: stop_holding sends them
        held, self._held = self._held, None
        if not self.closed:
            # The replies leave the pending requests (fenced) before the body goes: a
            # new owner must not answer them too. Each held item goes, stored as
            # nothing, so that the wait below ends whatever they answer. Shielded: once
            # that is under way, the body is the only way the replies reach the client.
            # (Fenced off, the session closes and the body still goes: it has no event
            # id, and the new owner's error for the call is on a stream no one reads.)
            for item in held:
                item.flag = "h"
                self._mirror.queue(item)
            with trio.CancelScope(shield=True):
                while self.durable < self.log.last_seq and not self.closed:
                    await self._changed.park()
        return self._hand_over_all()

    def finish(self) -> None:
        super().finish()
        self._end()

    def release(self) -> None:
        if not self._dropped:
            self._dropped = True
            if self._guest:
                # Its names in Redis go soon, in order with its events ('G' flag 'd').
                self._mirror.queue(_Outgoing(self._session_id, self.key, 0, "", "d", guest=True))
            else:
                self._mirror.drop(self._session_id, self.key)
        super().release()

    def close(self) -> None:
        super().close()
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue(_Outgoing(self._session_id, self.key, 0, "", "e", guest=self._guest))

    def made_durable(self, seq: int) -> None:
        self.durable = max(self.durable, seq)
        if self.remote_readers and not self.attached_locally():
            self.written = max(self.written, seq)
        self._wake()

    def visible_seq(self) -> int:
        # A client is shown only what Redis holds: an event id it may resume from on
        # any worker, and a reply a new owner will not answer a second time.
        return self.durable

    def preload(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Take a lost owner's events from Redis (a takeover): resumptions here
        replay them, and the numbering goes on after them."""
        for entry_id, fields in entries:
            seq = _seq(entry_id)
            if seq < 0:
                continue
            if not self.log.last_seq:
                self.log = _StartedLog(seq - 1)
            OutboundStream._push(self, fields.get("d", ""), fields.get("r") == "r")
        self.durable = self.written = self.log.last_seq

    def attached_locally(self) -> bool:
        return self.attached and not isinstance(self._writer, RemoteWriter)


class RemoteWriter:
    """Stands, on the owner, for a writer on another worker: taking the stream over
    from it asks that worker to end its response."""

    __slots__ = ("_mirror", "stream_key", "worker", "writer_id")

    def __init__(self, mirror: RedisSessions, worker: str, writer_id: str, key: str) -> None:
        self._mirror = mirror
        self.worker = worker
        self.writer_id = writer_id
        self.stream_key = key

    def cancel(self) -> None:
        self._mirror.send_later(self.worker, {"op": "s.cancel", "w": self.writer_id})


class _StartedLog(InMemoryEventLog):
    """A log whose numbering continues after ``cursor`` (a remote stream's)."""

    __slots__ = ()

    def __init__(self, cursor: int) -> None:
        super().__init__()
        self._last = cursor


class RemoteStream(OutboundStream):
    """A stream of a session owned elsewhere, fed from Redis by this worker's reader."""

    __slots__ = ("_tail_id", "cursor", "redis_key", "session_id", "writer_id")

    def __init__(
        self,
        key: str,
        session_id: str,
        cursor: int,
        settings_events: int,
        settings_bytes: int,
        redis_key: str,
    ) -> None:
        super().__init__(
            max_events=settings_events,
            max_bytes=settings_bytes,
            log=_StartedLog(cursor),
        )
        self.key = key
        self.session_id = session_id
        self.redis_key = redis_key
        #: Where the reader reads from next (a Redis stream id).
        self.cursor = f"0-{cursor}"
        self.writer_id = secrets.token_hex(8)

    def feed(self, entry_id: str, fields: dict[str, str]) -> None:
        """One entry the reader took: the next event, or the end."""
        self.cursor = entry_id
        seq = _seq(entry_id)
        if seq < 0:
            self.close()
            return
        if seq != self.log.last_seq + 1:
            # Trimmed in Redis meanwhile: what the client missed cannot be sent whole.
            log.info("stream %s: events lost in Redis; ending it", self.key[:8])
            self.close()
            return
        self._trim()
        events, size = self.log.size
        if events >= 2 * self._max_events or size >= 2 * self._max_bytes:
            # The client reads too slowly: end the response; it resumes from Redis.
            self.close()
            return
        self._push(fields.get("d", ""), fields.get("r") == "r")


@attrs.define(eq=False)
class _Outgoing:
    session_id: str
    key: str
    seq: int
    data: str
    flag: str
    answers: str = ""
    #: Of a guest's call: goes in a 'G' operation, not the owner's 'P'.
    guest: bool = False


class _Waited:
    """An operation of the next round whose caller waits for its answer (a POST's
    ``accept`` or ``forward``: its 202 depends on it)."""

    __slots__ = ("answer", "done", "failure", "operation")

    def __init__(self, operation: list[Any]) -> None:
        self.operation = operation
        self.done = trio.Event()
        self.answer: Any = None
        self.failure: BaseException | None = None

    def settle(self, answer: Any = None, failure: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.answer, self.failure = answer, failure
            self.done.set()

    async def wait(self) -> Any:
        """The answer, once its round is done. Shielded like any Redis command here:
        a round ends within the client's timeouts, and the publisher settles every
        waiter it still holds when it stops."""
        with trio.CancelScope(shield=True):
            await self.done.wait()
        if self.failure is not None:
            raise self.failure
        return self.answer


_Item = _Outgoing | _Waited | tuple[str, dict[str, str]] | str


class RedisSessions:
    """This worker's part in sharing sessions. Made by the app; run by the
    :class:`~trio_mcp._redis_worker.RedisWorker`, whose reader passes it the entries
    of the streams it tails and the ``s.*`` commands of the control stream."""

    def __init__(
        self,
        connection: RedisConnection,
        *,
        replay_events: int,
        replay_bytes: int,
        ttl: float,
    ) -> None:
        self.connection = connection
        #: The publisher's own connection: one script per round, sent from its task.
        self._line = RedisLine(connection)
        self._replay_events = replay_events
        self._replay_bytes = replay_bytes
        self._ttl_ms = max(1, round(ttl * 1000))
        #: This worker's own sessions, by id, with their fencing tokens.
        self.local: dict[str, Session] = {}
        self._tokens: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        #: The state last written for each session, and its marks.
        self._states: dict[str, str] = {}
        self._marks: dict[str, tuple[object, ...]] = {}
        #: Streams of other workers' sessions read here, by Redis key.
        self.tails: dict[str, RemoteStream] = {}
        self._by_writer: dict[str, RemoteStream] = {}
        #: Sessions being taken over here, set once rebuilt (or not taken).
        self._adopting: dict[str, trio.Event] = {}
        self._outgoing: list[_Item] = []
        #: Whether the publisher runs: what a POST's operation waits for.
        self._publishing = False
        self._work = trio.lowlevel.ParkingLot()
        #: Whether a round is on its way, and who waits for it (see flush).
        self._sending = False
        self._rounds = trio.lowlevel.ParkingLot()
        self._deliveries_send, self._deliveries = trio.open_memory_channel[dict[str, str]](
            _MAX_DELIVERIES
        )
        #: Set by the app: rebuilds a session taken from a lost worker (its main
        #: stream's events in Redis given) and starts it here.
        self.adopt: Callable[[Taken, list[tuple[str, dict[str, str]]]], Awaitable[None]] | None = (
            None
        )
        #: Set by the app: the calls of other workers' sessions run here.
        self.guests: GuestCalls | None = None

    # -- keys ---------------------------------------------------------------------------

    @property
    def ttl_ms(self) -> int:
        """How long a request's stream is kept after its last event, in milliseconds."""
        return self._ttl_ms

    def session_key(self, session_id: str) -> str:
        return self.connection.key("session", session_id)

    def stream_key(self, key: str) -> str:
        return self.connection.key("stream", key)

    # -- the owner's side ---------------------------------------------------------------

    def new_stream(self, session: Session, **kwargs: Any) -> OutboundStream:
        """A stream of one of this worker's sessions (``Session``'s stream factory)."""
        return MirroredStream(self, session.id, **kwargs)

    async def register(self, session: Session) -> None:
        """Make a new session known to every worker, before its id is handed out.
        Raises StoreUnavailable while Redis cannot be reached."""
        redis = self.connection
        token = await redis.script(
            _REGISTER,
            [
                self.session_key(session.id),
                redis.worker_key(redis.worker, "sessions"),
                redis.key("skey", session.main.key),
                redis.key("session-tokens"),
            ],
            [
                redis.worker,
                session.owner or "",
                session.kind,
                session.main.key,
                session.id,
            ],
        )
        self._tokens[session.id] = str(token)
        self.local[session.id] = session
        self._wake()

    def forget(self, session: Session) -> None:
        """The session ended here: forget it in Redis (after its last events)."""
        if self.local.pop(session.id, None) is not None:
            self._outgoing.append(("drop", {"sid": session.id, "k": " ".join(session.streams)}))
            self._outgoing.append(("end", {"sid": session.id}))
            self._wake()

    def drop(self, session_id: str, key: str) -> None:
        """A stream its session let go of: Redis lets it go soon too."""
        self._outgoing.append(("drop", {"sid": session_id, "k": key}))
        self._wake()

    def restore(self) -> None:
        """Redis answers again after an outage: make sure it still knows every session
        of this worker (a Redis restarted without its data has forgotten them)."""
        for session_id in self.local:
            self._outgoing.append(("reg", {"sid": session_id}))
        self._wake()

    async def accept(self, session: Session, requests: list[tuple[RequestId, str]]) -> bool:
        """A POST on the owner: its requests are pending in Redis before it is
        answered 202 (see :mod:`._redis_takeover`), in the publisher's next round.
        Awaited in the POST's own task; a cancellation there waits for the round, and
        leaves at most a pending entry its reply removes."""
        token = self._tokens.get(session.id)
        if token is None:
            return False
        operation: list[Any] = ["A", session.id, token, session.main.key]
        for request_id, key in requests:
            operation += [json.dumps(request_id), key]
        kept = await self.submit(operation)
        if kept == -1:
            from ._task_store import StoreUnavailable

            self.restore()
            raise StoreUnavailable("the shared store (Redis) lost the session; retry")
        if kept == 0:
            log.warning("session %s was taken from this worker; ending it here", session.id[:8])
            session.close()
            return False
        return True

    async def submit(self, operation: list[Any]) -> Any:
        if not self._publishing:
            from ._task_store import StoreUnavailable

            # Not started yet, or stopped: no round will come to answer it.
            raise StoreUnavailable("this worker is not connected to Redis yet", 1)
        waited = _Waited(operation)
        self._outgoing.append(waited)
        self._wake()
        return await waited.wait()

    async def take_over(self, session_id: str) -> bool:
        """Take a session whose owner is dead, answer its pending requests with the
        worker-lost error, and rebuild it here; False when its owner lives (or there
        is no such session). Raises StoreUnavailable."""
        # A POST forwarded to the session once it is ours may reach this worker's
        # reader before the session is rebuilt: its delivery waits for this.
        # One takeover of a session at a time here (a POST and the heartbeat may both
        # find its owner lost): the second waits for the first's outcome.
        running = self._adopting.get(session_id)
        if running is not None:
            await running.wait()
            return session_id in self.local
        adopted = self._adopting[session_id] = trio.Event()
        try:
            return await self._take_over(session_id)
        finally:
            del self._adopting[session_id]
            adopted.set()

    async def _take_over(self, session_id: str) -> bool:
        redis = self.connection
        answer = await redis.script(
            TAKE,
            [
                self.session_key(session_id),
                redis.worker_key(redis.worker, "sessions"),
                redis.key("session-tokens"),
            ],
            [redis.prefix, redis.worker, session_id, LOST_MESSAGE, LOST_CODE, self._ttl_ms],
        )
        if int(answer[0]) != 1:
            return False
        taken = parse_taken(session_id, answer)
        log.warning("trio-mcp: took over session %s from a lost worker", session_id[:8])
        entries = await redis.call(
            lambda: redis.client.xrange(self.stream_key(taken.main), "-", "(1-0")
        )
        items = [
            (str(e.identifier), {str(k): str(v) for k, v in e.field_values.items()})
            for e in entries
        ]
        self._tokens[session_id] = taken.token
        if self.adopt is not None:
            await self.adopt(taken, items)
        # Clients that read the session's streams on other workers (or here) while its
        # owner was lost: the session counts them as present, as the old owner did.
        readers = await redis.script(
            _READERS,
            [redis.key("readers", session_id)],
            [redis.prefix],
        )
        for writer_id, key, worker in zip(readers[::3], readers[1::3], readers[2::3], strict=True):
            self.on_control(
                {"op": "s.attach", "sid": session_id, "k": key, "w": writer_id, "from": worker}
            )
        return True

    async def take_over_all(self, worker: str) -> None:
        """The heartbeat found ``worker`` dead: take each of its sessions (whoever
        comes first takes each; the others find a live owner)."""
        redis = self.connection
        key = redis.worker_key(worker, "sessions")
        for session_id in await redis.call(lambda: redis.client.smembers(key)):
            if not await self.take_over(str(session_id)):
                await redis.call(partial(redis.client.srem, key, [str(session_id)]))

    async def _reregister(self, session: Session) -> None:
        redis = self.connection
        known = await redis.call(lambda: redis.client.hget(self.session_key(session.id), "token"))
        if known is None:
            await self.register(session)
            self._versions.pop(session.id, None)

    def queue(self, item: _Outgoing) -> None:
        """An event (or an end, or a reply leaving the pending requests) for the next
        round, after everything queued before it."""
        self._outgoing.append(item)
        self._wake()

    def settled(self, session: Session, request_id: RequestId) -> None:
        """A request was cancelled and gets no reply: it is no longer pending (in
        order with the session's appends, fenced like them)."""
        if session.id in self._tokens:
            self._outgoing.append(
                _Outgoing(session.id, session.main.key, 0, "", "x", json.dumps(request_id))
            )
            self._wake()

    def send_later(self, worker: str, fields: dict[str, str]) -> None:
        self._outgoing.append((worker, fields))
        self._wake()

    def _wake(self) -> None:
        self._work.unpark_all()

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """The publisher and the deliverer, until cancelled (between commands)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._deliver_forwarded)
                if self.guests is not None:
                    nursery.start_soon(self.guests.remind_owners)
                await self._publish()
        finally:
            self._line.close()

    async def _publish(self) -> None:
        from ._task_store import StoreUnavailable

        self._publishing = True
        try:
            while True:
                while not self._outgoing:
                    await self._work.park()
                await self._gather()
                batch, self._outgoing = self._outgoing, []
                self._sending = True
                try:
                    await self._send_batch(batch)
                except StoreUnavailable:
                    # Kept, in order, for the next round: Redis may come back.
                    self._outgoing[:0] = [i for i in batch if not isinstance(i, _Waited)]
                    await trio.sleep(0.5)
                finally:
                    self._sending = False
                    self._rounds.unpark_all()
        finally:
            # Stopped (the worker ends) or failed: no POST waits for a round that will
            # not come.
            self._publishing = False
            self._rounds.unpark_all()
            for item in self._outgoing:
                if isinstance(item, _Waited):
                    item.settle(failure=StoreUnavailable("this worker is stopping", 1))

    async def flush(self) -> None:
        """Wait until everything queued so far has gone out, or the publisher stopped:
        a worker that stops first lets its ended sessions go from Redis, where they
        would otherwise stay (no other worker takes over a worker that said it left).
        Unbounded while Redis is away: the caller bounds it."""
        while self._publishing and (self._outgoing or self._sending):
            await self._rounds.park()

    async def _gather(self) -> None:
        """Let the scheduler run while that adds to the round: the tasks already woken
        (POSTs read in the same pass, handlers that just answered, the sessions the
        reader just handed forwarded POSTs to) add theirs to this round instead of each
        starting one of their own. A crossing call's work spreads over several passes
        (delivered, run, answered), and a round costs the worker far more than a pass.
        The round goes once two passes in a row added nothing (one could miss a task
        that ran before this one in the same pass), or after :data:`_GATHER_PASSES`:
        a steady trickle of work cannot hold it back for longer."""
        quiet = 0
        for _ in range(_GATHER_PASSES):
            queued = len(self._outgoing)
            await trio.lowlevel.checkpoint()
            quiet = 0 if len(self._outgoing) > queued else quiet + 1
            if quiet == 2:
                return

    async def _send_batch(self, batch: list[_Item]) -> None:
        """One round: everything queued, in one script (several if it is large)."""
        from ._task_store import StoreUnavailable

        appends: dict[str, list[_Outgoing]] = {}
        guest_appends: dict[str, list[_Outgoing]] = {}
        waiters: list[_Waited] = []
        others: list[tuple[str, dict[str, str]]] = []
        nudge = False
        for item in batch:
            if isinstance(item, _Outgoing):
                (guest_appends if item.guest else appends).setdefault(item.session_id, []).append(
                    item
                )
            elif isinstance(item, _Waited):
                waiters.append(item)
            elif isinstance(item, tuple):
                others.append(item)
            else:
                nudge = True
        operations: list[list[Any]] = []
        #: What to do with each operation's answer, in the same order.
        outcomes: list[Callable[[Any], Awaitable[None] | None]] = []
        done: list[_Outgoing] = []
        #: (session, stream key) whose events in this round Redis did not take: a
        #: fenced-off owner's, a guest's stream a sweep ended. Never shown to a client.
        refused: set[tuple[str, str]] = set()
        for waiter in waiters:
            operations.append(waiter.operation)
            outcomes.append(waiter.settle)
        for session_id, items in appends.items():
            built = self._append_operation(session_id, items)
            if built is not None:
                operation, marks = built
                operations.append(operation)
                outcomes.append(partial(self._appended, session_id, operation, marks, refused))
                done += items
        if guest_appends:
            assert self.guests is not None
            for session_id, items in guest_appends.items():
                operations.append(self.guests.append_operation(session_id, items))
                outcomes.append(partial(self.guests.appended, session_id, refused))
                done += items
        reregister: list[str] = []
        for worker, fields in others:
            if worker == "end":
                session_id = fields["sid"]
                token = self._tokens.get(session_id)
                if token is not None:
                    owned = self.connection.worker_key(self.connection.worker, "sessions")
                    operations.append(["E", session_id, token, owned])
                    outcomes.append(partial(self._ended, session_id))
            elif worker == "reader":
                operations.append(["R", fields["sid"], fields["w"], fields["k"], fields["from"]])
                outcomes.append(_ignore)
            elif worker == "drop":
                session_id = fields["sid"]
                keys = fields["k"].split(" ")
                operations.append(["D", session_id, self._tokens.get(session_id, ""), *keys])
                outcomes.append(_ignore)
            elif worker == "reg":
                reregister.append(fields["sid"])
            elif worker == "guest-gone":
                operations.append(["GX", fields["sid"]])
                outcomes.append(_ignore)
            elif worker == "guest-cancel":
                operations.append(["GC", fields["sid"], *json.loads(fields["ids"])])
                outcomes.append(_ignore)
            else:
                control = self.connection.worker_key(worker, "control")
                operations.append(["X", control, *(x for pair in fields.items() for x in pair)])
                outcomes.append(_ignore)
        if nudge:
            # Wake this worker's reader, so that its next XREAD names the streams it
            # tails now: by an entry on its own control stream, in the same round as
            # the forwarding that made the stream (never by cancelling the read, which
            # would cost coredis a pooled connection).
            own = self.connection.worker_key(self.connection.worker, "control")
            operations.append(["X", own, "op", "wake"])
            outcomes.append(_ignore)
        try:
            answers = await self._commit(operations)
            # The waiters' operations come first: their POSTs go on before anything
            # below waits for Redis again.
            for outcome, answer in zip(outcomes, answers, strict=True):
                pending = outcome(answer)
                if pending is not None:
                    await pending
        except StoreUnavailable as exc:
            for waiter in waiters:
                waiter.settle(failure=StoreUnavailable(str(exc), exc.retry_after))
            raise
        finally:
            # Whatever happened (a cancellation included), no POST waits for this
            # round any longer.
            for waiter in waiters:
                waiter.settle(failure=StoreUnavailable("the round of writes failed", 1))
        for session_id in reregister:
            session = self.local.get(session_id)
            if session is not None and not session.closed:
                await self._reregister(session)
        for item in done:
            if (item.session_id, item.key) in refused:
                continue
            session = self._session_of(item.session_id, guest=item.guest)
            stream = session.find_stream(item.key) if session is not None else None
            if isinstance(stream, MirroredStream) and item.flag in ("r", "n", "h"):
                stream.made_durable(item.seq)

    def _append_operation(
        self, session_id: str, items: list[_Outgoing]
    ) -> tuple[list[Any], tuple[object, ...] | None] | None:
        """The session's 'P' operation, and the marks of the state it writes."""
        token = self._tokens.get(session_id)
        if token is None:
            return None
        session = self.local.get(session_id)
        version = session.protocol.protocol_version if session is not None else None
        changed = version if version and self._versions.get(session_id) != version else ""
        state_changed, marks = "", None
        if session is not None:
            marks = state_marks(session)
            if marks != self._marks.get(session_id):
                state = snapshot(session)
                state_changed = state if state != self._states.get(session_id) else ""
        main = session.main.key if session is not None else ""
        operation: list[Any] = ["P", session_id, token, main, changed, state_changed]
        for item in items:
            operation += [item.key, item.seq, item.data, item.flag, item.answers]
        return operation, marks

    async def _appended(
        self,
        session_id: str,
        operation: list[Any],
        marks: tuple[object, ...] | None,
        refused: set[tuple[str, str]],
        accepted: Any,
    ) -> None:
        session = self.local.get(session_id)
        changed, state_changed = operation[4], operation[5]
        if accepted == -1 and session is not None:
            # Redis lost the session (restarted empty): make it known again, with what
            # it has negotiated, and send the events once more.
            await self.register(session)
            version = session.protocol.protocol_version or ""
            state, marks = snapshot(session), state_marks(session)
            again = [
                "P",
                session_id,
                self._tokens[session_id],
                operation[3],
                version,
                state,
                *operation[6:],
            ]
            (accepted,) = await self._commit([again])
            changed, state_changed = version, state
        if changed:
            self._versions[session_id] = changed
        if accepted == 1 and marks is not None:
            if state_changed:
                self._states[session_id] = state_changed
            self._marks[session_id] = marks
        if accepted != 1:
            # Not in Redis (fenced off: this worker stalled, another took the session and
            # answers its calls): its clients must not see it.
            refused.update((session_id, str(key)) for key in operation[6::5])
        if accepted == 0 and session is not None:
            log.warning("session %s was taken from this worker; ending it here", session_id[:8])
            session.close()

    def _session_of(self, session_id: str, *, guest: bool) -> Session | None:
        if guest:
            return self.guests.copy_of(session_id) if self.guests is not None else None
        return self.local.get(session_id)

    def _ended(self, session_id: str, answer: Any) -> None:
        self._tokens.pop(session_id, None)
        self._versions.pop(session_id, None)
        self._states.pop(session_id, None)
        self._marks.pop(session_id, None)

    async def _commit(
        self, operations: list[list[Any]], *, line: RedisLine | None = None
    ) -> list[Any]:
        """Run :data:`_COMMIT` over ``operations``; -> their answers, in order. On the
        publisher's own connection unless told another (a test's: only one task at a
        time may use a connection)."""
        redis = self.connection
        answers: list[Any] = []
        head = [
            redis.prefix,
            self._ttl_ms,
            self._replay_events,
            CONTROL_LENGTH,
            DROPPED_MS,
            redis.worker,
        ]
        start = 0
        while start < len(operations):
            chunk = operations[start : start + _ROUND]
            args = list(head)
            for operation in chunk:
                args += [operation[0], len(operation) - 1, *operation[1:]]
            answers += await (line or self._line).script(_COMMIT, [], args)
            start += _ROUND
        return answers

    # -- forwarded messages -------------------------------------------------------------

    def on_control(self, fields: dict[str, str]) -> None:
        """An ``s.*`` command from the control stream (the reader's task: no waiting).

        Those about a session go to the deliverer, in the order they came: a client
        may resume a forwarded POST's stream before the owner has opened it, and its
        ``s.attach`` must find the stream the ``s.deliver`` before it opens."""
        op = fields.get("op")
        if op == "s.touch":
            # A guest ran a call of the session: it is in use, though not here.
            session = self.local.get(fields["sid"])
            if session is not None:
                session.touch()
            return
        if op in ("s.deliver", "s.end", "s.attach", "s.detach", "s.gcancel", "s.gresp", "s.gend"):
            try:
                self._deliveries_send.send_nowait(fields)
            except trio.WouldBlock:
                log.warning("trio-mcp: forwarded messages for session %s dropped", fields["sid"])
        elif op == "s.cancel":
            remote = self._by_writer.get(fields["w"])
            if remote is not None:
                remote.close()

    def _stream_of(self, session_id: str, key: str) -> tuple[Session | None, OutboundStream | None]:
        """The session's stream ``key`` here: of the session, or of a guest's call."""
        for guest in (False, True):
            session = self._session_of(session_id, guest=guest)
            stream = session.find_stream(key) if session is not None else None
            if stream is not None:
                return session, stream
        return self.local.get(session_id), None

    async def _attach(self, fields: dict[str, str]) -> None:
        session, stream = self._stream_of(fields["sid"], fields["k"])
        if session is None or not isinstance(stream, MirroredStream):
            await self._end_orphan(fields["sid"], fields["k"])
            return
        stream.remote_readers += 1
        stream.attach(RemoteWriter(self, fields["from"], fields["w"], fields["k"]), take_over=True)
        stream.made_durable(stream.durable)
        session.touch()

    def _detach(self, fields: dict[str, str]) -> None:
        session, stream = self._stream_of(fields["sid"], fields["k"])
        if session is not None and isinstance(stream, MirroredStream):
            stream.remote_readers = max(0, stream.remote_readers - 1)
            writer = stream._writer
            if isinstance(writer, RemoteWriter) and writer.writer_id == fields["w"]:
                stream.detach(writer)
            session.touch()

    async def _deliver_forwarded(self) -> None:
        async for fields in self._deliveries:
            adopting = self._adopting.get(fields["sid"])
            if adopting is not None:
                await adopting.wait()
            if fields["op"] == "s.attach":
                await self._attach(fields)
                continue
            if fields["op"] == "s.detach":
                self._detach(fields)
                continue
            if fields["op"].startswith("s.g"):
                if self.guests is not None:
                    await self.guests.on_control(fields)
                continue
            session = self.local.get(fields["sid"])
            key = fields.get("k", "")
            if fields["op"] == "s.end":
                if session is not None:
                    session.close()
                continue
            if session is None or session.closed:
                if key:
                    await self._end_orphan(fields["sid"], key)
                continue
            body = parse_body(fields["d"].encode())
            messages = body.messages
            stream = None
            if key:
                ids: list[RequestId] = [m.id for m in messages if isinstance(m, Request)]
                stream = session.open_request_stream(
                    ids, carry_notifications=fields.get("c") == "1", key=key
                )
                assert isinstance(stream, MirroredStream)
                stream.remote_readers += 1
            try:
                await session.deliver(messages, size=int(fields.get("n", "0")), recorded=True)
            except (SessionClosed, SessionOverloaded) as exc:
                log.info("session %s: a forwarded message was refused: %s", session.id[:8], exc)
                if stream is not None:
                    stream.close()

    async def _end_orphan(self, session_id: str, key: str) -> None:
        """End a stream of a session that is not (or no longer) served here, so that
        its reader elsewhere stops: only if the session has ended, or is still this
        worker's (a worker whose session was taken writes nothing)."""
        from ._task_store import StoreUnavailable

        redis = self.connection
        try:
            await redis.script(
                _END_ORPHAN,
                [self.stream_key(key), self.session_key(session_id)],
                [DROPPED_MS, self._tokens.get(session_id, "")],
            )
        except StoreUnavailable:
            pass

    # -- another worker's side ----------------------------------------------------------

    async def forward(
        self,
        session_id: str,
        principal: str | None,
        kind: str,
        messages: list[Message],
        *,
        batch: bool,
        stream_key: str = "",
        carry_notifications: bool = True,
        size: int = 0,
        retry: bool = True,
    ) -> SharedSession:
        """Hand a POST's messages to the session's owner, durably; -> the session as
        Redis knows it. Raises :class:`Forwarded` (404 unknown, 400 a refused batch) or
        StoreUnavailable."""
        payload = [encode_message(m) for m in messages]
        data = json.dumps(payload if batch else payload[0])
        pending = [json.dumps(m.id) for m in messages if isinstance(m, Request)]
        cancels = cancelled_ids(messages)
        if self.guests is not None:
            self.guests.route_replies(session_id, messages)
        answer = await self.submit(
            [
                "F",
                session_id,
                principal or "",
                kind,
                data,
                stream_key,
                "1" if carry_notifications else "0",
                size,
                "1" if batch else "0",
                len(cancels),
                *cancels,
                *pending,
            ]
        )
        status = int(answer[0])
        if status == -1 and retry:
            # Taken here, or by another worker racing for it: either way it has a
            # live owner now, to forward to.
            await self.take_over(session_id)
            return await self.forward(
                session_id,
                principal,
                kind,
                messages,
                batch=batch,
                stream_key=stream_key,
                carry_notifications=carry_notifications,
                size=size,
                retry=False,
            )
        if status == 0:
            raise Forwarded(404, "unknown or ended session")
        if status == -1:
            # Still lost: no worker could take it (yet). Not 404, which would end
            # the client's session for good: it sends again.
            from ._task_store import StoreUnavailable

            raise StoreUnavailable("the server process holding this session was lost; retry", 1)
        if status == 2:
            raise Forwarded(400, f"JSON-RPC batches are not part of MCP {answer[1]}")
        version, owner, kind, main = (str(x) for x in answer[1:5])
        return SharedSession(session_id, owner, kind, main, version)

    async def lookup(
        self, session_id: str, stream_key: str, principal: str | None, *, retry: bool = True
    ) -> Lookup | None:
        redis = self.connection
        answer = await redis.script(
            _LOOKUP, [], [redis.prefix, session_id, stream_key, principal or "", redis.worker]
        )
        if int(answer[0]) == 0:
            return None
        sid, owner, kind, main, version, first, last = (str(x) for x in answer[1:8])
        runner = str(answer[9])
        if int(answer[8]) == 0 and retry:
            # Taken here or by another worker: what the lost owner left (and the
            # errors for what it had not answered) is in Redis, served from there
            # like any other stream.
            await self.take_over(sid)
            return await self.lookup(session_id, stream_key, principal, retry=False)
        return Lookup(
            SharedSession(sid, owner, kind, main, version),
            max(0, _seq(first)) if first else 0,
            max(0, _seq(last)) if last else 0,
            int(answer[8]) == 1,
            runner,
        )

    def tail(
        self,
        session_id: str,
        key: str,
        cursor: int,
        *,
        owner: str | None,
        recorded: bool = True,
    ) -> RemoteStream:
        """Read the stream ``key`` of another worker's session from ``cursor`` on. The
        ``owner`` (the worker writing the stream) is told a writer is attached here;
        None for a forwarded POST's own stream, which its owner counts as read
        elsewhere when it opens it. ``recorded``: kept in Redis for a new owner too
        (not for a guest's call, which no new owner takes)."""
        stream = RemoteStream(
            key,
            session_id,
            cursor,
            self._replay_events,
            self._replay_bytes,
            self.stream_key(key),
        )
        self.tails[stream.redis_key] = stream
        self._by_writer[stream.writer_id] = stream
        if owner is not None:
            attach = {
                "op": "s.attach",
                "sid": session_id,
                "k": key,
                "w": stream.writer_id,
                "from": self.connection.worker,
            }
            self.send_later(owner, attach)
            if recorded:
                # Also kept in Redis: if the owner dies, the next one attaches it (adopt).
                self._outgoing.append(("reader", attach))
        self._outgoing.append("nudge")
        self._wake()
        return stream

    def untail(self, stream: RemoteStream, *, owner: str | None, recorded: bool = True) -> None:
        if self.tails.get(stream.redis_key) is stream:
            del self.tails[stream.redis_key]
        self._by_writer.pop(stream.writer_id, None)
        stream.close()
        if owner is not None:
            detach = {"op": "s.detach", "sid": stream.session_id, "k": stream.key}
            detach["w"] = stream.writer_id
            self.send_later(owner, detach)
            if recorded:
                self._outgoing.append(("reader", {**detach, "k": "", "from": ""}))

    def cursors(self) -> dict[str, str]:
        return {key: stream.cursor for key, stream in self.tails.items()}

    def on_entries(self, key: str, items: list[tuple[str, dict[str, str]]]) -> None:
        stream = self.tails.get(key)
        if stream is None:
            return
        for entry_id, fields in items:
            if stream.closed:
                break
            stream.feed(entry_id, fields)
        if stream.closed and self.tails.get(key) is stream:
            del self.tails[key]

    def end_remote(self, session: SharedSession) -> None:
        """DELETE on another worker: the owner ends the session."""
        self.send_later(session.owner, {"op": "s.end", "sid": session.id})


def _ignore(answer: Any) -> None:
    pass
