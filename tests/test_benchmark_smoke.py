"""The benchmark's smoke mode, end to end, so that the benchmark never rots.

It runs ``python -m benchmarks --smoke`` as a user would: every system (trio-mcp on
every transport under each host: hypercorn's trio worker, hypercorn's asyncio worker and
uvicorn; the official Python SDK in its own virtualenv; the official TypeScript SDK on
Node in its own npm environment; the floors) with a few dozen idle sessions and a
short echo run at 64 sessions, the level the targets are judged at, then checks that
the figures are whole (one session's echo runs in the Redis section). On MCP 2026-07-28's stateless
wire (``mcp-stateless``) the echo runs against trio-mcp under each host and against the
Python SDK, and trio-mcp's hosts hold a few dozen idle ``subscriptions/listen`` streams;
the TypeScript SDK does not serve that revision, and the run's notes must say so.
Outside CI a machine that cannot build an SDK's environment (no npm, say) measures the
rest; in CI (``CI=true``) both SDKs are required, so no comparison is ever silently
dropped.

The attack section runs apart (``--smoke --attacks``): trio-mcp under each host, its
echo loop alone and beside each attack at a tenth of its size or less, the server's
bounds at half a second, and each bare floor beside the mass disconnect.

So does the Redis section (``--smoke --redis``, issue 14), on a real redis-server the
harness starts (required in CI, like every peer): two workers on one Redis, which
brings one worker on Redis and the same host in memory beside it, on /sse and /mcp.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from peers import program

ROOT = Path(__file__).resolve().parent.parent

TRIO_MCP_HOSTS = {
    "trio-mcp": "hypercorn -k trio",
    "trio-mcp@hypercorn-asyncio": "hypercorn (asyncio worker)",
    "trio-mcp@uvicorn": "uvicorn (uvloop, httptools)",
}
BARE_FLOORS = {
    "floor-hypercorn": "hypercorn -k trio",
    "floor-trio@uvicorn": "uvicorn (uvloop, httptools)",
    "floor-asyncio@uvicorn": "uvicorn (uvloop, httptools)",
}
STATELESS = "mcp-stateless"


def test_smoke_mode_prints_whole_figures(tmp_path: Path) -> None:
    in_ci = os.environ.get("CI") == "true"
    raw, plot = tmp_path / "smoke.json", tmp_path / "smoke.png"
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--smoke",
        "--quiet",
        "--sdk",
        "require" if in_ci else "auto",
        "--ts-sdk",
        "require" if in_ci else "auto",
        "--out",
        str(tmp_path / "out"),
        "--json",
        str(raw),
        "--plot",
        str(plot),
        "--no-attacks",  # test_smoke_attack_section runs it
        "--no-redis",  # and test_smoke_redis_section this one
        # The smoke preset's one-session level as well would cost CI half a minute for
        # the same code path: the Redis section measures one session.
        "--concurrency",
        "64",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Machine:" in done.stdout and "Idle sessions" in done.stdout
    results = json.loads(raw.read_text())

    measured = {r["system"] for r in results["idle"]}
    expected = {
        "trio-mcp",
        "trio-mcp@hypercorn-asyncio",
        "trio-mcp@uvicorn",
        "floor-hypercorn",
        "floor-quart",
        "floor-trio@uvicorn",
        "floor-asyncio@uvicorn",
        "sdk",
        "ts-sdk",
    }
    for sdk, what in (("sdk", "the SDK's virtualenv"), ("ts-sdk", "the TypeScript SDK's npm env")):
        if not in_ci and sdk not in measured:
            warnings.warn(f"{what} could not be made; it was not measured", stacklevel=1)
            expected.discard(sdk)
    assert measured == expected, results["notes"]
    hosts = {r["system"]: r["host"] for r in results["idle"] + results["latency"]}
    assert hosts["trio-mcp"] == "hypercorn -k trio"
    assert hosts["trio-mcp@hypercorn-asyncio"] == "hypercorn (asyncio worker)"
    assert hosts["trio-mcp@uvicorn"] == "uvicorn (uvloop, httptools)"

    for run in results["idle"]:
        where = f"{run['system']} /{run['transport']}"
        assert "error" not in run, where
        assert run["established"] == run["n"] > 0, where
        assert run["failed"] == 0 and run["closed_by_server"] == 0, where
        assert run["rss_after"] > 0 and run["idle_cpu_seconds"] >= 0, where
        assert run["heartbeats"] > 0, where  # the smoke run's heartbeat is short
        _assert_collector(run, where)
    # The stateless wire: the echo for trio-mcp's hosts and the SDK, idle listen streams
    # for trio-mcp's hosts only; every other system and transport has both.
    stateless = {s for s in ("sdk", *TRIO_MCP_HOSTS) if s in measured}
    assert {r["system"] for r in results["idle"] if r["transport"] == STATELESS} == set(
        TRIO_MCP_HOSTS
    )
    assert {(r["system"], r["transport"]) for r in results["latency"]} == {
        (r["system"], r["transport"]) for r in results["idle"]
    } | {(system, STATELESS) for system in stateless}
    if "ts-sdk" in measured:
        why = "ts-sdk /mcp-stateless not measured: @modelcontextprotocol/sdk 1.32"
        assert any(note.startswith(why) for note in results["notes"]), results["notes"]
    for run in results["latency"]:
        where = f"{run['system']} /{run['transport']} x{run.get('sessions')}"
        assert "error" not in run, where
        assert run["errors"] == {}, where
        assert run["calls"] > 0 and run["calls_per_s"] > 0, where
        assert 0 < run["latency"]["p50"] <= run["latency"]["p99"], where
        _assert_collector(run, where)
    assert plot.stat().st_size > 0

    # Every target is judged from these figures (the smoke run's echo has 64 sessions).
    issue_12 = {t["name"] for t in results["targets"] if t["group"].startswith("issue 12")}
    wanted = {
        "calls/s at 64 sessions vs trio-mcp (/sse)",
        "calls/s at 64 sessions vs ts-sdk (/sse)",
        "p99 at 64 sessions vs sdk (/sse)",
        "RSS per idle session vs trio-mcp (N=40, /sse)",
        "idle sessions held by one process (N=40, /sse)",
        "idle CPU with 40 sessions, heartbeat 0.5 s (/sse)",
    }
    if "ts-sdk" not in measured:
        wanted.discard("calls/s at 64 sessions vs ts-sdk (/sse)")
    if "sdk" not in measured:
        wanted.discard("p99 at 64 sessions vs sdk (/sse)")
    assert issue_12 == wanted
    assert "Targets of issue 12" in done.stdout

    issue_13 = {t["name"] for t in results["targets"] if t["group"].startswith("issue 13")}
    wanted = {
        f"{host}: RSS per idle listener vs idle /sse session (N=40)" for host in TRIO_MCP_HOSTS
    }
    if "sdk" in measured:
        wanted |= {
            f"{host}: {what} at 64 sessions vs sdk (/mcp-stateless)"
            for host in TRIO_MCP_HOSTS
            for what in ("calls/s", "p99")
        }
    assert issue_13 == wanted
    assert "Targets of issue 13" in done.stdout


def _assert_collector(run: dict[str, Any], where: str) -> None:
    """CPython servers report their collector's work; Node's is not CPython's: n/a."""
    if run["system"] == "ts-sdk":
        assert run["gc_measured"] is False and run["gc"] is None, where
    else:
        assert run["gc_measured"] is True, where
        assert len(run["gc"]["collections"]) == len(run["gc"]["seconds"]) == 3, where


