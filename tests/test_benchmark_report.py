"""The benchmark report's verdicts on issue 12's, issue 13's and issue 14's targets, from
figures given here.

The smoke test (test_benchmark_smoke.py) shows that every target is computed from a real
run; these check each bound's direction and edge, which a smoke run's small figures
cannot: a ratio exactly at its bound is met, one just past it is missed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

# The harness is not installed with the package: find it in the checkout, after the
# installed trio_mcp (appended, so that the checkout's copy does not shadow it).
sys.path.append(str(Path(__file__).resolve().parent.parent))

import attrs

import trio_mcp
from benchmarks.__main__ import ts_sdk_stateless_note
from benchmarks.attacks import excess_cpu_seconds
from benchmarks.config import RunConfig, worker_core
from benchmarks.report import (
    ISSUE_12,
    ISSUE_13,
    ISSUE_14,
    breakdown_table,
    departure_table,
    issue_12_targets,
    issue_13_targets,
    issue_14_targets,
    redis_where,
    render,
    targets,
)

HOSTS = {
    "trio-mcp": "hypercorn -k trio",
    "trio-mcp@hypercorn-asyncio": "hypercorn (asyncio worker)",
    "trio-mcp@uvicorn": "uvicorn (uvloop, httptools)",
    "sdk": "uvicorn (asyncio, h11)",
    "ts-sdk": "node, express",
    "trio-mcp+redis": "hypercorn -k trio",
    "trio-mcp+redis-w2": "hypercorn -k trio",
    "trio-mcp@uvicorn+redis": "uvicorn (uvloop, httptools)",
    "floor-hypercorn": "hypercorn -k trio",
    "floor-trio@uvicorn": "uvicorn (uvloop, httptools)",
    "floor-asyncio@uvicorn": "uvicorn (uvloop, httptools)",
}
TRIO_MCP_HOSTS = ["trio-mcp", "trio-mcp@hypercorn-asyncio", "trio-mcp@uvicorn"]


def _idle(
    system: str,
    n: int,
    rss_kb: float,
    cpu_percent: float,
    held: int | None = None,
    transport: str = "sse",
) -> dict[str, Any]:
    established = n if held is None else held
    return {
        "system": system,
        "host": HOSTS[system],
        "transport": transport,
        "n": n,
        "established": established,
        "failed": n - established,
        "closed_by_server": 0,
        "rss_per_session": rss_kb * 1024,
        "heartbeat": 15.0,
        "cpu_percent": cpu_percent,
        # What the idle table prints beside them.
        "establish_seconds": 1.0,
        "cpu_seconds_per_minute": cpu_percent * 0.6,
        "idle_window": 60.0,
        "heartbeat_interval": {"p50": 15.0, "max": 15.1},
        "gc": {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]},
        "gc_measured": True,
    }


def _echo(system: str, calls_per_s: float, p99_ms: float, transport: str = "sse") -> dict[str, Any]:
    return {
        "system": system,
        "host": HOSTS[system],
        "transport": transport,
        "sessions": 64,
        "calls_per_s": calls_per_s,
        "latency": {"p50": p99_ms / 2000, "p90": p99_ms / 1500, "p99": p99_ms / 1000},
        "errors": {},
        "window": 10.0,
        "server_cpu_percent": 100.0,
        "calls_per_cpu_second": calls_per_s,
        "load_cpu_percent": 20.0,
        "gc": {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]},
        "gc_measured": system != "ts-sdk",
    }


def _figures(
    *,
    guest_calls: float = 3_000.0,
    guest_p99_ms: float = 10.0,
    guest_rss_kb: float = 30.0,
    guest_held: int = 19_000,
    guest_cpu: float = 5.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """At every bound exactly: 3x trio-mcp's calls, the TS SDK's, half the SDK's p99,
    trio-mcp's memory, 19,000 held, 5 % of a core."""
    idle = [
        _idle("trio-mcp", 10_000, 30.0, 4.0),
        _idle("trio-mcp", 19_000, 30.0, 8.0),
        _idle("trio-mcp@uvicorn", 10_000, guest_rss_kb, guest_cpu),
        _idle("trio-mcp@uvicorn", 19_000, guest_rss_kb, 9.0, held=guest_held),
    ]
    latency = [
        _echo("trio-mcp", 1_000.0, 50.0),
        _echo("ts-sdk", 3_000.0, 20.0),
        _echo("sdk", 900.0, 20.0),
        _echo("trio-mcp@uvicorn", guest_calls, guest_p99_ms),
    ]
    return idle, latency


