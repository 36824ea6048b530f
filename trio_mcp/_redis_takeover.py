"""Taking over the sessions of a lost worker (``Settings.redis_url``).

A session's owner may die (``kill -9``, a crashed host) with requests accepted and
unanswered. Its clients must get, for every request answered 202, exactly one reply:
the real one if it reached Redis, else an error saying the worker was lost. So:

* **Pending requests are kept in Redis.** ``P:pending:{session}`` (a hash: the
  request id as JSON -> the key of the stream its reply goes to) is written before the
  POST is answered 202 (in the next round of the owner's or the forwarding worker's
  publisher), and a request leaves it in the same fenced step that appends its reply.
* **The session's state is kept in its hash** (:func:`snapshot`, ``state``): version,
  the client's capabilities and info, log level, resource subscriptions. It is written
  with the events that follow each change (a change is always answered by a reply).
* **A takeover is one script** (:data:`TAKE`): the old owner's heartbeat has expired,
  so the session gets a new owner and a new fencing token (the old owner, if it was
  only paused, can append nothing more), every pending request gets the worker-lost
  error appended to its stream, and the request streams end. Whoever runs it first
  wins; the others see a live owner and forward to it as usual.

The new owner then rebuilds the session (:func:`restore`) and goes on serving it; its
main stream continues the numbering of the one in Redis, so event ids stay valid.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._protocol import Phase

if TYPE_CHECKING:
    from ._session import Session

#: The JSON-RPC error a request gets when its worker died before answering it.
LOST_CODE: Final = -32603
LOST_MESSAGE: Final = "the worker serving this request was lost; the request may not have completed"

# Lua, for the scripts that answer a lost worker's calls: append the worker-lost error
# for request ``id`` (JSON) to the stream ``skey``, after its last event.
APPEND_LOST = """
local function append_lost(skey, id, code, message)
  local last = redis.call('XREVRANGE', skey, '(1-0', '-', 'COUNT', 1)
  local seq = 1
  if last[1] then seq = tonumber(string.match(last[1][1], '-(%d+)$')) + 1 end
  local data = '{"jsonrpc":"2.0","id":' .. id .. ',"error":{"code":' .. code
               .. ',"message":"' .. message .. '"}}'
  redis.call('XADD', skey, '0-' .. seq, 'd', data, 'r', 'r')
end
"""

# Take a session whose owner is dead. KEYS: session hash, the new owner's sessions set,
# the token counter. ARGV: prefix, new owner, session id, error message, error code,
# ttl ms of a request stream (the new owner never learns of those: they expire).
# -> {0} no such session; {2} its owner lives (or it is ours already);
#    {1, token, kind, principal, main key, state JSON}.
TAKE = (
    APPEND_LOST
    + """
local s = redis.call('HMGET', KEYS[1], 'owner', 'kind', 'principal', 'main', 'state')
if not s[1] then return {0} end
if s[1] == ARGV[2] or redis.call('EXISTS', ARGV[1] .. ':worker:' .. s[1] .. ':alive') == 1 then
  return {2}
end
local token = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'token', token)
redis.call('SREM', ARGV[1] .. ':worker:' .. s[1] .. ':sessions', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[3])
local pkey = ARGV[1] .. ':pending:' .. ARGV[3]
local pending = redis.call('HGETALL', pkey)
local ended = {}
-- The main stream lives as long as the session (an owner before this rule set expiry).
redis.call('PERSIST', ARGV[1] .. ':stream:' .. s[4])
redis.call('SET', ARGV[1] .. ':skey:' .. s[4], ARGV[3])
for i = 1, #pending, 2 do
  local skey = ARGV[1] .. ':stream:' .. pending[i + 1]
  -- A stream that has ended takes nothing more: the main stream does instead.
  if redis.call('XLEN', skey) > 0 and #redis.call('XRANGE', skey, '1-0', '1-0') > 0 then
    skey = ARGV[1] .. ':stream:' .. s[4]
  end
  append_lost(skey, pending[i], ARGV[5], ARGV[4])
  if pending[i + 1] ~= s[4] then ended[skey] = pending[i + 1] end
end
for skey, key in pairs(ended) do
  redis.pcall('XADD', skey, '1-0', 'e', '1')
  redis.call('PEXPIRE', skey, ARGV[6])
  redis.call('SET', ARGV[1] .. ':skey:' .. key, ARGV[3], 'PX', ARGV[6])
end
redis.call('DEL', pkey)
return {1, token, s[2], s[3] or '', s[4], s[5] or ''}
"""
)


@attrs.frozen
class Taken:
    """A session this worker has just taken over, as Redis knew it."""

    id: str
    token: str
    kind: str
    principal: str | None
    main: str
    state: dict[str, Any]


def snapshot(session: Session) -> str:
    """What a new owner needs to go on serving the session, as JSON."""
    protocol = session.protocol
    return json.dumps(
        {
            "v": protocol.protocol_version,
            "caps": protocol.client_capabilities,
            "info": protocol.client_info,
            "server": protocol.server_capabilities,
            "level": session.log_level,
            "subs": sorted(session.subscriptions),
        },
        separators=(",", ":"),
    )


def state_marks(session: Session) -> tuple[object, ...]:
    """What :func:`snapshot` reads, cheaply: equal marks, equal snapshot. Negotiated
    mappings are replaced, never changed in place, so their identity stands for them;
    computing the snapshot itself for every round of appends cost 2 % of a worker."""
    protocol = session.protocol
    return (
        protocol.protocol_version,
        id(protocol.client_capabilities),
        id(protocol.client_info),
        id(protocol.server_capabilities),
        session.log_level,
        frozenset(session.subscriptions),
    )


def restore(session: Session, state: dict[str, Any]) -> None:
    """Give a rebuilt session the state its lost owner had kept in Redis.

    A session whose version was negotiated is taken as ready: its client sends
    ``initialized`` right after the reply to ``initialize``, and requests before it
    are only a few milliseconds' worth of a race the old owner could have lost too."""
    protocol = session.protocol
    version = state.get("v")
    if isinstance(version, str):
        protocol.protocol_version = version
        protocol.client_capabilities = state.get("caps") or {}
        protocol.client_info = state.get("info") or {}
        protocol.server_capabilities = state.get("server") or {}
        protocol.phase = Phase.READY
    level = state.get("level")
    if isinstance(level, str):
        session.set_log_level(level)
    subs = state.get("subs")
    if isinstance(subs, list):
        session.subscriptions.update(str(uri) for uri in subs)


def parse_state(state: str) -> dict[str, Any]:
    """A session's ``state`` field as :func:`snapshot` wrote it; empty if none (or not
    one: :func:`restore` then leaves the session as it is)."""
    try:
        parsed = json.loads(state) if state else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def parse_taken(session_id: str, answer: list[Any]) -> Taken:
    token, kind, principal, main, state = (str(x) for x in answer[1:6])
    return Taken(session_id, token, kind, principal or None, main, parse_state(state))
