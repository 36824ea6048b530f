"""The attack section (issue 15): a well-behaved session's echo loop alone, then beside
each hostile client in turn, and what the attack cost it and the server.

One fresh trio-mcp server per host, started with its bounds shortened so that they act
within the window (``stalled_client_timeout``, ``body_timeout``, ``resume_grace``) and
with the ``big`` tool that clients who stop reading ask for. On it, in order:

1. *alone*: ``attack_sessions`` sessions on ``/sse`` call ``echo`` in a closed loop for
   the warm-up and the measured window, as the echo section does;
2. for each attack (:mod:`.attackers`): arm it, run the same echo loop, strike when its
   measured window opens (so the window sees the attack's onset and its steady state),
   disarm it once the window closes, then wait (at most ``settle_limit``) for the
   server's descriptors to fall back to what the fresh server had.

The echo loop runs in load worker 0, the attack in load worker 1, both on the load core:
the load CPU column adds both, so a run whose load core was the bottleneck shows it. The
server's peak RSS comes from the kernel's own high-water mark (``VmHWM``), reset when
the window opens, so no spike between two samples is missed.

The bare floors (``servers/_floor.py``) take the mass disconnect too, the one attack
that needs nothing of the server but ``/sse`` sessions: beside trio-mcp under the same
host, their row says how much of a departure's stall is the host's own work on the
closed connections, which no app can spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import RunConfig
from .proc import (
    cpu_seconds,
    held_connections,
    open_fds,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
)
from .progress import Progress
from .servers import ServerProcess, System
from .stats import summary
from .workers import LoadWorkers

#: The load workers the section uses: the echo loop's, and the attack's.
ECHO, ATTACKER = 0, 1
#: Attackers' client indices start here, so that their source addresses and ports are
#: spread independently of the echo sessions'.
FIRST_INDEX = 1_000
#: Seconds beyond the window an attack may run if never disarmed, and a worker may take
#: to answer beyond what its command itself takes.
MARGIN = 120.0


#: The floors whose script is the bare app (servers/_floor.py), one per host trio-mcp
#: runs on but hypercorn's asyncio worker, which has none.
BARE_FLOORS = ("floor-hypercorn", "floor-trio@uvicorn", "floor-asyncio@uvicorn")
#: What a bare floor takes: it has no big tool, no /mcp and no bounds to shorten.
FLOOR_ATTACKS = ("mass-disconnect",)


def takes_attacks(system: System) -> bool:
    """Whether the section measures this system: trio-mcp, under each of its hosts, in
    memory (the Redis section measures it on Redis), and the bare floors (the mass
    disconnect only; the other scripts have neither the big tool nor the bounds)."""
    trio_mcp = system.script == "trio_mcp_server.py" and not system.redis
    return trio_mcp or system.name in BARE_FLOORS


def attacks_for(system: System, kinds: list[str]) -> list[str]:
    """The attacks among ``kinds`` this system takes, in the section's order."""
    if system.name in BARE_FLOORS:
        return [kind for kind in kinds if kind in FLOOR_ATTACKS]
    return list(kinds)


def server_args(config: RunConfig, system: System) -> list[str]:
    """The server script's flags for the attack section: for trio-mcp, the big tool and
    its bounds shortened; for a floor, only its host's keep-alive, as trio-mcp's."""
    keep_alive = ["--keep-alive-timeout", str(config.keep_alive_timeout)]
    if system.name in BARE_FLOORS:
        return keep_alive
    return [
        "--big-replies",
        "--stalled-client-timeout",
        str(config.stalled_client_timeout),
        "--body-timeout",
        str(config.body_timeout),
        "--resume-grace",
        str(config.resume_grace),
        *keep_alive,
    ]


def arm_command(config: RunConfig, kind: str, port: int) -> dict[str, Any]:
    """What the attack worker is told to arm (see attackers.make_attack)."""
    command: dict[str, Any] = {
        "op": "arm",
        "kind": kind,
        "host": "127.0.0.1",
        "port": port,
        "sources": config.sources,
        "first_index": FIRST_INDEX,
    }
    stopped_readers = {"reply_bytes": config.reply_bytes, "receive_buffer": config.receive_buffer}
    if kind == "stalled-readers":
        command |= {"clients": config.stalled_readers, "requests": 1, **stopped_readers}
    elif kind == "flooded-session":
        command |= {"clients": 1, "requests": config.flood_requests, **stopped_readers}
    elif kind == "trickled-bodies":
        command |= {"clients": config.trickled_bodies, "interval": config.trickle_interval}
    elif kind == "connect-burst":
        command |= {
            "clients": config.burst_connections,
            "repeats": config.burst_repeats,
            "every": config.duration / config.burst_repeats,
        }
    elif kind == "mass-disconnect":
        command |= {
            "clients": config.disconnect_sessions,
            "concurrency": config.establish_concurrency,
            "pool": config.pool_size,
        }
    else:
        raise ValueError(f"unknown attack {kind!r}")
    return command


