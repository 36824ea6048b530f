"""Input a request needs from the client: one way to ask, whatever the wire.

A tool (or prompt, or resource reader) asks with ``await ctx.elicit(...)``,
``ctx.sample(...)`` or ``ctx.list_roots()``. On a session that is a server-to-client
request, answered while the handler waits. On the stateless wire (MCP 2026-07-28) no
such request may be sent: the ask raises :class:`InputRequired`, the request ends with
an ``input_required`` result carrying the question under a key, and the client's retry
brings the answer in ``inputResponses``; the handler then runs again from the top, and
this time the same ask, under the same key, returns the answer at once. Answers from
earlier rounds travel in the sealed ``requestState``, so any server instance can serve
any round. Keys are given by the author or numbered in the order the handler asks, so
a handler that asks the same questions in the same order gets the same keys each run.

An author who wants the rounds in hand raises (or returns) :class:`InputRequired` with
the requests and a state of their own, and reads ``ctx.input_responses`` and
``ctx.request_state`` on the retry; on a session the same handler still works, since
the server then asks the client itself and runs the handler again with the answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, JSON, JSONRPCError

#: Method -> the capability a client must declare to be asked it.
CAPABILITY_OF = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


class InputRequired(JSONRPCError):
    """The request cannot finish without the client's input: end this round with an
    ``input_required`` result.

    ``requests`` maps keys the author chooses to ``{"method": ..., "params": ...}``
    (``elicitation/create``, ``sampling/createMessage`` or ``roots/list``); ``state``
    is any JSON value to have back as ``ctx.request_state`` on the retry (sealed:
    the client can neither read nor change it). At least one of them must be given.
    """

    def __init__(self, requests: Mapping[str, JSON] | None = None, *, state: Any = None) -> None:
        if not requests and state is None:
            raise ValueError("InputRequired needs requests, a state, or both")
        for key, request in (requests or {}).items():
            if not isinstance(request, dict) or request.get("method") not in CAPABILITY_OF:
                raise ValueError(
                    f"input request {key!r} must be {{'method': ..., 'params': ...}} with a "
                    f"method among {', '.join(CAPABILITY_OF)}"
                )
        # Seen as a JSON-RPC error only where no wire can carry it (a method that may
        # not ask for input): then it is the server's mistake, and says so.
        super().__init__(INTERNAL_ERROR, "the request asked for input where none can be asked")
        self.requests: dict[str, JSON] = dict(requests or {})
        self.state = state


def check_answer(key: str, method: str, answer: Any) -> JSON:
    """The client's answer to the request under ``key``, or -32602 if it is not the
    kind of result that request has."""
    if isinstance(answer, dict):
        if method == "elicitation/create" and answer.get("action") in (
            "accept",
            "decline",
            "cancel",
        ):
            content = answer.get("content")
            if content is None or isinstance(content, dict):
                return answer
        elif method == "sampling/createMessage" and isinstance(answer.get("content"), dict | list):
            return answer
        elif method == "roots/list" and isinstance(answer.get("roots"), list):
            return answer
    kind = {
        "elicitation/create": "an ElicitResult",
        "sampling/createMessage": "a CreateMessageResult",
        "roots/list": "a ListRootsResult",
    }[method]
    raise JSONRPCError(
        INVALID_PARAMS, f"inputResponses[{key!r}] is not {kind}", {"inputResponse": key}
    )


class Answers:
    """The answers a handler's asks draw on in one round, and how its keys are made.

    ``given`` holds every answer so far (earlier rounds' from the sealed state, this
    round's from ``inputResponses``); an answer is checked against the request only
    when the handler asks it, so extra keys a client sends are ignored. Only *trusted*
    answers (those of keys the server asked, or the handler looked up) travel on into
    the next round's sealed state: what the client sent unasked is never sealed.
    """

    __slots__ = ("_counts", "_trusted", "given")

    def __init__(self, given: Mapping[str, Any], *, trusted: Iterable[str] = ()) -> None:
        self.given = dict(given)
        self._trusted = set(trusted)
        self._counts: dict[str, int] = {}

    def kept(self) -> dict[str, Any]:
        """The answers that go on into the next round."""
        return {key: value for key, value in self.given.items() if key in self._trusted}

    def key_for(self, method: str, key: str | None) -> str:
        if key is not None:
            return key
        kind = CAPABILITY_OF[method]
        self._counts[kind] = count = self._counts.get(kind, 0) + 1
        return f"{kind}-{count}"

    def lookup(self, method: str, params: JSON | None, key: str) -> JSON:
        """The answer under ``key``, or :class:`InputRequired` asking for it."""
        if key in self.given:
            answer = check_answer(key, method, self.given[key])
            self._trusted.add(key)
            return answer
        request: JSON = {"method": method}
        if params is not None:
            request["params"] = params
        raise InputRequired({key: request})


def merge_input_required(group: BaseExceptionGroup[BaseException]) -> InputRequired | None:
    """One :class:`InputRequired` asking everything that the asks in ``group`` (made at
    once, from a nursery's tasks) asked, or None if anything else failed there too."""
    needs: list[InputRequired] = []
    for error in _leaves(group):
        if not isinstance(error, InputRequired):
            return None
        needs.append(error)
    requests: dict[str, JSON] = {}
    for need in needs:
        requests.update(need.requests)
    states = [need.state for need in needs if need.state is not None]
    return InputRequired(requests, state=states[0] if len(states) == 1 else states or None)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error


def lacking_capabilities(requests: Iterable[JSON], declared: JSON) -> JSON:
    """The client capabilities these input requests need and ``declared`` lacks, as
    ``requiredCapabilities`` puts them (elicitation modes included: an empty
    ``elicitation`` object declares form mode alone)."""
    lacking: JSON = {}
    for request in requests:
        method = request["method"]
        capability = CAPABILITY_OF[method]
        has = declared.get(capability)
        if not isinstance(has, dict):
            lacking[capability] = {}
            continue
        if method != "elicitation/create":
            continue
        params = request.get("params")
        mode = params.get("mode", "form") if isinstance(params, dict) else "form"
        modes = has or {"form": {}}
        if mode not in modes:
            lacking.setdefault("elicitation", {})[mode] = {}
    return lacking
