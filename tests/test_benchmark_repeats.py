"""Echo levels measured several times (``--echo-runs``) fold into their median run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The harness is not installed with the package: find it in the checkout (as
# test_benchmark_report.py does).
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.repeats import median_runs, paired_ratios


def run(
    cps: float, *, system: str = "s", routing: str | None = None, **more: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "system": system,
        "transport": "sse",
        "sessions": 64,
        "calls_per_cpu_second": cps,
        "latency": {"p50": cps / 1e6},
    }
    if routing is not None:
        row["routing"] = routing
    return row | more


def test_a_level_run_several_times_keeps_its_median_run_whole() -> None:
    (folded,) = median_runs([run(1_900.0), run(1_500.0), run(2_100.0)])
    assert folded["calls_per_cpu_second"] == 1_900.0
    assert folded["latency"] == {"p50": 1_900.0 / 1e6}  # the same run's, not a mix
    assert folded["runs_cps"] == [1_900.0, 1_500.0, 2_100.0] and folded["failed_runs"] == 0


def test_an_even_count_of_runs_keeps_the_lower_median() -> None:
    (folded,) = median_runs([run(4.0), run(1.0), run(3.0), run(2.0)])
    assert folded["calls_per_cpu_second"] == 2.0


def test_levels_fold_apart_in_the_order_they_first_ran() -> None:
    rows = [
        run(1.0, routing="owner"),
        run(5.0, routing="cross"),
        run(3.0, system="t"),
        run(2.0, routing="owner"),
        run(6.0, routing="cross"),
        run(4.0, system="t"),
    ]
    folded = median_runs(rows)
    assert [(r["system"], r.get("routing")) for r in folded] == [
        ("s", "owner"),
        ("s", "cross"),
        ("t", None),
    ]
    assert [r["calls_per_cpu_second"] for r in folded] == [1.0, 5.0, 3.0]


def test_a_failed_run_is_left_out_of_the_median_and_counted() -> None:
    failed = {"system": "s", "transport": "sse", "sessions": 64, "error": "WorkerDied"}
    (folded,) = median_runs([run(3.0), failed, run(1.0), run(2.0)])
    assert folded["calls_per_cpu_second"] == 2.0
    assert folded["runs_cps"] == [3.0, 1.0, 2.0] and folded["failed_runs"] == 1


def test_a_level_no_run_measured_keeps_its_first_error() -> None:
    first = {"system": "s", "transport": "sse", "sessions": 64, "error": "first"}
    (folded,) = median_runs([first, first | {"error": "second"}])
    assert folded == first


def test_a_level_run_once_is_returned_as_it_ran() -> None:
    once = run(1.0)
    assert median_runs([once]) == [once] and "runs_cps" not in once


def test_paired_ratios_divide_each_rounds_runs() -> None:
    mine = run(2.0, runs_cps=[900.0, 1_000.0, 1_200.0], failed_runs=0)
    theirs = run(2.0, runs_cps=[1_000.0, 1_000.0, 1_000.0], failed_runs=0)
    assert paired_ratios(mine, theirs) == [0.9, 1.0, 1.2]


def test_paired_ratios_need_every_round_measured_on_both_sides() -> None:
    whole = run(1.0, runs_cps=[1.0, 2.0, 3.0], failed_runs=0)
    assert paired_ratios(whole, run(1.0, runs_cps=[1.0, 2.0], failed_runs=1)) is None
    assert paired_ratios(whole, run(1.0)) is None
    assert paired_ratios(run(1.0, runs_cps=[1.0], failed_runs=0), run(1.0, runs_cps=[1.0])) is None
