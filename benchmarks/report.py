"""The report: the machine, one table per scenario, and the targets as ratios.

Every figure is computed from this run's measurements; the targets are the issue's,
compared against the floors and the SDK as measured in the same run on the same machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import STATELESS
from .machine import format_machine
from .repeats import paired_ratios
from .routing import AT_LOAD, ROUTINGS
from .servers import HOSTS, HYPERCORN_TRIO, REDIS_TRANSPORTS, SYSTEMS

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

#: Issue 12's targets: trio-mcp as a guest on uvicorn (uvloop, httptools), against
#: itself natively under hypercorn's trio worker and against both SDKs.
NATIVE = "trio-mcp"
GUEST = "trio-mcp@uvicorn"
GUEST_CALLS_VS_NATIVE = 3.0
GUEST_CALLS_VS_TS_SDK = 1.0
GUEST_P99_VS_SDK = 0.5
GUEST_RSS_VS_NATIVE = 1.0
ISSUE_12 = "issue 12: trio-mcp@uvicorn"

#: Issue 13's: MCP 2026-07-28's stateless wire (/mcp-stateless), trio-mcp under each host
#: against the Python SDK's stateless wire, and an idle subscriptions/listen stream
#: against an idle /sse session of the same host. The issue's bounds are on the best
#: host (the most calls/s); the report shows every host's.
STATELESS_CALLS_VS_SDK = 1.5
STATELESS_P99_VS_SDK = 0.5
LISTENER_RSS_VS_SSE = 1.1
TRIO_MCP_HOSTS = tuple(system.name for system in SYSTEMS if system.listens)
ISSUE_13 = "issue 13: the stateless wire"

#: Issue 14's: trio-mcp's hosts with their sessions on Redis, against the same host in
#: memory; two workers on one Redis against one; a POST that crosses workers against
#: one that reaches the stream's owner; idle sessions' memory and Redis traffic.
REDIS_CALLS_VS_MEMORY = 0.6
CROSSING_P50_MS = 1.5
TWO_WORKERS_CALLS_PER_CPU = 0.9
REDIS_RSS_VS_MEMORY = 1.2
#: Redis's idle traffic is reported per minute per this many sessions.
REDIS_IDLE_PER = 10_000
REDIS_BACKED = {system.name: system for system in SYSTEMS if system.redis}
ISSUE_14 = "issue 14: Redis"


@dataclass
class Target:
    name: str
    measured: str
    bound: str
    ratio: float
    met: bool | None  # None: not measured in this run, or informational only
    #: Which set of targets it belongs to: "" for the project's own, else the issue's.
    group: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "bound": self.bound,
            "ratio": self.ratio,
            "met": self.met,
            "group": self.group,
        }


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]], text_last: bool = False) -> str:
    """Columns right-aligned, as figures read best; ``text_last``: the last column is a
    phrase, left-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    last = len(header) - 1 if text_last else -1

    def line(cells: list[str]) -> str:
        aligned = [
            cell.ljust(widths[i]) if i == last else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(aligned).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, rows)])


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


def _runs(config: dict[str, Any]) -> str:
    """What the echo captions add when each level ran several times."""
    runs = config.get("echo_runs", 1)
    if runs == 1:
        return ""
    return (
        f"; each level measured {runs} times in rounds over the systems, its median run "
        "(by calls per server CPU-second) shown"
    )


def _spread(r: dict[str, Any]) -> str:
    """The lowest and highest calls per server CPU-second of a level's runs."""
    runs = r.get("runs_cps")
    if not runs:
        return "-"
    failed = f", {r['failed_runs']} failed" if r.get("failed_runs") else ""
    return f"{min(runs):,.0f}-{max(runs):,.0f}{failed}"


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


def attack_table(attacks: list[dict[str, Any]]) -> str:
    """One row per host and attack: the well-behaved sessions' echo alone and beside it,
    what it cost the server, and what the attack's clients saw."""
    header = [
        "system",
        "host",
        "attack",
        "sessions",
        "alone calls/s",
        "alone p50 ms",
        "alone p99 ms",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p99 ratio",
        "errors",
        "server CPU %",
        "load CPU %",
        "RSS MB before",
        "peak RSS MB",
        "fds left",
        "the attack's clients saw",
    ]
    rows = []
    for r in attacks:
        if "beside" not in r:
            rows.append([r["system"], _host(r), r["attack"], str(r["sessions"]), r["error"]])
            rows[-1] += [""] * (len(header) - len(rows[-1]))
            continue
        alone, beside = r["alone"]["latency"], r["beside"]["latency"]
        rows.append(
            [
                r["system"],
                _host(r),
                r["attack"],
                str(r["sessions"]),
                _fmt(r["alone"]["calls_per_s"], 0),
                _fmt(alone["p50"] * 1000, 2),
                _fmt(alone["p99"] * 1000, 2),
                _fmt(r["beside"]["calls_per_s"], 0),
                _fmt(beside["p50"] * 1000, 2),
                _fmt(beside["p99"] * 1000, 2),
                _fmt(r["p99_ratio"], 2),
                str(sum(r["beside"]["errors"].values())),
                _fmt(r["beside"]["server_cpu_percent"], 0),
                _fmt(r["beside"]["load_cpu_percent"], 0),
                _fmt(r["rss_before"] / 2**20),
                _fmt(r["rss_peak"] / 2**20),
                f"{r['fds_after'] - r['fds_fresh']:,}",
                attack_outcome(r["attack"], r["outcome"]),
            ]
        )
    return _table(header, rows, text_last=True)


