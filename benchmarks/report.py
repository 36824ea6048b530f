"""The report: the machine, one table per scenario, and the targets as ratios.

Every figure is computed from this run's measurements; the targets are the issue's,
compared against the floors and the SDK as measured in the same run on the same machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .machine import format_machine

#: The targets (see benchmarks/README.md): bounds on trio-mcp's figures.
CAPACITY_TARGET = 19_000
RSS_VS_FLOOR = 1.4
RSS_VS_SDK = 1 / 3
HEARTBEAT_CPU_PERCENT = 5.0
HEARTBEAT_TARGET_N = 10_000
HEARTBEAT_TARGET_INTERVAL = 15.0
THROUGHPUT_SESSIONS = 64
THROUGHPUT_VS_FLOOR = 0.85
P99_VS_SDK = 0.5


@dataclass
class Target:
    name: str
    measured: str
    bound: str
    ratio: float
    met: bool | None  # None: not measured in this run, or informational only

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "bound": self.bound,
            "ratio": self.ratio,
            "met": self.met,
        }


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(header))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(lines)


def idle_table(idle: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "host",
        "transport",
        "N",
        "established",
        "failed",
        "estab. s",
        "RSS/session KB",
        "idle CPU s/min",
        "CPU % core",
        "GC % core",
        "full GCs",
        "beat p50 s",
        "beat max s",
        "server-closed",
    ]
    rows = []
    for r in idle:
        if "error" in r and "established" not in r:
            rows.append(
                [r["system"], _host(r), "/" + r["transport"], f"{r['n']:,}", r["error"][:60]]
            )
            rows[-1] += [""] * (len(header) - len(rows[-1]))
            continue
        beat = r["heartbeat_interval"]
        rows.append(
            [
                r["system"],
                _host(r),
                "/" + r["transport"],
                f"{r['n']:,}",
                f"{r['established']:,}",
                f"{r['failed']:,}",
                _fmt(r["establish_seconds"]),
                _fmt(r["rss_per_session"] / 1024),
                _fmt(r["cpu_seconds_per_minute"], 2),
                _fmt(r["cpu_percent"], 2),
                *_collector(r, r["idle_window"]),
                _fmt(beat["p50"], 2),
                _fmt(beat["max"], 2),
                f"{r['closed_by_server']:,}",
            ]
        )
    return _table(header, rows)


def _host(r: dict[str, Any]) -> str:
    # "?" for results saved before the host was recorded (--json files of older runs).
    return str(r.get("host", "?"))


def _collector(r: dict[str, Any], window: float) -> list[str]:
    """The collector's share of a core over the window, and its full passes: n/a for a
    server whose runtime is not CPython (see servers.System.gc_hooks)."""
    if r.get("gc_measured") is False:
        return ["n/a", "n/a"]
    stats = r.get("gc")
    if not stats:
        return ["?", "?"]
    return [_fmt(sum(stats["seconds"]) / window * 100, 2), f"{stats['collections'][2]:,}"]


def latency_table(latency: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "host",
        "transport",
        "sessions",
        "calls/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "server CPU %",
        "GC % core",
        "full GCs",
        "load CPU %",
    ]
    rows = []
    for r in latency:
        if "calls_per_s" not in r:
            rows.append(
                [
                    r["system"],
                    _host(r),
                    "/" + r["transport"],
                    str(r.get("sessions", "")),
                    r["error"],
                ]
            )
            rows[-1] += [""] * (len(header) - len(rows[-1]))
            continue
        lat = r["latency"]
        rows.append(
            [
                r["system"],
                _host(r),
                "/" + r["transport"],
                str(r["sessions"]),
                _fmt(r["calls_per_s"], 0),
                _fmt(lat["p50"] * 1000, 2),
                _fmt(lat["p90"] * 1000, 2),
                _fmt(lat["p99"] * 1000, 2),
                str(sum(r["errors"].values())),
                _fmt(r["server_cpu_percent"], 0),
                *_collector(r, r["window"]),
                _fmt(r["load_cpu_percent"], 0),
            ]
        )
    return _table(header, rows)


def _idle(idle: list[dict[str, Any]], system: str, transport: str) -> dict[int, dict[str, Any]]:
    return {
        r["n"]: r
        for r in idle
        if r["system"] == system and r["transport"] == transport and "established" in r
    }


def _calls(latency: list[dict[str, Any]], system: str, transport: str) -> dict[str, Any] | None:
    for r in latency:
        if (
            r["system"] == system
            and r["transport"] == transport
            and r.get("sessions") == THROUGHPUT_SESSIONS
            and "calls_per_s" in r
        ):
            return r
    return None


def _full(r: dict[str, Any]) -> bool:
    return bool(r["established"] == r["n"] and r["failed"] == 0)


def targets(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> list[Target]:
    found: list[Target] = []
    ours = _idle(idle, "trio-mcp", "sse")

    # Capacity: the largest N measured, against 19,000 sessions held.
    if ours:
        top = ours[max(ours)]
        held = top["established"] - top["closed_by_server"]
        found.append(
            Target(
                f"idle sessions held by one process (N={top['n']:,}, /sse)",
                f"{held:,}",
                f">= {CAPACITY_TARGET:,}",
                held / CAPACITY_TARGET,
                held >= CAPACITY_TARGET,
            )
        )

    # Memory: at the largest N both held in full.
    for other, bound, text in (
        ("floor-hypercorn", RSS_VS_FLOOR, f"<= {RSS_VS_FLOOR:.2f}x floor"),
        ("sdk", RSS_VS_SDK, "<= 0.33x SDK"),
    ):
        theirs = _idle(idle, other, "sse")
        common = [n for n in ours if n in theirs and _full(ours[n]) and _full(theirs[n])]
        if common:
            n = max(common)
            ratio = ours[n]["rss_per_session"] / theirs[n]["rss_per_session"]
            found.append(
                Target(
                    f"RSS per idle session vs {other} (N={n:,}, /sse)",
                    f"{ours[n]['rss_per_session'] / 1024:.1f} KB vs "
                    f"{theirs[n]['rss_per_session'] / 1024:.1f} KB",
                    text,
                    ratio,
                    ratio <= bound,
                )
            )

    # Heartbeat CPU: at the N nearest 10,000, only meaningful at a 15 s interval.
    if ours:
        n = min(ours, key=lambda size: abs(size - HEARTBEAT_TARGET_N))
        r = ours[n]
        comparable = r["heartbeat"] == HEARTBEAT_TARGET_INTERVAL and n == HEARTBEAT_TARGET_N
        found.append(
            Target(
                f"idle CPU with {n:,} sessions, heartbeat {r['heartbeat']:g} s (/sse)",
                f"{r['cpu_percent']:.2f} % of a core",
                f"<= {HEARTBEAT_CPU_PERCENT:g} % (10,000 at 15 s)",
                r["cpu_percent"] / HEARTBEAT_CPU_PERCENT,
                r["cpu_percent"] <= HEARTBEAT_CPU_PERCENT if comparable else None,
            )
        )

    # Throughput and tail latency at 64 sessions, /sse against both peers.
    mine = _calls(latency, "trio-mcp", "sse")
    floor = _calls(latency, "floor-hypercorn", "sse")
    sdk = _calls(latency, "sdk", "sse")
    if mine and floor:
        ratio = mine["calls_per_s"] / floor["calls_per_s"]
        found.append(
            Target(
                "calls/s at 64 sessions vs floor-hypercorn (/sse)",
                f"{mine['calls_per_s']:,.0f} vs {floor['calls_per_s']:,.0f}",
                f">= {THROUGHPUT_VS_FLOOR:.2f}x floor",
                ratio,
                ratio >= THROUGHPUT_VS_FLOOR,
            )
        )
    if mine and sdk:
        ratio = mine["latency"]["p99"] / sdk["latency"]["p99"]
        found.append(
            Target(
                "p99 at 64 sessions vs sdk (/sse)",
                f"{mine['latency']['p99'] * 1000:.1f} ms vs {sdk['latency']['p99'] * 1000:.1f} ms",
                f"<= {P99_VS_SDK:.2f}x SDK",
                ratio,
                ratio <= P99_VS_SDK,
            )
        )
        found.append(
            Target(
                "calls/s at 64 sessions vs sdk (/sse)",
                f"{mine['calls_per_s']:,.0f} vs {sdk['calls_per_s']:,.0f}",
                "(about 1.45x, for information)",
                mine["calls_per_s"] / sdk["calls_per_s"],
                None,
            )
        )
    mine_mcp, sdk_mcp = _calls(latency, "trio-mcp", "mcp"), _calls(latency, "sdk", "mcp")
    if mine_mcp and sdk_mcp:
        found.append(
            Target(
                "calls/s at 64 sessions vs sdk (/mcp)",
                f"{mine_mcp['calls_per_s']:,.0f} vs {sdk_mcp['calls_per_s']:,.0f}",
                "(for information)",
                mine_mcp["calls_per_s"] / sdk_mcp["calls_per_s"],
                None,
            )
        )
        found.append(
            Target(
                "p99 at 64 sessions vs sdk (/mcp)",
                f"{mine_mcp['latency']['p99'] * 1000:.1f} ms vs "
                f"{sdk_mcp['latency']['p99'] * 1000:.1f} ms",
                "(for information)",
                mine_mcp["latency"]["p99"] / sdk_mcp["latency"]["p99"],
                None,
            )
        )
    return found


def targets_table(found: list[Target]) -> str:
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = [[t.name, t.measured, t.bound, f"{t.ratio:.2f}", verdict[t.met]] for t in found]
    return _table(["target (trio-mcp)", "measured", "bound", "ratio", "verdict"], rows)


def render(results: dict[str, Any]) -> str:
    config = results["config"]
    parts = [format_machine(results["machine"]), ""]
    parts.append(f"Command: {results['command']}")
    parts.append(
        f"Server on core {config['server_core']}, load on core {config['load_core']}; "
        f"heartbeat {config['heartbeat']:g} s"
    )
    if results["idle"]:
        parts += [
            "",
            f"Idle sessions (initialized and held; idle window {config['idle_seconds']:g} s"
            + (
                "; one full GC asked of each Python server before it)" if config["collect"] else ")"
            ),
            idle_table(results["idle"]),
        ]
    if results["latency"]:
        parts += [
            "",
            f"Closed-loop tools/call echo ({config['duration']:g} s window after "
            f"{config['warmup']:g} s warm-up)",
            latency_table(results["latency"]),
        ]
    if results["targets"]:
        parts += ["", "Targets", targets_table([Target(**t) for t in results["targets"]])]
    if results.get("notes"):
        parts += ["", *results["notes"]]
    return "\n".join(parts)
