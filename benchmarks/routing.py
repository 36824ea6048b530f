"""Which worker each connection of an echo run goes to, when a system has several.

A session's *home* is the worker its stream is opened on (``GET /sse``; on Streamable
HTTP, the worker that answers ``initialize``, which then owns the session); its POSTs
go over one keep-alive connection to a worker of their own. With one worker both are
that worker. With several (issue 14's two workers on one Redis):

- ``spread``: as a round-robin balancer spreads connections. Session ``i`` has its
  home on worker ``i mod k`` and its POSTs on worker ``(i div k) mod k``, so every
  pairing of home and POST worker is equally common: with two workers, half the
  sessions POST to the worker that holds their stream and half to the other.
- ``owner``: every POST goes to the session's home (no POST crosses workers).
- ``cross``: every POST goes to the next worker (every POST crosses).
"""

from __future__ import annotations

from typing import Final

#: The routings, and how the report names them.
ROUTINGS: Final = {
    "one": "one worker",
    "spread": "spread (round-robin)",
    "owner": "to the owner",
    "cross": "to the other worker",
}
#: The several workers' routings at load, in the order they run.
AT_LOAD: Final = ("owner", "cross", "spread")


def route(index: int, workers: int, routing: str) -> tuple[int, int]:
    """Session ``index``'s home worker and POST worker, as indices into the workers."""
    if routing not in ROUTINGS:
        raise ValueError(f"unknown routing {routing!r}")
    if workers == 1 or routing == "one":
        return 0, 0
    if routing == "spread":
        return index % workers, (index // workers) % workers
    home = index % workers
    return home, home if routing == "owner" else (home + 1) % workers


def echo_levels(
    workers: int, concurrency: list[int], routings: tuple[str, ...] = AT_LOAD
) -> list[tuple[str, int]]:
    """The echo runs of one system, as (routing, sessions), in the order they run: one
    per concurrency with one worker; with several, the crossing cost first (one
    session posting to its owner, then to the other worker), then each concurrency
    above one with every POST to the owner, every POST to the other worker, and spread
    as a balancer would (one session spread is the owner run again). The first two at
    load split the spread's figure: what two workers cost with no POST crossing, and
    what a crossing costs when calls batch.

    ``routings`` keeps only those of the several workers' levels (``--routings``): the
    crossing cost at one session runs with both owner and cross. Fewer levels make
    each round shorter, so that many short rounds can pair the runs of one minute."""
    if workers == 1:
        return [("one", sessions) for sessions in concurrency]
    unknown = set(routings) - set(AT_LOAD)
    if unknown:
        raise ValueError(f"unknown routings {sorted(unknown)!r}")
    crossing = [("owner", 1), ("cross", 1)] if {"owner", "cross"} <= set(routings) else []
    return crossing + [
        (routing, sessions)
        for sessions in concurrency
        if sessions > 1
        for routing in AT_LOAD
        if routing in routings
    ]
