"""Echo levels measured several times (``--echo-runs``), folded into one row each.

On a small shared machine one 10 s window of the same server at the same level moves
by 10 to 15 % from one run to the next, which is as much as some of the ratios the
targets judge. Measured several times, in rounds that alternate the systems' order
(so that a slow stretch of the machine does not fall on one system alone), each
level keeps its *median run*: the whole row of the run whose calls per server
CPU-second is the median, so that its figures (latency, CPU, Redis commands) stay
those of one window. Every run's figure is kept beside it (``runs_cps``), so the
report can show how far they spread.
"""

from __future__ import annotations

import math
from typing import Any


def level_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes one echo level: the same system, transport, sessions and routing."""
    return (row["system"], row["transport"], row.get("sessions"), row.get("routing"))


def _measured(row: dict[str, Any]) -> bool:
    return "error" not in row and not math.isnan(row.get("calls_per_cpu_second", math.nan))


def median_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per level, in the order levels first appear: the median run of those
    measured (the lower one of an even count), with ``runs_cps`` (every measured run's
    calls per CPU-second, in the order they ran) and ``failed_runs``. A level no run
    measured keeps its first run's row (its error). A level measured once is returned
    as it is."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(level_key(row), []).append(row)
    folded = []
    for runs in groups.values():
        if len(runs) == 1:
            folded.append(runs[0])
            continue
        measured = [row for row in runs if _measured(row)]
        if not measured:
            folded.append(runs[0])
            continue
        ranked = sorted(measured, key=lambda row: row["calls_per_cpu_second"])
        median = dict(ranked[(len(ranked) - 1) // 2])
        median["runs_cps"] = [row["calls_per_cpu_second"] for row in measured]
        median["failed_runs"] = len(runs) - len(measured)
        folded.append(median)
    return folded


def paired_ratios(mine: dict[str, Any], theirs: dict[str, Any]) -> list[float] | None:
    """Each round's ratio of two levels' calls per server CPU-second, when both were
    measured in every round (``--echo-runs`` above one, no run failed); else None.

    A round runs every system within minutes, so its ratio cancels most of the
    machine's slower drift that a ratio of two medians keeps."""
    ours, others = mine.get("runs_cps"), theirs.get("runs_cps")
    if not ours or not others or len(ours) != len(others) or len(ours) < 2:
        return None
    if mine.get("failed_runs") or theirs.get("failed_runs"):
        return None
    return [a / b for a, b in zip(ours, others, strict=True)]