def _verdicts(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> dict[str, bool | None]:
    return {t.name: t.met for t in issue_12_targets(idle, latency)}


MACHINE = {
    "cpu": "cpu",
    "cores": 2,
    "memory_gib": 1.0,
    "kernel": "Linux",
    "python": "3.11",
    "trio_mcp_commit": "0000000",
    "load_average_at_start": [0.0, 0.0, 0.0],
    "packages": {},
    "sdk_packages": {},
}
CONFIG = {
    "server_core": 0,
    "load_core": 1,
    "heartbeat": 15.0,
    "duration": 10.0,
    "warmup": 2.0,
    "idle_seconds": 60.0,
    "collect": True,
}


def test_issue_12_targets_are_met_at_their_bounds() -> None:
    assert _verdicts(*_figures()) == {
        "calls/s at 64 sessions vs trio-mcp (/sse)": True,
        "calls/s at 64 sessions vs ts-sdk (/sse)": True,
        "p99 at 64 sessions vs sdk (/sse)": True,
        "RSS per idle session vs trio-mcp (N=19,000, /sse)": True,
        "idle sessions held by one process (N=19,000, /sse)": True,
        "idle CPU with 10,000 sessions, heartbeat 15 s (/sse)": True,
    }


def test_issue_12_targets_are_missed_just_past_their_bounds() -> None:
    idle, latency = _figures(
        guest_calls=2_999.0,
        guest_p99_ms=10.01,
        guest_rss_kb=30.01,
        guest_held=18_999,
        guest_cpu=5.01,
    )
    verdicts = _verdicts(idle, latency)
    assert len(verdicts) == 6 and set(verdicts.values()) == {False}, verdicts


def test_breakdown_adds_each_layer_to_the_one_above_it_net_of_the_collector() -> None:
    # At 100 % of a core, a call costs 1e6 / calls_per_s microseconds of server CPU.
    # The bare trio app's collector took a tenth of its window: 10 us of its 100 a call.
    collected = _echo("floor-trio@uvicorn", 10_000.0, 5.0) | {
        "gc": {"collections": [0, 0, 1], "seconds": [0.0, 0.0, 1.0]}
    }
    latency = [
        _echo("floor-asyncio@uvicorn", 20_000.0, 5.0),
        collected,
        _echo("trio-mcp@uvicorn", 5_000.0, 5.0),
        _echo("floor-hypercorn", 2_500.0, 5.0),
        _echo("trio-mcp", 2_000.0, 5.0),
    ]
    table = breakdown_table(latency)
    assert table is not None
    for row in (
        r"floor-asyncio@uvicorn\s+20,000\s+50\.0\s+0\.0\s+uvicorn and a bare asyncio app",
        r"floor-trio@uvicorn\s+10,000\s+100\.0\s+10\.0\s+\+40\.0\s",
        r"trio-mcp@uvicorn\s+5,000\s+200\.0\s+0\.0\s+\+110\.0\s",
        r"floor-hypercorn\s+2,500\s+400\.0\s+0\.0\s+hypercorn -k trio",
        r"trio-mcp\s+2,000\s+500\.0\s+0\.0\s+\+100\.0\s",
    ):
        assert re.search(row, table), (row, table)
    # 3x trio-mcp's 2,000 calls/s is 6,000: 166.7 us a call.
    assert table.splitlines()[-1].endswith("166.7 us of server CPU per call; it spends 200.0")


def test_no_breakdown_without_every_layer_on_uvicorn() -> None:
    assert breakdown_table([_echo("trio-mcp@uvicorn", 5_000.0, 5.0)]) is None


def test_memory_is_compared_where_both_held_every_session() -> None:
    # Under uvicorn only 18,999 of 19,000 opened: memory is judged at 10,000.
    idle, latency = _figures(guest_held=18_999)
    verdicts = _verdicts(idle, latency)
    assert verdicts["idle sessions held by one process (N=19,000, /sse)"] is False
    assert "RSS per idle session vs trio-mcp (N=10,000, /sse)" in verdicts


def test_report_prints_the_host_of_every_row_and_issue_12_apart() -> None:
    idle, latency = _figures()
    found = targets(idle, latency)
    assert {t.group for t in found} == {"", ISSUE_12}
    machine = {
        "cpu": "cpu",
        "cores": 2,
        "memory_gib": 1.0,
        "kernel": "Linux",
        "python": "3.11",
        "trio_mcp_commit": "0000000",
        "load_average_at_start": [0.0, 0.0, 0.0],
        "packages": {},
        "sdk_packages": {},
    }
    config = {"server_core": 0, "load_core": 1, "heartbeat": 15.0, "duration": 10.0}
    text = render(
        {
            "machine": machine,
            "command": "python -m benchmarks",
            "config": config | {"warmup": 2.0, "idle_seconds": 60.0, "collect": True},
            "idle": [],
            "latency": latency,
            "targets": [t.as_dict() for t in found],
        }
    )
    # The echo table's rows, cell by cell (cells are two spaces apart or more).
    rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if " /sse " in line]
    assert {row[0]: row[1] for row in rows} == {
        system: HOSTS[system] for system in ("trio-mcp", "trio-mcp@uvicorn", "sdk", "ts-sdk")
    }
    ts_sdk = next(row for row in rows if row[0] == "ts-sdk")
    assert ts_sdk[-3:-1] == ["n/a", "n/a"]  # V8's collector: not counted
    assert "Targets of issue 12" in text