#: Issue 15's bound on how long a mass disconnect may stall the sessions that stay.
DEPARTURE_STALL_BOUND = 0.1


def departure_table(attacks: list[dict[str, Any]]) -> str | None:
    """The mass disconnect's rows, one per system, trio-mcp beside the bare floor of its
    host: how many left and over how long (the clients' own pass closing them all), the
    echo loop's p99 and longest call alone and while they left, and the server's CPU
    beyond the calls it served (what the departure cost it). None if no mass disconnect
    ran."""
    header = [
        "system",
        "host",
        "left",
        "over s",
        "alone p99 ms",
        "alone longest ms",
        "p99 ms",
        "longest ms",
        "over 100 ms",
        "errors",
        "departure CPU s",
    ]
    departures = [r for r in attacks if r["attack"] == "mass-disconnect"]
    hosts = list(dict.fromkeys(r["host"] for r in departures))
    rows = []
    for r in sorted(departures, key=lambda r: (hosts.index(r["host"]), not r.get("floor"))):
        if "beside" not in r:
            rows.append([r["system"], _host(r), r["error"]] + [""] * (len(header) - 3))
            continue
        alone, beside = r["alone"]["latency"], r["beside"]["latency"]
        rows.append(
            [
                r["system"],
                _host(r),
                f"{r['outcome']['outcomes'].get('left', 0):,}",
                _fmt(r["outcome"]["seconds"]["max"], 2),
                _fmt(alone["p99"] * 1000, 2),
                _fmt(alone["max"] * 1000, 1),
                _fmt(beside["p99"] * 1000, 2),
                _fmt(beside["max"] * 1000, 1),
                "yes" if beside["max"] > DEPARTURE_STALL_BOUND else "no",
                str(sum(r["beside"]["errors"].values())),
                _fmt(r["excess_cpu_seconds"], 2),
            ]
        )
    return _table(header, rows) if rows else None


def attack_outcome(kind: str, outcome: dict[str, Any]) -> str:
    """What an attack's clients saw, in a phrase: how often the server answered or let
    go and how soon, who it still held when the attack stopped, the clients' failures."""
    answers = ", ".join(f"{name} x{count:,}" for name, count in sorted(outcome["outcomes"].items()))
    seconds = outcome["seconds"]
    parts = []
    if kind in ("stalled-readers", "flooded-session"):
        size = outcome["reply_bytes"] / 2**20
        replies = "1 reply" if outcome["requests"] == 1 else f"{outcome['requests']} replies"
        parts.append(
            f"{outcome['attempts']:,} sessions asked {replies} of {size:g} MiB each; "
            f"let go: {answers or 'none'}"
        )
    elif kind == "connect-burst":
        bursts, done = outcome["bursts"], outcome["bursts_done"]
        parts.append(
            f"{bursts} x {outcome['clients']:,} connects"
            + (f" ({done} ended)" if done != bursts else "")
            + f": {answers or 'none'}, {outcome['retransmitted']:,} retransmitted"
        )
    elif kind == "mass-disconnect":
        parts.append(f"{outcome['established']:,} sessions left at once")
    else:
        parts.append(f"{outcome['attempts']:,} bodies: {answers or 'none'}")
    if seconds["count"] and kind != "mass-disconnect":
        parts.append(f"after p50 {seconds['p50']:.2f} s, max {seconds['max']:.2f} s")
    if outcome["held_at_end"]:
        parts.append(
            f"{outcome['held_at_end']:,} held at the end (longest {outcome['longest_held']:.1f} s)"
        )
    errors = sum(outcome["errors"].values())
    if errors:
        parts.append(f"{errors:,} client errors")
    return "; ".join(parts)


def _idle(idle: list[dict[str, Any]], system: str, transport: str) -> dict[int, dict[str, Any]]:
    return {
        r["n"]: r
        for r in idle
        if r["system"] == system and r["transport"] == transport and "established" in r
    }


def _calls(
    latency: list[dict[str, Any]],
    system: str,
    transport: str,
    sessions: int = THROUGHPUT_SESSIONS,
    routing: str | None = None,
) -> dict[str, Any] | None:
    """A system's echo run at ``sessions`` on ``transport``; with several workers, the
    one whose POSTs went as ``routing`` says (by default spread, as a balancer would)."""
    for r in latency:
        if (
            r["system"] == system
            and r["transport"] == transport
            and r.get("sessions") == sessions
            and r.get("routing", "spread") == (routing or "spread")
            and "calls_per_s" in r
        ):
            return r
    return None


def _full(r: dict[str, Any]) -> bool:
    return bool(r["established"] == r["n"] and r["failed"] == 0)


