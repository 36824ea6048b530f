"""The pacer: work that arrives at once, done a group at a time between run-loop rounds."""

from __future__ import annotations

import trio

from trio_mcp._pacing import GROUP, Pacer


async def run_until_idle(pacer: Pacer[int], acted: list[int]) -> list[int]:
    """Go round the run loop until the pacer is done; how many it had acted on after
    each round."""
    seen = []
    while pacer or len(seen) < 2:
        await trio.lowlevel.checkpoint()
        seen.append(len(acted))
    return seen


async def test_a_pacer_acts_on_every_key_in_order_a_group_per_round_at_most() -> None:
    acted: list[int] = []
    pacer: Pacer[int] = Pacer(acted.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pacer.run)
        for key in range(5 * GROUP + 3):
            pacer.add(key)
        seen = await run_until_idle(pacer, acted)
        nursery.cancel_scope.cancel()
    assert acted == list(range(5 * GROUP + 3))
    steps = [after - before for before, after in zip([0, *seen], seen, strict=False)]
    assert max(steps) == GROUP  # never more at once: other tasks ran in between
    assert steps.count(0) >= 5  # rounds of the run loop between the groups


async def test_a_key_discarded_before_its_turn_is_not_acted_on_and_one_added_twice_once() -> None:
    acted: list[int] = []
    pacer: Pacer[int] = Pacer(acted.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pacer.run)
        for key in range(3 * GROUP):
            pacer.add(key)
        pacer.add(0)
        pacer.discard(3 * GROUP - 1)
        await run_until_idle(pacer, acted)
        nursery.cancel_scope.cancel()
    assert acted == list(range(3 * GROUP - 1))
