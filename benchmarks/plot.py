"""The idle sweep as a picture: RSS per session and idle CPU against N, one line a system.

matplotlib is imported here only, and only when a plot is asked for, so the benchmark
runs without it (``pip install -e '.[bench]'`` brings it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_idle(idle: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = {}
    for r in idle:
        if r.get("established"):
            series.setdefault(f"{r['system']} /{r['transport']}", []).append(r)
    figure, (memory, cpu) = plt.subplots(1, 2, figsize=(12, 4.8))
    for label, runs in sorted(series.items()):
        runs.sort(key=lambda r: r["n"])
        sizes = [r["established"] for r in runs]
        style = "--" if label.startswith("floor") else "-"
        memory.plot(
            sizes, [r["rss_per_session"] / 1024 for r in runs], style, marker="o", label=label
        )
        cpu.plot(sizes, [r["cpu_percent"] for r in runs], style, marker="o", label=label)
    memory.set(xlabel="idle sessions held", ylabel="server RSS per session (KB)")
    memory.set_title("Memory per idle initialized session")
    cpu.set(xlabel="idle sessions held", ylabel="server CPU while idle (% of one core)")
    cpu.set_title("CPU while idle (heartbeats included)")
    for axes in (memory, cpu):
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