def _capacity(ours: dict[int, dict[str, Any]], group: str = "") -> list[Target]:
    """Sessions held at the largest N measured, against 19,000."""
    if not ours:
        return []
    top = ours[max(ours)]
    held = top["established"] - top["closed_by_server"]
    return [
        Target(
            f"idle sessions held by one process (N={top['n']:,}, /sse)",
            f"{held:,}",
            f">= {CAPACITY_TARGET:,}",
            held / CAPACITY_TARGET,
            held >= CAPACITY_TARGET,
            group,
        )
    ]


def _memory(
    ours: dict[int, dict[str, Any]],
    theirs: dict[int, dict[str, Any]],
    other: str,
    bound: float,
    text: str,
    group: str = "",
) -> list[Target]:
    """RSS per idle session against another system's, at the largest N both held in full."""
    common = [n for n in ours if n in theirs and _full(ours[n]) and _full(theirs[n])]
    if not common:
        return []
    n = max(common)
    ratio = ours[n]["rss_per_session"] / theirs[n]["rss_per_session"]
    return [
        Target(
            f"RSS per idle session vs {other} (N={n:,}, /sse)",
            f"{ours[n]['rss_per_session'] / 1024:.1f} KB vs "
            f"{theirs[n]['rss_per_session'] / 1024:.1f} KB",
            text,
            ratio,
            ratio <= bound,
            group,
        )
    ]


def _heartbeat_cpu(ours: dict[int, dict[str, Any]], group: str = "") -> list[Target]:
    """Idle CPU at the N nearest 10,000; judged only at N = 10,000 and a 15 s interval."""
    if not ours:
        return []
    n = min(ours, key=lambda size: abs(size - HEARTBEAT_TARGET_N))
    r = ours[n]
    comparable = r["heartbeat"] == HEARTBEAT_TARGET_INTERVAL and n == HEARTBEAT_TARGET_N
    return [
        Target(
            f"idle CPU with {n:,} sessions, heartbeat {r['heartbeat']:g} s (/sse)",
            f"{r['cpu_percent']:.2f} % of a core",
            f"<= {HEARTBEAT_CPU_PERCENT:g} % (10,000 at 15 s)",
            r["cpu_percent"] / HEARTBEAT_CPU_PERCENT,
            r["cpu_percent"] <= HEARTBEAT_CPU_PERCENT if comparable else None,
            group,
        )
    ]