def _attack_row(attack: str, outcome: dict[str, Any]) -> dict[str, Any]:
    alone, beside = (
        _echo("trio-mcp@uvicorn", 2_000.0, 8.0),
        _echo("trio-mcp@uvicorn", 1_500.0, 20.0),
    )
    beside["errors"] = {"McpFailure: an error reply": 2}
    return {
        "system": "trio-mcp@uvicorn",
        "host": HOSTS["trio-mcp@uvicorn"],
        "transport": "sse",
        "sessions": 8,
        "attack": attack,
        "alone": alone | {"rss_peak": 50 * 2**20},
        "beside": beside,
        "p99_ratio": 2.5,
        "rss_before": 60 * 2**20,
        "rss_peak": 250 * 2**20,
        "fds_fresh": 19,
        "fds_after": 21,
        "outcome": {
            "clients": 50,
            "attempts": 320,
            "outcomes": {},
            "seconds": {"count": 0, "p50": float("nan"), "max": float("nan")},
            "held_at_end": 0,
            "longest_held": 0.0,
            "errors": {},
        }
        | outcome,
    }


def test_attack_table_sets_each_attack_beside_the_echo_alone() -> None:
    rows = [
        _attack_row(
            "stalled-readers",
            {"requests": 1, "reply_bytes": 2**20, "held_at_end": 50, "longest_held": 9.9},
        ),
        _attack_row(
            "trickled-bodies",
            {
                "outcomes": {"408": 200},
                "seconds": {"count": 200, "p50": 2.01, "max": 2.05},
                "errors": {"ConnectionClosed": 3},
            },
        ),
    ]
    machine = {
        "cpu": "cpu",
        "cores": 2,
        "memory_gib": 1.0,
        "kernel": "Linux",
        "python": "3.11",
        "trio_mcp_commit": "0000000",
        "load_average_at_start": [0.0, 0.0, 0.0],
        "packages": {},
        "sdk_packages": {},
    }
    config = {
        "server_core": 0,
        "load_core": 1,
        "heartbeat": 15.0,
        "duration": 10.0,
        "warmup": 2.0,
        "attack_sessions": 8,
        "stalled_client_timeout": 1.0,
        "body_timeout": 2.0,
        "resume_grace": 2.0,
    }
    text = render(
        {
            "machine": machine,
            "command": "python -m benchmarks --attacks",
            "config": config,
            "idle": [],
            "latency": [],
            "attacks": rows,
            "targets": [],
        }
    )
    assert "stalled_client_timeout 1 s, body_timeout 2 s, resume_grace 2 s" in text
    lines = [line for line in text.splitlines() if line.startswith("trio-mcp@uvicorn")]
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    # alone calls/s, p50, p99; beside calls/s, p50, p99; ratio; errors; ...; peak; fds left
    assert cells[0][4:12] == ["2,000", "4.00", "8.00", "1,500", "10.00", "20.00", "2.50", "2"]
    assert cells[0][14:17] == ["60.0", "250.0", "2"]
    assert cells[0][-1] == (
        "320 sessions asked 1 reply of 1 MiB each; let go: none; 50 held at the end (longest 9.9 s)"
    )
    assert cells[1][-1] == ("320 bodies: 408 x200; after p50 2.01 s, max 2.05 s; 3 client errors")


def _departure_row(
    system: str, host: str, longest_ms: float, cpu_s: float, floor: bool
) -> dict[str, Any]:
    alone = {"p50": 0.002, "p99": 0.005, "max": 0.012}
    beside = {"p50": 0.002, "p99": 0.030, "max": longest_ms / 1000}
    return {
        "system": system,
        "host": host,
        "floor": floor,
        "attack": "mass-disconnect",
        "alone": {"latency": alone},
        "beside": {"latency": beside, "errors": {}},
        "outcome": {"outcomes": {"left": 10_000}, "seconds": {"max": 1.25}},
        "excess_cpu_seconds": cpu_s,
    }