def run_attacks(
    config: RunConfig,
    workers: LoadWorkers,
    system: System,
    server_command: list[str],
    progress: Progress,
) -> list[dict[str, Any]]:
    """One row per attack this system takes, each with the echo loop's figures alone."""
    if len(workers) < 2:
        raise ValueError("the attack section needs two load workers (--workers 2 or more)")
    base = {
        "system": system.name,
        "host": system.host,
        "transport": "sse",
        "sessions": config.attack_sessions,
        "floor": system.floor,
    }
    server = ServerProcess(
        system,
        "sse",
        command=server_command,
        heartbeat=config.heartbeat,
        core=config.server_core,
        log_path=Path(config.out_dir) / "logs" / f"{system.name}-attacks.log",
        extra_args=server_args(config, system),
    )
    rows: list[dict[str, Any]] = []
    kinds = attacks_for(system, config.attacks)
    steps = len(kinds) + 1
    try:
        server.wait_ready()
        # The readiness probe's connection gone, what the fresh server holds open.
        _settle(server, None, config.settle_limit)
        fresh_fds = open_fds(server.pid)
        progress.update(0, steps, "alone")
        alone = _echo(config, workers, server, lambda: None)
        _settle(server, fresh_fds, config.settle_limit)
        for step, kind in enumerate(kinds, 1):
            progress.update(step, steps, kind)
            row: dict[str, Any] = {**base, "attack": kind, "alone": alone}
            try:
                row |= _attack(config, workers, server, kind, fresh_fds)
                row["p99_ratio"] = row["beside"]["latency"]["p99"] / alone["latency"]["p99"]
                row["excess_cpu_seconds"] = excess_cpu_seconds(alone, row["beside"])
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            time.sleep(config.pause_seconds)
        progress.update(steps, steps, "done")
    except Exception as exc:
        rows.append({**base, "attack": "alone", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        server.stop()
    return rows


def excess_cpu_seconds(alone: dict[str, Any], beside: dict[str, Any]) -> float:
    """The server's CPU seconds over the window beside an attack beyond what the calls
    it served there cost alone (at the alone run's CPU per call): what the attack cost
    it. An estimate: a server's CPU per call shifts a little with its load."""
    per_call = alone["server_cpu_seconds"] / alone["calls"] if alone["calls"] else math.nan
    return float(beside["server_cpu_seconds"] - beside["calls"] * per_call)


def _attack(
    config: RunConfig, workers: LoadWorkers, server: ServerProcess, kind: str, fresh_fds: int
) -> dict[str, Any]:
    if not server.alive():
        raise RuntimeError(f"the server exited before this attack; see {server.log_path}")
    rss_before = rss_bytes(server.pid)
    armed = workers.command(
        {ATTACKER: arm_command(config, kind, server.port)}, "armed", timeout=MARGIN * 2
    )[ATTACKER]
    if "error" in armed:
        raise RuntimeError(f"arming {kind} failed: {armed['error']}")
    limit = config.warmup + config.duration + MARGIN

    def strike() -> None:
        workers.post(ATTACKER, {"op": "strike", "limit": limit})

    try:
        beside = _echo(config, workers, server, strike)
    finally:
        outcome = workers.command({ATTACKER: {"op": "disarm"}}, "disarmed", timeout=MARGIN)
    rss_peak = peak_rss_bytes(server.pid)  # since the window opened, the disarm included
    fds_after, connections_after, settled = _settle(server, fresh_fds, config.settle_limit)
    return {
        "beside": beside,
        "armed": {key: value for key, value in armed.items() if key != "op"},
        "outcome": outcome[ATTACKER]["outcome"],
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "rss_after": rss_bytes(server.pid),
        "fds_fresh": fresh_fds,
        "fds_after": fds_after,
        "connections_after": connections_after,
        "settle_seconds": settled,
        "server_alive": server.alive(),
    }


def _echo(
    config: RunConfig,
    workers: LoadWorkers,
    server: ServerProcess,
    at_window: Callable[[], None],
) -> dict[str, Any]:
    """The well-behaved sessions' closed loop; ``at_window()`` runs as its measured
    window opens. Its figures, with the server's and the load core's CPU over the
    window (the attacker's too: it shares the load core) and the server's peak RSS."""
    marks: dict[str, float] = {}
    attacker = workers.pids[ATTACKER]

    def on_window(index: int, message: dict[str, Any]) -> None:
        marks["server"] = cpu_seconds(server.pid)
        marks["attacker"] = cpu_seconds(attacker)
        reset_peak_rss(server.pid)
        at_window()

    command = {
        "op": "calls",
        "transport": "sse",
        "host": "127.0.0.1",
        "port": server.port,
        "sources": config.sources,
        "sessions": config.attack_sessions,
        "warmup": config.warmup,
        "duration": config.duration,
    }
    timeout = config.warmup + config.duration + MARGIN
    reply = workers.command({ECHO: command}, "calls", on_window, timeout)[ECHO]
    window = reply["window"]
    server_cpu = cpu_seconds(server.pid) - marks["server"]
    attacker_cpu = cpu_seconds(attacker) - marks["attacker"]
    return {
        "calls": len(reply["latencies"]),
        "calls_per_s": reply["calls_per_s"],
        "latency": summary(reply["latencies"]),
        "errors": reply["errors"],
        "window": window,
        "server_cpu_seconds": server_cpu,
        "server_cpu_percent": server_cpu / window * 100,
        "load_cpu_percent": (reply["load_cpu"] + attacker_cpu) / window * 100,
        "rss_peak": peak_rss_bytes(server.pid),
    }


def _settle(server: ServerProcess, fresh_fds: int | None, limit: float) -> tuple[int, int, float]:
    """Wait (at most ``limit`` s) until the server holds no connection and, once
    ``fresh_fds`` is known, no more descriptors than when it was fresh. Returns its
    descriptors and connections then, and how long that took."""
    began = time.monotonic()
    while True:
        fds, connections = open_fds(server.pid), held_connections(server.port)
        waited = time.monotonic() - began
        let_go = connections == 0 and (fresh_fds is None or fds <= fresh_fds)
        if let_go or waited >= limit:
            return fds, connections, waited
        time.sleep(0.05)