def targets(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> list[Target]:
    """The project's targets for trio-mcp under hypercorn's trio worker, then issue 12's."""
    found: list[Target] = []
    ours = _idle(idle, NATIVE, "sse")
    found += _capacity(ours)
    found += _memory(
        ours,
        _idle(idle, "floor-hypercorn", "sse"),
        "floor-hypercorn",
        RSS_VS_FLOOR,
        f"<= {RSS_VS_FLOOR:.2f}x floor",
    )
    found += _memory(ours, _idle(idle, "sdk", "sse"), "sdk", RSS_VS_SDK, "<= 0.33x SDK")
    found += _heartbeat_cpu(ours)

    # Throughput and tail latency at 64 sessions, /sse against both peers.
    mine = _calls(latency, NATIVE, "sse")
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
        found += _p99(mine, sdk, "sdk", "sse", P99_VS_SDK)
        found.append(
            Target(
                "calls/s at 64 sessions vs sdk (/sse)",
                f"{mine['calls_per_s']:,.0f} vs {sdk['calls_per_s']:,.0f}",
                "(about 1.45x, for information)",
                mine["calls_per_s"] / sdk["calls_per_s"],
                None,
            )
        )
    mine_mcp, sdk_mcp = _calls(latency, NATIVE, "mcp"), _calls(latency, "sdk", "mcp")
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
    return (
        found
        + issue_12_targets(idle, latency)
        + issue_13_targets(idle, latency)
        + issue_14_targets(idle, latency)
    )


def issue_12_targets(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> list[Target]:
    """Issue 12's: trio-mcp as a guest on uvicorn (uvloop, httptools), /sse at 64
    sessions against itself under hypercorn's trio worker and against both SDKs; its
    idle memory against the native host's; its capacity and heartbeat CPU."""
    found: list[Target] = []
    guest = _calls(latency, GUEST, "sse")
    for other, bound in ((NATIVE, GUEST_CALLS_VS_NATIVE), ("ts-sdk", GUEST_CALLS_VS_TS_SDK)):
        theirs = _calls(latency, other, "sse")
        if guest and theirs:
            ratio = guest["calls_per_s"] / theirs["calls_per_s"]
            found.append(
                Target(
                    f"calls/s at 64 sessions vs {other} (/sse)",
                    f"{guest['calls_per_s']:,.0f} vs {theirs['calls_per_s']:,.0f}",
                    f">= {bound:.2f}x {other}",
                    ratio,
                    ratio >= bound,
                    ISSUE_12,
                )
            )
    sdk = _calls(latency, "sdk", "sse")
    if guest and sdk:
        found += _p99(guest, sdk, "sdk", "sse", GUEST_P99_VS_SDK, ISSUE_12)
    ours = _idle(idle, GUEST, "sse")
    found += _memory(
        ours,
        _idle(idle, NATIVE, "sse"),
        NATIVE,
        GUEST_RSS_VS_NATIVE,
        f"<= {GUEST_RSS_VS_NATIVE:.2f}x {NATIVE}",
        ISSUE_12,
    )
    found += _capacity(ours, ISSUE_12)
    found += _heartbeat_cpu(ours, ISSUE_12)
    return found


#: Issue 12's decomposition of a /sse call's server CPU at 64 sessions, host by host:
#: each row adds one layer to the row above it, for the same work (servers/_floor.py).
BREAKDOWN = (
    (
        ("floor-asyncio@uvicorn", "uvicorn and a bare asyncio app"),
        ("floor-trio@uvicorn", "+ trio as a guest: the same app in trio, through the bridge"),
        (GUEST, "+ trio-mcp's features, as a guest"),
    ),
    (
        ("floor-hypercorn", "hypercorn -k trio and the same bare trio app"),
        (NATIVE, "+ trio-mcp's features, natively"),
    ),
)


def _cpu_per_call(r: dict[str, Any]) -> float:
    """Microseconds of the server's CPU per call over the measured window."""
    return float(r["server_cpu_percent"]) / 100 / float(r["calls_per_s"]) * 1e6


def _gc_per_call(r: dict[str, Any]) -> float:
    """Microseconds of it the garbage collector took (0 where not measured)."""
    stats = r.get("gc")
    if not stats or r.get("gc_measured") is False:
        return 0.0
    return float(sum(stats["seconds"])) / float(r["window"]) / float(r["calls_per_s"]) * 1e6


def breakdown_table(latency: list[dict[str, Any]]) -> str | None:
    """Where a /sse echo's server time goes, layer by layer (issue 12): server CPU per
    call of each system in :data:`BREAKDOWN`, the collector's part of it, and what each
    layer adds to the one above it net of the collector (trio-mcp tunes it when it
    starts serving, the bare floors do not: that is a policy, not a layer's cost), then
    the budget per call that 3x trio-mcp's calls/s under hypercorn -k trio leaves.
    None unless the run measured every layer on uvicorn."""
    if not all(_calls(latency, name, "sse") for name, _ in BREAKDOWN[0]):
        return None
    rows = []
    for layers in BREAKDOWN:
        above: float | None = None
        for name, what in layers:
            r = _calls(latency, name, "sse")
            if r is None:
                continue
            cost, collector = _cpu_per_call(r), _gc_per_call(r)
            net = cost - collector
            added = "" if above is None else f"{net - above:+,.1f}"
            rows.append(
                [name, f"{r['calls_per_s']:,.0f}", _fmt(cost), _fmt(collector), added, what]
            )
            above = net
    header = ["system", "calls/s", "CPU us/call", "of it GC", "added (no GC)", "layer"]
    table = _table(header, rows, True)
    native, guest = _calls(latency, NATIVE, "sse"), _calls(latency, GUEST, "sse")
    if native is None or guest is None:
        return table
    budget = _cpu_per_call(native) / GUEST_CALLS_VS_NATIVE
    return (
        f"{table}\n{GUEST_CALLS_VS_NATIVE:g}x {NATIVE}'s calls/s leaves {GUEST} "
        f"{budget:,.1f} us of server CPU per call; it spends {_cpu_per_call(guest):,.1f}"
    )


def issue_13_targets(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> list[Target]:
    """Issue 13's, for trio-mcp under each host: the stateless echo at 64 sessions against
    the Python SDK's stateless echo (calls/s, p99), and RSS per idle listen stream against
    RSS per idle /sse session of the same host, at the largest N both held in full.
    Each target's name starts with the host's system."""
    found: list[Target] = []
    sdk = _calls(latency, "sdk", STATELESS)
    for system in TRIO_MCP_HOSTS:
        mine = _calls(latency, system, STATELESS)
        if mine and sdk:
            ratio = mine["calls_per_s"] / sdk["calls_per_s"]
            found.append(
                Target(
                    f"{system}: calls/s at 64 sessions vs sdk (/{STATELESS})",
                    f"{mine['calls_per_s']:,.0f} vs {sdk['calls_per_s']:,.0f}",
                    f">= {STATELESS_CALLS_VS_SDK:.2f}x sdk",
                    ratio,
                    ratio >= STATELESS_CALLS_VS_SDK,
                    ISSUE_13,
                )
            )
            (p99,) = _p99(mine, sdk, "sdk", STATELESS, STATELESS_P99_VS_SDK, ISSUE_13)
            p99.name = f"{system}: {p99.name}"
            found.append(p99)
    for system in TRIO_MCP_HOSTS:
        listeners, sessions = _idle(idle, system, STATELESS), _idle(idle, system, "sse")
        common = [n for n in listeners if n in sessions]
        common = [n for n in common if _full(listeners[n]) and _full(sessions[n])]
        if not common:
            continue
        n = max(common)
        mine, theirs = listeners[n]["rss_per_session"], sessions[n]["rss_per_session"]
        found.append(
            Target(
                f"{system}: RSS per idle listener vs idle /sse session (N={n:,})",
                f"{mine / 1024:.1f} KB vs {theirs / 1024:.1f} KB",
                f"<= {LISTENER_RSS_VS_SSE:.2f}x /sse",
                mine / theirs,
                mine / theirs <= LISTENER_RSS_VS_SSE,
                ISSUE_13,
            )
        )
    return found


def best_stateless_host(found: list[Target]) -> str | None:
    """The host whose stateless echo made the most calls/s at 64 sessions (the one the
    issue's bounds are on), from issue 13's targets; None if none was measured."""
    calls = [t for t in found if t.group == ISSUE_13 and ": calls/s at 64 sessions" in t.name]
    return max(calls, key=lambda t: t.ratio).name.split(":", 1)[0] if calls else None


def _p99(
    mine: dict[str, Any],
    theirs: dict[str, Any],
    other: str,
    transport: str,
    bound: float,
    group: str = "",
) -> list[Target]:
    ratio = mine["latency"]["p99"] / theirs["latency"]["p99"]
    return [
        Target(
            f"p99 at 64 sessions vs {other} (/{transport})",
            f"{mine['latency']['p99'] * 1000:.1f} ms vs {theirs['latency']['p99'] * 1000:.1f} ms",
            f"<= {bound:.2f}x {other}",
            ratio,
            ratio <= bound,
            group,
        )
    ]


def targets_table(found: list[Target], subject: str = "trio-mcp") -> str:
    verdict = {True: "met", False: "MISSED", None: "-"}
    rows = [[t.name, t.measured, t.bound, _fmt(t.ratio, 2), verdict[t.met]] for t in found]
    return _table([f"target ({subject})", "measured", "bound", "ratio", "verdict"], rows)


def render(results: dict[str, Any]) -> str:
    config = results["config"]
    redis_only = bool(results.get("redis_only"))
    # The generic tables hold the in-memory systems; the Redis section, its own.
    idle = [] if redis_only else [r for r in results["idle"] if not r.get("redis")]
    latency = [] if redis_only else [r for r in results["latency"] if not r.get("redis")]
    parts = [format_machine(results["machine"]), ""]
    parts.append(f"Command: {results['command']}")
    parts.append(
        f"Server on core {config['server_core']}, load on core {config['load_core']}; "
        f"heartbeat {config['heartbeat']:g} s"
    )
    if idle:
        parts += [
            "",
            f"Idle sessions (initialized and held; idle window {config['idle_seconds']:g} s"
            + (
                f"; on /{STATELESS}, one subscriptions/listen stream per client"
                if any(r["transport"] == STATELESS for r in idle)
                else ""
            )
            + (
                "; one full GC asked of each Python server before it)" if config["collect"] else ")"
            ),
            idle_table(idle),
        ]
    if latency:
        parts += [
            "",
            f"Closed-loop tools/call echo ({config['duration']:g} s window after "
            f"{config['warmup']:g} s warm-up{_runs(config)})",
            latency_table(latency),
        ]
    parts += redis_section(results)
    if results.get("attacks"):
        parts += [
            "",
            f"Attacks: {config['attack_sessions']} well-behaved sessions on /sse call echo "
            f"in a closed loop ({config['duration']:g} s window after {config['warmup']:g} s "
            "warm-up), alone, then beside each attack struck as the window opens; trio-mcp "
            f"with stalled_client_timeout {config['stalled_client_timeout']:g} s, "
            f"body_timeout {config['body_timeout']:g} s, "
            f"resume_grace {config['resume_grace']:g} s; the bare floors take the "
            "mass disconnect only",
            attack_table(results["attacks"]),
        ]
        departures = departure_table(results["attacks"])
        if departures:
            parts += [
                "",
                f"Mass disconnect (issue 15: at most {DEPARTURE_STALL_BOUND * 1000:g} ms): the "
                "echo loop's longest call while the idle sessions leave at once; a bare floor "
                "(its host's keep-alive as trio-mcp's, nothing else) is what its host alone "
                "costs; departure CPU is the server's beyond the calls it served, at their "
                "CPU per call alone",
                departures,
            ]
    found = [Target(**t) for t in results["targets"]]
    if redis_only:
        found = [t for t in found if t.group == ISSUE_14]
    own = [t for t in found if not t.group]
    if own:
        parts += ["", f"Targets (trio-mcp under {HYPERCORN_TRIO})", targets_table(own)]
    issue_12 = [t for t in found if t.group == ISSUE_12]
    if issue_12:
        parts += [
            "",
            f"Targets of issue 12 (trio-mcp as a guest on {HOSTS[GUEST]})",
            targets_table(issue_12, GUEST),
        ]
    breakdown = None if redis_only else breakdown_table(latency)
    if breakdown:
        parts += ["", "Where a /sse call's server CPU goes at 64 sessions (issue 12)", breakdown]
    issue_13 = [t for t in found if t.group == ISSUE_13]
    if issue_13:
        best = best_stateless_host(issue_13)
        parts += [
            "",
            "Targets of issue 13 (MCP 2026-07-28's stateless wire, trio-mcp under each host"
            + (f"; the issue's bounds are on the best host, {best})" if best else ")"),
            targets_table(issue_13, "per host"),
        ]
    issue_14 = [t for t in found if t.group == ISSUE_14]
    if issue_14:
        parts += [
            "",
            "Targets of issue 14 (Redis: each host on Redis against itself in memory; two "
            "workers on one Redis against one; server CPU counts every worker and redis-server)",
            targets_table(issue_14, "per system"),
        ]
    if results.get("notes"):
        parts += ["", *results["notes"]]
    return "\n".join(parts)


def redis_section(results: dict[str, Any]) -> list[str]:
    """The Redis section's lines: where it ran, its echo and idle tables (each
    Redis-backed system beside its counterpart), or nothing if it did not run."""
    latency = in_redis_section(results["latency"])
    idle = in_redis_section(results["idle"])
    redis_sizes = {r["n"] for r in idle if r.get("redis")}
    idle = [r for r in idle if r.get("redis") or r["n"] in redis_sizes]
    if not any(r.get("redis") for r in latency + idle):
        return []
    config = results["config"]
    parts = [
        "",
        "Redis (issue 14): trio-mcp's hosts with their sessions on Redis (+redis), two "
        "workers on one Redis (-w2: two processes, the load spreading its connections over "
        "them as a round-robin balancer would), and the same hosts in memory.",
        redis_where(config) + " Server CPU is every worker's and redis-server's.",
    ]
    if latency:
        parts += [
            "",
            f"Redis: closed-loop tools/call echo ({config['duration']:g} s window after "
            f"{config['warmup']:g} s warm-up; {_two_worker_levels(config)}{_runs(config)})",
            redis_latency_table(latency),
        ]
    if idle:
        parts += [
            "",
            f"Redis: idle sessions (idle window {config['idle_seconds']:g} s, heartbeat "
            f"{config['heartbeat']:g} s; Redis commands as INFO commandstats counts them, "
            "those inside Lua scripts included)",
            redis_idle_table(idle),
        ]
    return parts


def issue_14_targets(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> list[Target]:
    """Issue 14's, for every Redis-backed system measured, each target's name starting
    with it: one worker on Redis against its host in memory (calls/s at 64 sessions on
    /sse and /mcp, and for information p99 and calls per server CPU-second, which a
    busy machine skews less than calls/s; memory per idle session, the worker's and
    redis-server's together, at the largest N both held in full; Redis's commands
    while idle, per minute per 10,000 sessions, for information); two workers on one
    Redis against one (calls per server CPU-second at 64 sessions, every worker's and
    redis-server's CPU counted; p50 and p99 of one session whose POSTs go to the
    worker that does not hold its stream against one whose POSTs go to the owner)."""
    found: list[Target] = []
    for name, system in REDIS_BACKED.items():
        other = system.compared_with or ""
        if system.server_workers == 1:
            found += _redis_worker(idle, latency, name, other)
        else:
            found += _two_workers(latency, name, other)
    return found


def _redis_worker(
    idle: list[dict[str, Any]], latency: list[dict[str, Any]], name: str, other: str
) -> list[Target]:
    found: list[Target] = []
    for transport in REDIS_TRANSPORTS:
        mine, theirs = _calls(latency, name, transport), _calls(latency, other, transport)
        if not (mine and theirs):
            continue
        ratio = mine["calls_per_s"] / theirs["calls_per_s"]
        found.append(
            Target(
                f"{name}: calls/s at 64 sessions vs {other} (/{transport})",
                f"{mine['calls_per_s']:,.0f} vs {theirs['calls_per_s']:,.0f}",
                f">= {REDIS_CALLS_VS_MEMORY:.2f}x in memory",
                ratio,
                ratio >= REDIS_CALLS_VS_MEMORY,
                ISSUE_14,
            )
        )
        (p99,) = _p99(mine, theirs, other, transport, math.inf, ISSUE_14)
        p99.name, p99.bound, p99.met = f"{name}: {p99.name}", "(for information)", None
        found.append(p99)
        # What a call costs the server side, whatever else shared its core meanwhile.
        mine_cpu, theirs_cpu = mine["calls_per_cpu_second"], theirs["calls_per_cpu_second"]
        found.append(
            Target(
                f"{name}: calls per server CPU-second at 64 sessions vs {other} (/{transport})",
                f"{mine_cpu:,.0f} vs {theirs_cpu:,.0f}",
                "(for information)",
                mine_cpu / theirs_cpu,
                None,
                ISSUE_14,
            )
        )
    ours, theirs_idle = _idle(idle, name, "sse"), _idle(idle, other, "sse")
    common = [n for n in ours if n in theirs_idle and _full(ours[n]) and _full(theirs_idle[n])]
    if common:
        n = max(common)
        worker, redis = ours[n]["rss_per_session"], ours[n]["redis_rss_per_session"]
        without = theirs_idle[n]["rss_per_session"]
        ratio = (worker + redis) / without
        found.append(
            Target(
                f"{name}: RSS per idle session, worker + redis-server, vs {other} (N={n:,}, /sse)",
                f"{worker / 1024:.1f} + {redis / 1024:.1f} KB vs {without / 1024:.1f} KB",
                f"<= {REDIS_RSS_VS_MEMORY:.2f}x in memory",
                ratio,
                ratio <= REDIS_RSS_VS_MEMORY,
                ISSUE_14,
            )
        )
    if ours:
        n = max(ours)
        r = ours[n]
        found.append(
            Target(
                f"{name}: Redis commands while idle, per minute per "
                f"{REDIS_IDLE_PER:,} sessions (N={n:,}, /sse)",
                f"{per_sessions(r):,.0f} ({command_mix(r)})",
                "lease renewals only (for information)",
                math.nan,
                None,
                ISSUE_14,
            )
        )
    return found


def per_sessions(r: dict[str, Any]) -> float:
    """An idle run's Redis commands per minute, scaled to REDIS_IDLE_PER sessions."""
    held = r["established"]
    return float(r["redis_commands_per_minute"] * REDIS_IDLE_PER / held) if held else math.nan


def command_mix(r: dict[str, Any], most: int = 4) -> str:
    """An idle run's Redis commands by name, per minute, the most frequent first."""
    window = r["idle_window"]
    counts = sorted(r["redis_commands"].items(), key=lambda item: -item[1])
    parts = [f"{name} {count / window * 60:,.0f}" for name, count in counts[:most]]
    if len(counts) > most:
        parts.append(f"{len(counts) - most} more")
    return ", ".join(parts) + " a minute" if parts else "none"


def _two_workers(latency: list[dict[str, Any]], name: str, other: str) -> list[Target]:
    found: list[Target] = []
    for transport in REDIS_TRANSPORTS:
        mine, theirs = _calls(latency, name, transport), _calls(latency, other, transport)
        if mine and theirs:
            ratio = mine["calls_per_cpu_second"] / theirs["calls_per_cpu_second"]
            found.append(
                Target(
                    f"{name}: calls per server CPU-second at 64 sessions vs {other} (/{transport})",
                    f"{mine['calls_per_cpu_second']:,.0f} vs {theirs['calls_per_cpu_second']:,.0f}",
                    f">= {TWO_WORKERS_CALLS_PER_CPU:.2f}x one worker",
                    ratio,
                    ratio >= TWO_WORKERS_CALLS_PER_CPU,
                    ISSUE_14,
                )
            )
            found += _by_round(
                mine, theirs, f"{name}: the same ratio, round by round (/{transport})"
            )
        # The spread split: two workers whose POSTs never cross, and a crossing call's
        # cost at load (every POST to the other worker against every POST to the owner).
        owner = _calls(latency, name, transport, routing="owner")
        cross = _calls(latency, name, transport, routing="cross")
        for what, one, against, versus in (
            ("POSTs to the owner", owner, theirs, other),
            ("POSTs to the other worker", cross, owner, "to the owner"),
        ):
            if one and against:
                mine_cpu, theirs_cpu = one["calls_per_cpu_second"], against["calls_per_cpu_second"]
                found.append(
                    Target(
                        f"{name}: calls per server CPU-second at 64 sessions, {what}, "
                        f"vs {versus} (/{transport})",
                        f"{mine_cpu:,.0f} vs {theirs_cpu:,.0f}",
                        "(for information)",
                        mine_cpu / theirs_cpu,
                        None,
                        ISSUE_14,
                    )
                )
                found += _by_round(
                    one, against, f"{name}: {what} vs {versus}, round by round (/{transport})"
                )
    for transport in REDIS_TRANSPORTS:
        owner = _calls(latency, name, transport, 1, "owner")
        cross = _calls(latency, name, transport, 1, "cross")
        if not (owner and cross):
            continue
        here, there = owner["latency"]["p50"] * 1000, cross["latency"]["p50"] * 1000
        added = there - here
        found.append(
            Target(
                f"{name}: p50 at 1 session, POSTs to the other worker vs to the owner "
                f"(/{transport})",
                f"{added:+.2f} ms ({there:.2f} vs {here:.2f} ms)",
                f"<= +{CROSSING_P50_MS:g} ms",
                added / CROSSING_P50_MS,
                added <= CROSSING_P50_MS,
                ISSUE_14,
            )
        )
        here, there = owner["latency"]["p99"] * 1000, cross["latency"]["p99"] * 1000
        found.append(
            Target(
                f"{name}: p99 at 1 session, POSTs to the other worker vs to the owner "
                f"(/{transport})",
                f"{there - here:+.2f} ms ({there:.2f} vs {here:.2f} ms)",
                "(for information)",
                there / here,
                None,
                ISSUE_14,
            )
        )
    return found


def _by_round(mine: dict[str, Any], theirs: dict[str, Any], name: str) -> list[Target]:
    """For information, when each level ran in every round: the ratio of each round's
    pair of runs, whose scatter shows how much of a miss or a pass the machine's
    drift could make."""
    ratios = paired_ratios(mine, theirs)
    if ratios is None:
        return []
    ordered = sorted(ratios)
    median = ordered[(len(ordered) - 1) // 2]
    return [
        Target(
            name,
            f"median {median:.2f}, {ordered[0]:.2f} to {ordered[-1]:.2f} in {len(ratios)} rounds",
            "(for information)",
            median,
            None,
            ISSUE_14,
        )
    ]


def _two_worker_levels(config: dict[str, Any]) -> str:
    """What the two workers' echo levels were (``--routings``)."""
    chosen = config.get("routings") or list(AT_LOAD)
    if set(chosen) == set(AT_LOAD):
        return (
            "with two workers, one session whose POSTs go to the owner or to the other "
            "worker, then each level with every POST to the owner, to the other worker, "
            "and spread"
        )
    levels = [f"POSTs {ROUTINGS[routing]}" for routing in AT_LOAD if routing in chosen]
    return "with two workers, only each level with " + " and ".join(levels)


def in_redis_section(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the Redis section shows: the Redis-backed systems', and their
    counterparts' on the same transports (in memory: on /sse and /mcp only)."""
    shown = set(REDIS_BACKED) & {r["system"] for r in rows}
    shown |= {REDIS_BACKED[name].compared_with or "" for name in shown}
    return [r for r in rows if r["system"] in shown and r["transport"] in REDIS_TRANSPORTS]


def redis_latency_table(latency: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "host",
        "workers",
        "POSTs",
        "transport",
        "sessions",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU %",
        "Redis CPU %",
        "calls/CPU-s",
        "of runs",
        "Redis cmds/call",
        "load CPU %",
    ]
    rows = []
    for r in latency:
        workers = str(r.get("server_workers", 1))
        routing = ROUTINGS[r.get("routing", "one")] if r.get("server_workers", 1) > 1 else "-"
        cells = [r["system"], _host(r), workers, routing, "/" + r["transport"]]
        if "calls_per_s" not in r:
            rows.append([*cells, str(r.get("sessions", "")), r["error"][:60]])
            rows[-1] += [""] * (len(header) - len(rows[-1]))
            continue
        lat = r["latency"]
        rows.append(
            [
                *cells,
                str(r["sessions"]),
                _fmt(r["calls_per_s"], 0),
                _fmt(lat["p50"] * 1000, 2),
                _fmt(lat["p99"] * 1000, 2),
                str(sum(r["errors"].values())),
                _fmt(r["server_cpu_percent"], 0),
                _fmt(r["redis_cpu_percent"], 0) if r.get("redis") else "-",
                # NaN for runs saved before it was recorded (--json files of older runs).
                _fmt(r.get("calls_per_cpu_second", math.nan), 0),
                _spread(r),
                _fmt(r["redis_commands_per_call"], 1) if r.get("redis") else "-",
                _fmt(r["load_cpu_percent"], 0),
            ]
        )
    return _table(header, rows)


def redis_idle_table(idle: list[dict[str, Any]]) -> str:
    header = [
        "system",
        "host",
        "transport",
        "N",
        "established",
        "failed",
        "estab. s",
        "worker RSS/session KB",
        "Redis RSS/session KB",
        "Redis data/session KB",
        "worker CPU % core",
        "Redis CPU % core",
        "Redis cmds/min",
        f"per {REDIS_IDLE_PER:,} sessions",
        "Redis commands",
    ]
    rows = []
    for r in idle:
        cells = [r["system"], _host(r), "/" + r["transport"], f"{r['n']:,}"]
        if "established" not in r:
            rows.append([*cells, r.get("error", "")[:60]])
            rows[-1] += [""] * (len(header) - len(rows[-1]))
            continue
        redis = bool(r.get("redis"))
        rows.append(
            [
                *cells,
                f"{r['established']:,}",
                f"{r['failed']:,}",
                _fmt(r["establish_seconds"]),
                _fmt(r["rss_per_session"] / 1024),
                _fmt(r["redis_rss_per_session"] / 1024) if redis else "-",
                _fmt(r["redis_used_memory_per_session"] / 1024, 2) if redis else "-",
                _fmt(r["cpu_percent"], 2),
                _fmt(r["redis_cpu_percent"], 2) if redis else "-",
                _fmt(r["redis_commands_per_minute"], 0) if redis else "-",
                _fmt(per_sessions(r), 0) if redis else "-",
                command_mix(r, most=6) if redis else "-",
            ]
        )
    return _table(header, rows, text_last=True)


def redis_where(config: dict[str, Any]) -> str:
    """Where the Redis section's processes ran, in a sentence."""
    core = config.get("redis_core", config["server_core"])
    if core is None:
        place = "on any core (unpinned)"
    elif core == config["server_core"]:
        place = f"on core {core}, the servers' core (workers and Redis share one core)"
    elif core == config["load_core"]:
        place = f"on core {core}, the load's core"
    else:
        place = f"on core {core}"
    several = {
        "own": f"each on a core of its own from core {config['server_core']} on",
        "server": f"all on core {config['server_core']}",
        "any": "on any core (unpinned)",
    }[config.get("worker_cores", "server")]
    return (
        f"redis-server {place}; one fresh for each measurement, nothing persisted, "
        f"stopped by its PID. One worker on core {config['server_core']}, several "
        f"{several}; the load on core {config['load_core']}."
    )