def test_departure_table_sets_each_hosts_bare_floor_before_trio_mcp() -> None:
    uvicorn = "uvicorn (uvloop, httptools)"
    rows = [
        _departure_row("trio-mcp", "hypercorn -k trio", 1_208.0, 2.5, floor=False),
        _departure_row("trio-mcp@uvicorn", uvicorn, 714.0, 1.8, floor=False),
        _departure_row("floor-hypercorn", "hypercorn -k trio", 100.0, 0.9, floor=True),
        _departure_row("floor-asyncio@uvicorn", uvicorn, 99.9, 0.4, floor=True),
        {"system": "floor-trio@uvicorn", "host": uvicorn, "floor": True}
        | {"attack": "mass-disconnect", "error": "RuntimeError: arming failed"},
        _departure_row("trio-mcp", "hypercorn -k trio", 50.0, 0.1, floor=False)
        | {"attack": "connect-burst"},
    ]
    table = departure_table(rows)
    assert table is not None
    cells = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[2:]]
    assert [row[0] for row in cells] == [
        "floor-hypercorn",
        "trio-mcp",
        "floor-asyncio@uvicorn",
        "floor-trio@uvicorn",
        "trio-mcp@uvicorn",
    ]
    # left, over s, alone p99 and longest, p99 and longest beside, over the bound, errors,
    # departure CPU
    assert cells[0][2:] == ["10,000", "1.25", "5.00", "12.0", "30.00", "100.0", "no", "0", "0.90"]
    assert cells[1][2:6] == ["10,000", "1.25", "5.00", "12.0"]
    assert cells[1][6:] == ["30.00", "1,208.0", "yes", "0", "2.50"]
    assert cells[3][2:] == ["RuntimeError: arming failed"]
    assert departure_table(rows[-1:]) is None


def test_a_departures_cpu_is_the_servers_beyond_its_calls_at_their_cost_alone() -> None:
    alone = {"calls": 10_000, "server_cpu_seconds": 5.0}
    # 8,000 calls at 0.5 ms each: 4 s; the rest of 6.5 s is the attack's.
    assert excess_cpu_seconds(alone, {"calls": 8_000, "server_cpu_seconds": 6.5}) == 2.5


STATELESS = "mcp-stateless"


