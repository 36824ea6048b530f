"""Which echo levels a system with several workers runs, and where each session goes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The harness is not installed with the package: find it in the checkout (as
# test_benchmark_report.py does).
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.routing import echo_levels, route


def test_one_worker_runs_each_concurrency_once() -> None:
    assert echo_levels(1, [1, 64]) == [("one", 1), ("one", 64)]


def test_two_workers_run_the_crossing_cost_then_every_routing_at_load() -> None:
    assert echo_levels(2, [1, 64]) == [
        ("owner", 1),
        ("cross", 1),
        ("owner", 64),
        ("cross", 64),
        ("spread", 64),
    ]


def test_routings_keep_only_the_levels_asked_for() -> None:
    assert echo_levels(2, [1, 64], ("spread",)) == [("spread", 64)]
    assert echo_levels(2, [64], ("cross", "owner")) == [
        ("owner", 1),
        ("cross", 1),
        ("owner", 64),
        ("cross", 64),
    ]


def test_an_unknown_routing_is_refused() -> None:
    with pytest.raises(ValueError, match="sideways"):
        echo_levels(2, [64], ("sideways",))


def test_spread_pairs_every_home_with_every_post_worker_equally() -> None:
    pairs = [route(index, 2, "spread") for index in range(8)]
    assert sorted(pairs) == sorted([(0, 0), (1, 0), (0, 1), (1, 1)] * 2)
