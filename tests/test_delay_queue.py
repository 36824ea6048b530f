"""The shared timer behind heartbeats and stall detection: when it acts, and how much at once."""

from __future__ import annotations

import gc
from itertools import pairwise

import trio
import trio.testing

from trio_mcp._heartbeat import DelayQueue, group_size


async def test_an_entry_is_acted_on_one_delay_after_its_last_touch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    acted: list[tuple[str, float]] = []
    queue = DelayQueue(5.0, lambda key: acted.append((key, trio.current_time())))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        queue.touch("a")
        await trio.sleep(3)
        queue.touch("a")
        queue.touch("b")
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert acted == [("a", 8.0), ("b", 8.0)]


async def test_an_entry_is_acted_on_once_per_touch(autojump_clock: trio.testing.MockClock) -> None:
    acted: list[str] = []
    queue = DelayQueue(1.0, acted.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        queue.touch("a")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert acted == ["a"]


async def test_a_forgotten_entry_is_never_acted_on(autojump_clock: trio.testing.MockClock) -> None:
    acted: list[str] = []
    queue = DelayQueue(1.0, acted.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        queue.touch("a")
        queue.touch("b")
        await trio.sleep(0.5)
        queue.forget("a")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert acted == ["b"]


async def test_entries_due_within_the_slack_are_acted_on_together_late_never_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    acted: list[tuple[str, float]] = []
    queue = DelayQueue(10.0, lambda key: acted.append((key, trio.current_time())), slack=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        queue.touch("a")
        await trio.sleep(0.5)
        queue.touch("b")
        await trio.sleep(1.5)
        queue.touch("c")
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert acted == [("a", 11.0), ("b", 11.0), ("c", 13.0)]


async def test_many_due_entries_are_acted_on_a_group_at_a_time() -> None:
    """Between two groups the run loop goes round, so the writers woken by one group
    send before the next group is woken."""
    acted: list[int] = []
    seen_by_other_tasks: list[int] = []
    queue = DelayQueue(0.01, acted.append)
    group = group_size()

    async def other_task() -> None:
        while True:
            seen_by_other_tasks.append(len(acted))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for key in range(5 * group):
            queue.touch(key)
        nursery.start_soon(queue.run)
        nursery.start_soon(other_task)
        while len(acted) < 5 * group:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert acted == list(range(5 * group))
    steps = [after - before for before, after in pairwise(seen_by_other_tasks)]
    assert max(steps) == group


async def test_an_entry_forgotten_or_touched_while_its_group_waits_is_left_alone() -> None:
    acted: list[int] = []
    queue: DelayQueue[int] = DelayQueue(0.01, lambda key: on_due(key))
    group = group_size()

    def on_due(key: int) -> None:
        acted.append(key)
        if key == 0:  # the first group's action changes two entries of a later group
            queue.forget(group + 1)
            queue.touch(group + 2)

    async with trio.open_nursery() as nursery:
        for key in range(2 * group):
            queue.touch(key)
        nursery.start_soon(queue.run)
        while len(acted) < 2 * group - 1:
            await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    assert group + 1 not in acted
    assert acted[-1] == group + 2  # acted on, but a whole delay after its second touch
    assert acted[:-1] == [key for key in range(2 * group) if key not in (group + 1, group + 2)]


def test_groups_are_small_under_default_collector_thresholds_and_larger_when_tuned() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, saved[1], saved[2])  # CPython's default
        assert group_size() == 8
        gc.set_threshold(10_000, saved[1], saved[2])  # what a serving app sets
        assert group_size() == 64
        gc.set_threshold(1_000_000, saved[1], saved[2])
        assert group_size() == 64  # a group's sends share one pass of the run loop
    finally:
        gc.set_threshold(*saved)


async def test_an_entry_is_acted_on_when_rounding_puts_its_due_time_a_hair_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Touched at 0.1 with a delay of 0.7: due at 0.1 + 0.7, which is a hair under 0.8,
    and at that time, time minus delay is a hair under 0.1."""
    acted: list[float] = []
    queue: DelayQueue[str] = DelayQueue(0.7, lambda key: acted.append(trio.current_time()))
    async with trio.open_nursery() as nursery:
        await trio.sleep(0.1)
        queue.touch("a")
        nursery.start_soon(queue.run)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert acted == [0.1 + 0.7]
