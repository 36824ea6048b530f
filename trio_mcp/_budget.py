"""What one session holds in memory, in bytes, against its bound: sans-io bookkeeping.

A session's memory is mostly data its client sent or is owed: the requests it has
running (each keeps its parsed params until answered), the replies and notifications
waiting for room on a stream the client does not read, and what each stream's replay log
keeps for a resumption. Counting requests alone bounds none of it: a client that stops
reading while asking for 101 echoes of 4 MB left 100 handlers each holding its request
and its reply, 780 MB for one session. So the session, its streams and its protocol
state share one :class:`ByteBudget`: everything above is charged as it is taken and
given back as it is let go, and a request that arrives while the budget is spent is
refused at once with the overload error (see :mod:`._protocol`).

The figures are the JSON text's length: a request is charged its share of the body that
carried it, a reply or notification its encoding. Python holds parsed params in objects
a few times larger than their text for numbers and small strings (about the same for
long strings), so the bound is of the text, and the process's memory a small multiple of
it.
"""

from __future__ import annotations


class ByteBudget:
    """Bytes a session holds, and the most it may before new requests are refused.

    The bound is checked before a request is taken on, not after, so a session that
    holds less than ``limit`` always admits the next request, however large (the largest
    is ``max_body_bytes``); what it may hold at worst is the bound plus the requests and
    replies of what it had already admitted.
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size

    @property
    def spent(self) -> bool:
        return self.held >= self.limit