ATTACKS = [
    "stalled-readers",
    "flooded-session",
    "trickled-bodies",
    "connect-burst",
    "mass-disconnect",
]


def test_smoke_attack_section_measures_every_host_beside_every_attack(tmp_path: Path) -> None:
    raw = tmp_path / "attacks.json"
    command = [sys.executable, "-m", "benchmarks", "--smoke", "--attacks", "--quiet"]
    command += ["--out", str(tmp_path / "out"), "--json", str(raw)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Attacks:" in done.stdout and "Idle sessions" not in done.stdout
    results = json.loads(raw.read_text())
    assert results["idle"] == results["latency"] == []
    rows = results["attacks"]
    assert [(r["system"], r["attack"]) for r in rows] == [
        (system, attack) for system in TRIO_MCP_HOSTS for attack in ATTACKS
    ] + [(floor, "mass-disconnect") for floor in BARE_FLOORS]
    smoke = results["config"]
    for r in rows:
        where = f"{r['system']} beside {r['attack']}"
        assert "error" not in r, where
        assert r["host"] == (TRIO_MCP_HOSTS | BARE_FLOORS)[r["system"]], where
        for run in (r["alone"], r["beside"]):
            assert run["calls"] > 0 and run["calls_per_s"] > 0, where
            assert 0 < run["latency"]["p50"] <= run["latency"]["p99"], where
        # The well-behaved sessions lose nothing to the attack.
        assert r["beside"]["errors"] == {}, where
        assert r["p99_ratio"] == r["beside"]["latency"]["p99"] / r["alone"]["latency"]["p99"]
        assert r["rss_peak"] > 0 and r["server_alive"], where
        # Once the attack has stopped, the server lets go of every connection it held.
        assert r["fds_after"] <= r["fds_fresh"], where
        outcome = r["outcome"]
        assert outcome["attempts"] > 0 and outcome["errors"] == {}, where
        assert r["attack"] in done.stdout

    def outcome_of(system: str, attack: str) -> dict[str, Any]:
        return next(r["outcome"] for r in rows if (r["system"], r["attack"]) == (system, attack))

    for system in TRIO_MCP_HOSTS:
        # Every trickled body was refused at body_timeout, none waited on much longer.
        trickled = outcome_of(system, "trickled-bodies")
        assert set(trickled["outcomes"]) == {"408"}, trickled
        assert trickled["seconds"]["max"] < smoke["body_timeout"] + 1.0, trickled
        burst = outcome_of(system, "connect-burst")
        assert burst["outcomes"] == {"400": smoke["burst_connections"]}, burst
    for system in [*TRIO_MCP_HOSTS, *BARE_FLOORS]:
        left = outcome_of(system, "mass-disconnect")
        assert left["outcomes"] == {"left": smoke["disconnect_sessions"]}, left
    # Each host's bare floor is set beside trio-mcp in the departures table.
    assert "Mass disconnect (issue 15" in done.stdout


def test_echo_runs_measure_each_level_in_rounds_and_report_its_median_run(
    tmp_path: Path,
) -> None:
    """About 10 s: two in-memory systems on /sse, every level three times."""
    raw = tmp_path / "runs.json"
    command = [sys.executable, "-m", "benchmarks", "--smoke", "--quiet", "--no-idle"]
    command += ["--no-attacks", "--no-redis", "--transports", "sse", "--echo-runs", "3"]
    command += ["--systems", "trio-mcp,trio-mcp@uvicorn", "--concurrency", "1,4"]
    command += ["--out", str(tmp_path / "out"), "--json", str(raw)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "each level measured 3 times in rounds over the systems" in done.stdout
    results = json.loads(raw.read_text())
    ran = [(r["system"], r["sessions"]) for r in results["latency_runs"]]
    first, second = ("trio-mcp", 1), ("trio-mcp", 4)
    other = [("trio-mcp@uvicorn", 1), ("trio-mcp@uvicorn", 4)]
    # The rounds alternate the systems' order.
    assert ran == [first, second, *other, *other, first, second, first, second, *other]
    for level in results["latency"]:
        runs = [
            r["calls_per_cpu_second"]
            for r in results["latency_runs"]
            if (r["system"], r["sessions"]) == (level["system"], level["sessions"])
        ]
        assert level["runs_cps"] == runs and level["failed_runs"] == 0
        assert level["calls_per_cpu_second"] == sorted(runs)[1]


TWO_WORKERS = "trio-mcp+redis-w2"
ON_REDIS = "trio-mcp+redis"


def test_smoke_redis_section_sets_redis_beside_memory_and_crosses_workers(
    tmp_path: Path,
) -> None:
    """About 40 s: three systems on /sse and /mcp, echo and idle at smoke sizes."""
    raw = tmp_path / "redis.json"
    in_ci = os.environ.get("CI") == "true"
    command = [sys.executable, "-m", "benchmarks", "--smoke", "--redis", "--quiet"]
    command += ["--systems", TWO_WORKERS, "--out", str(tmp_path / "out"), "--json", str(raw)]
    command += ["--redis-server", "require" if in_ci else "auto"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(raw.read_text())
    if not in_ci and not results["latency"]:
        warnings.warn(f"Redis not measured: {results['notes']}", stacklevel=1)
        return
    # The section alone: its own tables and targets, no in-memory tables of their own.
    assert "Redis (issue 14)" in done.stdout and "Targets of issue 14" in done.stdout
    assert "Idle sessions (" not in done.stdout and "Targets (trio-mcp" not in done.stdout
    assert "redis-server on core 0, the servers' core" in done.stdout
    assert results["machine"]["redis_server"]

    # The two workers' crossing runs, then owner, cross and spread at load; each other
    # system at every level.
    runs = [
        (r["system"], r["transport"], r["sessions"], r.get("routing")) for r in results["latency"]
    ]
    assert runs == [
        (system, transport, sessions, None)
        for system in ("trio-mcp", ON_REDIS)
        for transport in ("sse", "mcp")
        for sessions in (1, 64)
    ] + [
        (TWO_WORKERS, transport, sessions, routing)
        for transport in ("sse", "mcp")
        for routing, sessions in (
            ("owner", 1),
            ("cross", 1),
            ("owner", 64),
            ("cross", 64),
            ("spread", 64),
        )
    ]
    for r in results["latency"]:
        where = f"{r['system']} /{r['transport']} x{r['sessions']} {r.get('routing')}"
        assert "error" not in r and r["errors"] == {}, where
        assert r["calls"] > 0 and r["calls_per_cpu_second"] > 0, where
        assert 0 < r["latency"]["p50"] <= r["latency"]["p99"], where
        # Redis's CPU and commands are the Redis-backed rows' alone.
        assert r.get("redis", False) == (r["system"] != "trio-mcp"), where
        if r["system"] != "trio-mcp":
            assert r["redis_cpu_percent"] > 0 and r["redis_commands_per_call"] > 0, where
            assert r["server_cpu_percent"] >= r["redis_cpu_percent"], where

    def per_call(transport: str, routing: str) -> float:
        return float(
            next(
                r["redis_commands_per_call"]
                for r in results["latency"]
                if (r["system"], r["transport"], r.get("routing"))
                == (TWO_WORKERS, transport, routing)
            )
        )

    # Redis saw the POSTs cross: a forwarded one costs it the forwarding script.
    for transport in ("sse", "mcp"):
        assert per_call(transport, "cross") > per_call(transport, "owner"), transport

    idle = {(r["system"], r["transport"]): r for r in results["idle"]}
    assert set(idle) == {(s, t) for s in ("trio-mcp", ON_REDIS) for t in ("sse", "mcp")}
    for (system, transport), r in idle.items():
        where = f"{system} /{transport}"
        assert "error" not in r and r["established"] == r["n"] == 40, where
        assert r["failed"] == 0 and r["closed_by_server"] == 0, where
        if system == ON_REDIS:
            assert math.isfinite(r["redis_rss_per_session"]), where
            assert r["redis_used_memory_per_session"] > 0, where  # its hash, at least
            assert all(count > 0 for count in r["redis_commands"].values()), where
            assert r["redis_commands_per_minute"] >= 0 and r["redis_cpu_percent"] >= 0, where

    issue_14 = {t["name"] for t in results["targets"] if t["group"] == "issue 14: Redis"}
    assert issue_14 == {
        *(
            f"{ON_REDIS}: {what} at 64 sessions vs trio-mcp (/{transport})"
            for what in ("calls/s", "p99", "calls per server CPU-second")
            for transport in ("sse", "mcp")
        ),
        f"{ON_REDIS}: RSS per idle session, worker + redis-server, vs trio-mcp (N=40, /sse)",
        f"{ON_REDIS}: Redis commands while idle, per minute per 10,000 sessions (N=40, /sse)",
        *(
            f"{TWO_WORKERS}: calls per server CPU-second at 64 sessions vs {ON_REDIS} "
            f"(/{transport})"
            for transport in ("sse", "mcp")
        ),
        *(
            f"{TWO_WORKERS}: {what} at 1 session, POSTs to the other worker vs to the owner "
            f"(/{transport})"
            for what in ("p50", "p99")
            for transport in ("sse", "mcp")
        ),
        *(
            f"{TWO_WORKERS}: calls per server CPU-second at 64 sessions, {what} (/{transport})"
            for what in (
                f"POSTs to the owner, vs {ON_REDIS}",
                "POSTs to the other worker, vs to the owner",
            )
            for transport in ("sse", "mcp")
        ),
    }


def run_module(module: str, tmp_path: Path, *args: str) -> tuple[str, Any]:
    """Run ``python -m module args --json F`` as a user would; -> what it printed (after
    checking it began with the machine) and the figures it wrote to F."""
    out = tmp_path / "figures.json"
    command = [sys.executable, "-m", module, *args, "--json", str(out)]
    printed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("Machine: ")
    return printed.stdout, json.loads(out.read_text())


def test_departure_floor_measures_the_kernel_and_each_bare_loop(tmp_path: Path) -> None:
    """``python -m benchmarks.departure_floor``: the mass disconnect's floor beneath
    every host, a bare one-byte echo on each event loop, beside the kernel's own cost."""
    printed, figures = run_module("benchmarks.departure_floor", tmp_path, "--connections", "200")
    assert figures["kernel"]["close_us"] > 0 and figures["kernel"]["eof_us"] > 0
    assert set(figures["loops"]) == {"uvloop", "asyncio", "trio"}
    for loop, row in figures["loops"].items():
        assert 0 < row["alone_ms"] < 1_000, loop
        assert 0 < row["beside_ms"] < 10_000, loop
        assert row["cpu_s"] > 0, loop
        assert f"{loop}  " in printed


def test_redis_command_costs_each_client_side_by_side(tmp_path: Path) -> None:
    """``python -m benchmarks.redis_command``: a command's CPU through coredis and on a
    RedisLine, in one run, against a redis-server of its own."""
    program("redis-server", "redis-server")  # skips on a dev box without it; CI has it
    printed, figures = run_module("benchmarks.redis_command", tmp_path, "--commands", "200")
    rows = figures["rows"]
    assert {(row["client"], row["command"]) for row in rows} == {
        (client, command) for client in ("coredis", "RedisLine") for command in ("PING", "EVALSHA")
    }
    for row in rows:
        assert row["cpu_us"] > 0 and row["wall_us"] > 0, row
        assert f"{row['client']:>10}  {row['command']:>8}" in printed