def _stateless(
    *,
    calls: dict[str, float] | None = None,
    p99_ms: float = 50.0,
    listener_kb: float = 33.0,
    listeners_held: int = 5_000,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every trio-mcp host at issue 13's bounds exactly, unless told otherwise: 1.5x the
    SDK's stateless calls/s (600), half its p99 (100 ms), an idle listener 1.1x an idle
    /sse session (30 KB) at N=5,000; and the /sse rows at 1,000 too."""
    calls = {host: 900.0 for host in TRIO_MCP_HOSTS} | (calls or {})
    idle, latency = [], [_echo("sdk", 600.0, 100.0, STATELESS), _echo("sdk", 400.0, 300.0, "mcp")]
    for host in TRIO_MCP_HOSTS:
        latency.append(_echo(host, calls[host], p99_ms, STATELESS))
        latency.append(_echo(host, 5_000.0, 1.0, "mcp"))  # another wire: not compared
        idle += [
            _idle(host, 1_000, 30.0, 1.0),
            _idle(host, 5_000, 30.0, 2.0),
            _idle(host, 5_000, listener_kb, 2.0, held=listeners_held, transport=STATELESS),
        ]
    return idle, latency


def _issue_13(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> dict[str, bool | None]:
    return {t.name: t.met for t in issue_13_targets(idle, latency)}


def test_issue_13_targets_are_met_at_their_bounds_under_every_host() -> None:
    assert _issue_13(*_stateless()) == {
        name: True
        for host in TRIO_MCP_HOSTS
        for name in (
            f"{host}: calls/s at 64 sessions vs sdk (/mcp-stateless)",
            f"{host}: p99 at 64 sessions vs sdk (/mcp-stateless)",
            f"{host}: RSS per idle listener vs idle /sse session (N=5,000)",
        )
    }


def test_issue_13_targets_are_missed_just_past_their_bounds() -> None:
    calls = {host: 899.0 for host in TRIO_MCP_HOSTS}
    verdicts = _issue_13(*_stateless(calls=calls, p99_ms=50.01, listener_kb=33.01))
    assert len(verdicts) == 9 and set(verdicts.values()) == {False}, verdicts


def test_issue_13_compares_each_host_with_its_own_sse_sessions() -> None:
    idle, latency = _stateless()
    # uvicorn's /sse sessions are lighter: its listeners, as heavy as the others', miss.
    for r in idle:
        if r["system"] == "trio-mcp@uvicorn" and r["transport"] == "sse":
            r["rss_per_session"] = 29 * 1024
    verdicts = _issue_13(idle, latency)
    rss = {name.split(":")[0]: met for name, met in verdicts.items() if "listener" in name}
    assert rss == {"trio-mcp": True, "trio-mcp@hypercorn-asyncio": True, "trio-mcp@uvicorn": False}


def test_issue_13_listeners_are_judged_only_where_every_one_was_held() -> None:
    # 4,999 of 5,000 listeners opened, and no other N has both: no memory verdict.
    verdicts = _issue_13(*_stateless(listeners_held=4_999))
    assert not [name for name in verdicts if "listener" in name]
    assert len(verdicts) == 6


def test_issue_13_has_no_echo_verdict_without_the_sdk_stateless_run() -> None:
    idle, latency = _stateless()
    latency = [r for r in latency if not (r["system"] == "sdk" and r["transport"] == STATELESS)]
    assert all("listener" in name for name in _issue_13(idle, latency))


def test_report_prints_stateless_rows_and_issue_13_naming_the_best_host() -> None:
    calls = {"trio-mcp": 700.0, "trio-mcp@hypercorn-asyncio": 800.0, "trio-mcp@uvicorn": 1_800.0}
    idle, latency = _stateless(calls=calls)
    found = targets(idle, latency)
    text = render(
        {
            "machine": MACHINE,
            "command": "python -m benchmarks",
            "config": CONFIG,
            "idle": idle,
            "latency": latency,
            "targets": [t.as_dict() for t in found],
        }
    )
    assert "on /mcp-stateless, one subscriptions/listen stream per client" in text
    rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]
    # The echo table: one /mcp-stateless row per host and the SDK's, with its host.
    echo = [row for row in rows if row[2:4] == ["/mcp-stateless", "64"]]
    assert {row[0]: row[1] for row in echo} == {
        system: HOSTS[system] for system in [*TRIO_MCP_HOSTS, "sdk"]
    }
    assert next(row for row in echo if row[0] == "trio-mcp@uvicorn")[4] == "1,800"
    # The idle table: the listeners' row beside the /sse sessions' at the same N.
    idle_rows = [row for row in rows if row[0] == "trio-mcp" and row[3:4] == ["5,000"]]
    assert [(row[2], row[7]) for row in idle_rows] == [("/sse", "30.0"), ("/mcp-stateless", "33.0")]
    heading = "Targets of issue 13 (MCP 2026-07-28's stateless wire, trio-mcp under each host"
    assert f"{heading}; the issue's bounds are on the best host, trio-mcp@uvicorn)" in text
    section = text.split(heading, 1)[1]
    verdicts = {row[0]: row[-1] for row in rows if row[0].startswith("trio-mcp@uvicorn: ")}
    assert verdicts == {
        "trio-mcp@uvicorn: calls/s at 64 sessions vs sdk (/mcp-stateless)": "met",
        "trio-mcp@uvicorn: p99 at 64 sessions vs sdk (/mcp-stateless)": "met",
        "trio-mcp@uvicorn: RSS per idle listener vs idle /sse session (N=5,000)": "met",
    }
    assert "trio-mcp: calls/s at 64 sessions vs sdk (/mcp-stateless)" in section
    assert {t.group for t in found if "mcp-stateless" in t.name} == {ISSUE_13}


def test_ts_sdk_stateless_note_says_which_revisions_it_serves() -> None:
    note = ts_sdk_stateless_note(["2025-11-25", "2025-06-18"], "1.32.2")
    assert note.startswith("ts-sdk /mcp-stateless not measured: @modelcontextprotocol/sdk 1.32.2")
    assert "serves 2025-11-25, 2025-06-18, not 2026-07-28" in note


ON_REDIS, TWO_WORKERS = "trio-mcp+redis", "trio-mcp+redis-w2"


def _redis_echo(
    system: str,
    calls_per_s: float,
    *,
    sessions: int = 64,
    routing: str | None = None,
    cpu_percent: float = 100.0,
    p50_ms: float = 20.0,
    transport: str = "sse",
) -> dict[str, Any]:
    """An echo row of a Redis-backed system: its server CPU (workers and Redis) over a
    10 s window sets its calls per CPU-second."""
    row = _echo(system, calls_per_s, p50_ms * 2, transport) | {
        "sessions": sessions,
        "redis": True,
        "server_workers": 2 if system == TWO_WORKERS else 1,
        "server_cpu_percent": cpu_percent,
        "calls_per_cpu_second": calls_per_s / (cpu_percent / 100),
        "worker_cpu_percent": cpu_percent - 10.0,
        "redis_cpu_percent": 10.0,
        "redis_commands": {"evalsha": 20, "xread": 10},
        "redis_commands_per_call": 12.0,
    }
    row["latency"]["p50"] = p50_ms / 1000
    if routing is not None:
        row["routing"] = routing
    return row


def _redis_idle(
    system: str, n: int, rss_kb: float, redis_kb: float, held: int | None = None
) -> dict[str, Any]:
    row = _idle(system, n, rss_kb, 1.0, held) | {
        "redis": True,
        "redis_rss_per_session": redis_kb * 1024,
        "redis_used_memory_per_session": redis_kb * 512,
        "redis_cpu_percent": 0.5,
        # 60 s window: 120 XREADs and 18 heartbeat scripts (each with its 4 inside).
        "redis_commands": {"xread": 120, "evalsha": 18, "exists": 36, "set": 18, "sadd": 18},
        "redis_commands_per_minute": 210.0,
    }
    return row


def _redis(
    *,
    calls: float = 600.0,
    cross_p50_ms: float = 2.5,
    two_workers_cpu: float = 100.0 / 0.9,
    rss_kb: float = 30.0,
    redis_kb: float = 6.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Issue 14's bounds exactly, unless told otherwise: one worker on Redis 0.6x of its
    host in memory (1,000 calls/s), a crossing POST 1.5 ms slower at p50 than one to
    the owner (1 ms), two workers 0.9x the calls per server CPU-second of one (the same
    calls, 1/0.9 the CPU), an idle session on Redis (worker and redis-server) 1.2x one
    in memory (30 KB), at N=5,000 (and 1,000 below it)."""
    latency = []
    for transport in ("sse", "mcp"):
        latency += [
            _echo("trio-mcp", 1_000.0, 50.0, transport),
            _redis_echo(ON_REDIS, calls, transport=transport),
            _redis_echo(TWO_WORKERS, 900.0, sessions=1, routing="owner", p50_ms=1.0,
                        transport=transport),
            _redis_echo(TWO_WORKERS, 600.0, sessions=1, routing="cross", p50_ms=cross_p50_ms,
                        transport=transport),
            _redis_echo(TWO_WORKERS, 700.0, routing="owner", transport=transport),
            _redis_echo(TWO_WORKERS, 350.0, routing="cross", transport=transport),
            _redis_echo(TWO_WORKERS, calls, routing="spread", cpu_percent=two_workers_cpu,
                        transport=transport),
        ]  # fmt: skip
    idle = [
        _idle("trio-mcp", 1_000, 30.0, 1.0),
        _idle("trio-mcp", 5_000, 30.0, 1.0),
        _idle("trio-mcp", 19_000, 30.0, 1.0),  # no Redis row at this N: not compared
        _redis_idle(ON_REDIS, 1_000, 30.0, 12.0),
        _redis_idle(ON_REDIS, 5_000, rss_kb, redis_kb),
    ]
    return idle, latency


def _issue_14(idle: list[dict[str, Any]], latency: list[dict[str, Any]]) -> dict[str, bool | None]:
    return {t.name: t.met for t in issue_14_targets(idle, latency)}


JUDGED_14 = [
    f"{ON_REDIS}: calls/s at 64 sessions vs trio-mcp (/sse)",
    f"{ON_REDIS}: calls/s at 64 sessions vs trio-mcp (/mcp)",
    f"{ON_REDIS}: RSS per idle session, worker + redis-server, vs trio-mcp (N=5,000, /sse)",
    f"{TWO_WORKERS}: calls per server CPU-second at 64 sessions vs {ON_REDIS} (/sse)",
    f"{TWO_WORKERS}: calls per server CPU-second at 64 sessions vs {ON_REDIS} (/mcp)",
    f"{TWO_WORKERS}: p50 at 1 session, POSTs to the other worker vs to the owner (/sse)",
    f"{TWO_WORKERS}: p50 at 1 session, POSTs to the other worker vs to the owner (/mcp)",
]
SPREAD_SPLIT_14 = [
    f"{TWO_WORKERS}: calls per server CPU-second at 64 sessions, {what} (/{transport})"
    for transport in ("sse", "mcp")
    for what in (
        f"POSTs to the owner, vs {ON_REDIS}",
        "POSTs to the other worker, vs to the owner",
    )
]
INFORMATION_14 = [
    f"{ON_REDIS}: p99 at 64 sessions vs trio-mcp (/sse)",
    f"{ON_REDIS}: p99 at 64 sessions vs trio-mcp (/mcp)",
    f"{ON_REDIS}: calls per server CPU-second at 64 sessions vs trio-mcp (/sse)",
    f"{ON_REDIS}: calls per server CPU-second at 64 sessions vs trio-mcp (/mcp)",
    f"{ON_REDIS}: Redis commands while idle, per minute per 10,000 sessions (N=5,000, /sse)",
    f"{TWO_WORKERS}: p99 at 1 session, POSTs to the other worker vs to the owner (/sse)",
    f"{TWO_WORKERS}: p99 at 1 session, POSTs to the other worker vs to the owner (/mcp)",
    *SPREAD_SPLIT_14,
]


def test_issue_14_targets_are_met_at_their_bounds() -> None:
    verdicts = _issue_14(*_redis())
    assert verdicts == dict.fromkeys(JUDGED_14, True) | dict.fromkeys(INFORMATION_14, None)
    assert {t.group for t in targets(*_redis()) if t.name in verdicts} == {ISSUE_14}


def test_issue_14_targets_are_missed_just_past_their_bounds() -> None:
    idle, latency = _redis(
        calls=599.0, cross_p50_ms=2.51, two_workers_cpu=100.0 / 0.899, rss_kb=30.01
    )
    verdicts = _issue_14(idle, latency)
    assert {name: verdicts[name] for name in JUDGED_14} == dict.fromkeys(JUDGED_14, False)


def test_two_workers_spread_is_split_into_no_crossing_and_all_crossing() -> None:
    ratios = {t.name: t.ratio for t in issue_14_targets(*_redis())}
    # Two workers whose POSTs stay home: 700 calls per CPU-second against one's 600;
    # every POST crossing: half of that.
    assert ratios[SPREAD_SPLIT_14[0]] == pytest.approx(700 / 600)
    assert ratios[SPREAD_SPLIT_14[1]] == pytest.approx(0.5)


def test_two_workers_ratio_is_shown_round_by_round_when_every_round_ran() -> None:
    idle, latency = _redis()
    one = next(r for r in latency if r["system"] == ON_REDIS and r["transport"] == "sse")
    spread = next(r for r in latency if r.get("routing") == "spread" and r["transport"] == "sse")
    one |= {"runs_cps": [600.0, 500.0, 400.0], "failed_runs": 0}
    spread |= {"runs_cps": [540.0, 500.0, 480.0], "failed_runs": 0}
    found = {t.name: t for t in issue_14_targets(idle, latency)}
    by_round = found[f"{TWO_WORKERS}: the same ratio, round by round (/sse)"]
    assert by_round.measured == "median 1.00, 0.90 to 1.20 in 3 rounds"
    assert by_round.ratio == 1.0 and by_round.met is None
    assert f"{TWO_WORKERS}: the same ratio, round by round (/mcp)" not in found


def test_idle_session_on_redis_counts_redis_servers_memory_too() -> None:
    # The worker alone is 1.1x; with redis-server's 6 KB it is 1.3x: missed.
    verdicts = _issue_14(*_redis(rss_kb=33.0, redis_kb=6.0))
    assert verdicts[JUDGED_14[2]] is False


def test_idle_redis_traffic_is_scaled_to_10000_sessions_and_named() -> None:
    found = {t.name: t for t in issue_14_targets(*_redis())}
    traffic = found[INFORMATION_14[4]]
    # 210 commands a minute with 5,000 sessions: 420 per 10,000.
    assert traffic.measured == "420 (xread 120, exists 36, evalsha 18, set 18, 1 more a minute)"
    assert traffic.met is None


def test_crossing_cost_is_the_p50_added_by_posting_to_the_other_worker() -> None:
    found = {t.name: t for t in issue_14_targets(*_redis(cross_p50_ms=1.75))}
    crossing = found[JUDGED_14[5]]
    assert crossing.measured == "+0.75 ms (1.75 vs 1.00 ms)"
    assert crossing.ratio == 0.5 and crossing.met is True


def test_redis_section_sets_each_redis_row_beside_memory_and_only_it_with_redis() -> None:
    idle, latency = _redis()
    results = {
        "machine": MACHINE | {"redis_server": "7.0.15 (jemalloc-5.3.0)"},
        "command": "python -m benchmarks",
        "config": CONFIG | {"redis_core": 0},
        "idle": idle,
        "latency": latency,
        "targets": [t.as_dict() for t in targets(idle, latency)],
    }
    text = render(results)
    assert "Redis side: redis-server 7.0.15 (jemalloc-5.3.0)" in text
    assert "redis-server on core 0, the servers' core" in text
    generic, redis = text.split("Redis (issue 14)", 1)
    # The in-memory tables hold no Redis-backed row; the Redis section sets them beside.
    assert "+redis" not in generic.split("Targets", 1)[0]
    rows = [re.split(r"\s{2,}", line.strip()) for line in redis.splitlines()]
    echo = [row for row in rows if row[4:6] == ["/sse", "64"] and len(row) > 10]
    assert [(row[0], row[2], row[3]) for row in echo] == [
        ("trio-mcp", "1", "-"),
        (ON_REDIS, "1", "-"),
        (TWO_WORKERS, "2", "to the owner"),
        (TWO_WORKERS, "2", "to the other worker"),
        (TWO_WORKERS, "2", "spread (round-robin)"),
    ]
    # calls/s, ..., server CPU %, Redis CPU %, calls/CPU-s, of runs, Redis cmds/call
    assert echo[4][6] == "600" and echo[4][10:15] == ["111", "10", "540", "-", "12.0"]
    assert echo[0][11] == "-" and echo[0][14] == "-"
    idle_rows = [row for row in rows if row[2:4] == ["/sse", "5,000"]]
    assert [row[0] for row in idle_rows] == ["trio-mcp", ON_REDIS]
    assert idle_rows[1][7:9] == ["30.0", "6.0"] and idle_rows[1][12:14] == ["210", "420"]
    # In-memory rows at an N no Redis-backed system was measured at stay out.
    assert "19,000" not in redis.split("Targets", 1)[0]
    verdicts = {row[0]: row[-1] for row in rows if row[0] in JUDGED_14}
    assert verdicts == dict.fromkeys(JUDGED_14, "met")


def test_several_workers_each_get_a_core_of_their_own_from_the_server_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    def config(**layout: Any) -> RunConfig:
        return RunConfig(sizes=[1], concurrency=[64], systems=[], transports=["sse"], **layout)

    own = config(server_core=0)
    assert [worker_core(own, i, 2) for i in range(3)] == [0, 1, 0]
    assert worker_core(own, 0, 1) == 0
    shared = config(server_core=1, worker_cores="server")
    assert [worker_core(shared, i, 2) for i in range(2)] == [1, 1]
    anywhere = config(worker_cores="any")
    assert [worker_core(anywhere, i, 2) for i in range(2)] == [None, None]
    assert worker_core(anywhere, 0, 1) == 0  # one worker stays on the server core


@pytest.mark.parametrize(
    ("worker_cores", "said"),
    [
        ("own", "several each on a core of its own from core 0 on"),
        ("server", "several all on core 0"),
        ("any", "several on any core (unpinned)"),
    ],
)
def test_redis_section_says_where_several_workers_ran(worker_cores: str, said: str) -> None:
    where = redis_where(CONFIG | {"redis_core": 0, "worker_cores": worker_cores})
    assert f"One worker on core 0, {said}; the load on core 1." in where


def test_redis_section_alone_shows_only_itself() -> None:
    idle, latency = _redis()
    text = render(
        {
            "machine": MACHINE,
            "command": "python -m benchmarks --redis",
            "config": CONFIG | {"redis_core": None},
            "redis_only": True,
            "idle": idle,
            "latency": latency,
            "targets": [t.as_dict() for t in targets(idle, latency)],
        }
    )
    assert "Idle sessions (" not in text and "Closed-loop tools/call echo (" not in text
    assert "Targets (trio-mcp" not in text and "Targets of issue 14" in text
    assert "redis-server on any core (unpinned)" in text


def test_no_redis_section_without_a_redis_backed_row() -> None:
    idle, latency = _figures()
    assert issue_14_targets(idle, latency) == []
    text = render(
        {
            "machine": MACHINE,
            "command": "python -m benchmarks",
            "config": CONFIG,
            "idle": idle,
            "latency": latency,
            "targets": [t.as_dict() for t in targets(idle, latency)],
        }
    )
    assert "Redis" not in text


def test_redis_idle_run_outwaits_the_warm_up_sessions_grace() -> None:
    # Their ends (registry entries deleted in Redis) must fall before the idle window.
    grace = attrs.fields(trio_mcp.Settings).resume_grace.default
    assert RunConfig([], [], [], []).redis_drain > grace


def test_redis_echo_names_only_the_routings_that_ran() -> None:
    idle, latency = _redis()
    text = render(
        {
            "machine": MACHINE,
            "command": "python -m benchmarks --redis --routings spread",
            "config": CONFIG | {"redis_core": 0, "routings": ["spread"]},
            "redis_only": True,
            "idle": idle,
            "latency": latency,
            "targets": [t.as_dict() for t in targets(idle, latency)],
        }
    )
    assert "with two workers, only each level with POSTs spread (round-robin)" in text


def test_redis_echo_shows_how_far_a_levels_runs_spread() -> None:
    idle, latency = _redis()
    spread = next(r for r in latency if r.get("routing") == "spread")
    spread |= {"runs_cps": [540.0, 480.5, 601.0], "failed_runs": 1}
    text = render(
        {
            "machine": MACHINE,
            "command": "python -m benchmarks --redis --echo-runs 4",
            "config": CONFIG | {"redis_core": 0, "echo_runs": 4},
            "redis_only": True,
            "idle": idle,
            "latency": latency,
            "targets": [t.as_dict() for t in targets(idle, latency)],
        }
    )
    assert "each level measured 4 times in rounds over the systems, its median run" in text
    rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]
    (row,) = [r for r in rows if r[3:6] == ["spread (round-robin)", "/sse", "64"]]
    assert row[12:14] == ["540", "480-601, 1 failed"]
