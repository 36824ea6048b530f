"""``python -m benchmarks``: idle capacity and latency of trio-mcp beside the official SDK.

Every run measures, on this machine and in the same run: trio-mcp (``/sse``, ``/mcp``
and MCP 2026-07-28's stateless wire on ``/mcp``) under each host (hypercorn's trio
worker, hypercorn's asyncio worker, uvicorn with uvloop and httptools), the official
Python SDK on uvicorn (installed into ``benchmarks/.venv-sdk``; the stateless wire too),
the official TypeScript SDK on express (installed into ``benchmarks/.node-sdk``), and
the floors (a bare ASGI SSE app and a bare quart-trio SSE route on hypercorn's trio
worker; the bare app again on uvicorn, in trio as a guest and in pure asyncio).
Servers run on one core, the load generator on another. The report goes to stdout;
``--json`` keeps every raw figure, ``--plot`` draws the idle sweep. The attack section
then runs trio-mcp's echo loop under each host alone and beside hostile clients, and
the bare floors' beside a mass disconnect (``--attacks`` runs it alone,
``--no-attacks`` skips it). The Redis section (issue 14)
measures trio-mcp's hosts with their sessions on a redis-server the harness starts, and
two workers on one Redis, beside the same hosts in memory (``--redis`` runs it alone,
``--no-redis`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from . import nodeenv, redisserver, report, sdkenv
from .attacks import attacks_for, run_attacks, takes_attacks
from .config import ATTACKS, STATELESS, RunConfig
from .idle import run_idle
from .latency import run_latency
from .machine import describe
from .mcpclient import PROTOCOLS
from .proc import fd_limit, pin_to_core, raise_fd_limit
from .progress import Progress
from .repeats import median_runs
from .routing import AT_LOAD
from .servers import (
    NODE,
    PROJECT,
    PROJECT_LAUNCHER,
    PYTHON_SDK,
    REDIS_SYSTEMS,
    REDIS_TRANSPORTS,
    SYSTEM_NAMES,
    SYSTEMS,
    TRANSPORTS,
    Launcher,
    System,
)
from .workers import LoadWorkers

SYSTEMS_BY_NAME = {system.name: system for system in SYSTEMS}

SMOKE = {
    "sizes": "40",
    "listen_sizes": "40",
    "redis_sizes": "40",
    # 64: the level the targets are judged at, so that every target is computed.
    "concurrency": "1,64",
    "heartbeat": 0.5,
    "idle_seconds": 1.2,
    "settle_seconds": 0.2,
    # The warm-up sessions' ends then count as idle traffic: not checked in a smoke run.
    "redis_drain": 0.1,
    "pause_seconds": 0.1,
    "duration": 1.0,
    "warmup": 0.3,
    "workers": 2,
    "sessions_per_worker": 20,
    # The attack section at a tenth of its size or less, its bounds acting within 1 s.
    "stalled_readers": 5,
    "flood_requests": 8,
    "trickled_bodies": 5,
    "trickle_interval": 0.2,
    "burst_connections": 100,
    "burst_repeats": 1,
    "disconnect_sessions": 100,
    "stalled_client_timeout": 0.5,
    "body_timeout": 0.5,
    "resume_grace": 0.5,
    "keep_alive_timeout": 0.5,
    "settle_limit": 10.0,
}


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds' run for CI")
    parser.add_argument("--sizes", help="idle sessions to hold, comma-separated")
    parser.add_argument("--concurrency", help="sessions for the echo runs, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEM_NAMES))
    parser.add_argument(
        "--transports", help="which transports, comma-separated (all; with --redis, sse,mcp)"
    )
    parser.add_argument(
        "--listen-sizes",
        help="idle subscriptions/listen streams to hold on the stateless wire (5000)",
    )
    parser.add_argument("--heartbeat", type=float, help="heartbeat interval, s (15)")
    parser.add_argument("--idle-seconds", type=float, help="idle window, s (60)")
    parser.add_argument("--duration", type=float, help="measured echo window, s (10)")
    parser.add_argument("--warmup", type=float, help="echo warm-up, s (2)")
    parser.add_argument("--workers", type=int, help="load-generator processes (4)")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle sweep")
    parser.add_argument("--no-latency", action="store_true", help="skip the echo runs")
    parser.add_argument(
        "--attacks",
        action="store_true",
        help="run the attack section only (trio-mcp's hosts; the bare floors, mass disconnect)",
    )
    parser.add_argument("--no-attacks", action="store_true", help="skip the attack section")
    parser.add_argument(
        "--attack-kinds",
        default=",".join(ATTACKS),
        help="which attacks, comma-separated (all five)",
    )
    parser.add_argument(
        "--attack-sessions", type=int, help="well-behaved sessions beside each attack (8)"
    )
    parser.add_argument(
        "--disconnect-sessions",
        type=int,
        help="idle /sse sessions that leave at once in the mass disconnect (3000)",
    )
    parser.add_argument(
        "--redis", action="store_true", help="run the Redis section only (issue 14)"
    )
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis section")
    parser.add_argument(
        "--redis-sizes", help="idle sessions for the Redis-backed systems, comma-separated (10000)"
    )
    parser.add_argument(
        "--redis-core",
        help="the core redis-server runs on: a number, or 'any' (default: the server core)",
    )
    parser.add_argument(
        "--redis-server",
        choices=["auto", "require"],
        default="auto",
        help="auto: leave the Redis section out if redis-server or coredis is missing",
    )
    parser.add_argument(
        "--no-collect",
        action="store_true",
        help="do not ask servers for a full GC before the idle window",
    )
    parser.add_argument(
        "--sdk",
        choices=["auto", "require", "skip"],
        default="auto",
        help="auto: measure the Python SDK if its venv can be made; require: fail if not",
    )
    parser.add_argument(
        "--ts-sdk",
        choices=["auto", "require", "skip"],
        default="auto",
        help="the same for the TypeScript SDK (node and npm)",
    )
    parser.add_argument(
        "--echo-runs",
        type=int,
        default=1,
        help="measure each echo level this many times, in rounds over the systems, and "
        "report its median run (1)",
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument(
        "--worker-cores",
        choices=("own", "server", "any"),
        default="own",
        help="where a several-worker system's workers run: each on its own core from "
        "the server core on (own), all on the server core (server), or anywhere (any)",
    )
    parser.add_argument(
        "--routings",
        default=",".join(AT_LOAD),
        help="a several-worker system's levels at load: owner, cross, spread "
        "(comma-separated; the one-session crossing cost runs with owner and cross)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    parser.add_argument("--plot", type=Path, help="write the idle sweep's PNG here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> RunConfig:
    preset: dict[str, Any] = dict(SMOKE) if args.smoke else {}
    redis_sizes = args.redis_sizes or preset.pop("redis_sizes", "10000")
    # The Redis section alone measures its in-memory systems at the Redis sizes, so
    # that each Redis-backed session has an in-memory one at the same N beside it.
    sizes = args.sizes or (
        redis_sizes if args.redis else preset.pop("sizes", "1000,5000,10000,19000")
    )
    concurrency = args.concurrency or preset.pop("concurrency", "1,16,64")
    listen_sizes = args.listen_sizes or preset.pop("listen_sizes", "5000")
    for name in ("sizes", "concurrency", "listen_sizes", "redis_sizes"):
        preset.pop(name, None)
    for name in ("heartbeat", "idle_seconds", "duration", "warmup", "workers"):
        value = getattr(args, name)
        if value is not None:
            preset[name] = value
    if args.echo_runs < 1:
        raise SystemExit("--echo-runs is at least 1")
    preset["echo_runs"] = args.echo_runs
    if args.attack_sessions is not None:
        preset["attack_sessions"] = args.attack_sessions
    if args.disconnect_sessions is not None:
        preset["disconnect_sessions"] = args.disconnect_sessions
    unknown = set(_names(args.systems)) - set(SYSTEM_NAMES)
    if unknown:
        raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")
    if args.transports is None:
        args.transports = ",".join(REDIS_TRANSPORTS if args.redis else TRANSPORTS)
    unknown = set(_names(args.transports)) - set(TRANSPORTS)
    if unknown:
        raise SystemExit(f"unknown transports: {', '.join(sorted(unknown))}")
    unknown = set(_names(args.attack_kinds)) - set(ATTACKS)
    if unknown:
        raise SystemExit(f"unknown attacks: {', '.join(sorted(unknown))}")
    if args.attacks and args.no_attacks:
        raise SystemExit("--attacks runs the attack section alone; --no-attacks skips it")
    if args.redis and args.no_redis:
        raise SystemExit("--redis runs the Redis section alone; --no-redis skips it")
    if args.redis and args.attacks:
        raise SystemExit("--redis and --attacks each run one section alone")
    unknown = set(_names(args.routings)) - set(AT_LOAD)
    if unknown:
        raise SystemExit(f"unknown routings: {', '.join(sorted(unknown))}")
    if args.redis_core is None:
        redis_core: int | None = args.server_core
    elif args.redis_core == "any":
        redis_core = None
    else:
        redis_core = int(args.redis_core)
    return RunConfig(
        sizes=_ints(sizes),
        concurrency=_ints(concurrency),
        systems=_names(args.systems),
        transports=_names(args.transports),
        listen_sizes=_ints(listen_sizes),
        redis_sizes=_ints(redis_sizes),
        redis_core=redis_core,
        server_core=args.server_core,
        load_core=args.load_core,
        worker_cores=args.worker_cores,
        routings=tuple(_names(args.routings)),
        out_dir=args.out,
        collect=not args.no_collect,
        attacks=[kind for kind in ATTACKS if kind in _names(args.attack_kinds)],
        **preset,
    )


def idle_sizes(config: RunConfig, system: System, transport: str) -> list[int]:
    """The idle sweep's sizes for one system and transport: on the stateless wire, the
    listen sizes for the systems that hold idle listen streams, and none for the rest;
    the Redis sizes for a Redis-backed system, none for one that does not idle."""
    if not system.idles:
        return []
    if system.redis:
        return config.redis_sizes
    if transport != STATELESS:
        return config.sizes
    return config.listen_sizes if system.listens else []


def ts_sdk_stateless_note(versions: list[str], sdk_version: str) -> str:
    """Why the TypeScript SDK has no row on the stateless wire, from what it serves."""
    wanted = PROTOCOLS[STATELESS]
    if wanted in versions:
        return (
            f"ts-sdk /{STATELESS} not measured: @modelcontextprotocol/sdk {sdk_version} "
            f"lists {wanted}, but the harness has no stateless server script for it yet"
        )
    served = ", ".join(versions) if versions else "(its versions could not be read)"
    return (
        f"ts-sdk /{STATELESS} not measured: @modelcontextprotocol/sdk {sdk_version} serves "
        f"{served}, not {wanted}; its Streamable HTTP transport answers "
        f"MCP-Protocol-Version: {wanted} with 400 (unsupported protocol version)"
    )


def redis_section(names: list[str]) -> list[str]:
    """The systems the Redis section alone measures: the Redis-backed ones among
    ``names``, and each one's counterpart (its host in memory; for two workers, one
    worker on Redis, and its host in memory in turn), in the harness's order."""
    wanted = {name for name in names if name in REDIS_SYSTEMS}
    for name in list(wanted):
        while (name := SYSTEMS_BY_NAME[name].compared_with or "") and name not in wanted:
            wanted.add(name)
    return [system.name for system in SYSTEMS if system.name in wanted]


def _attacked(system: System, config: RunConfig) -> bool:
    """Whether the attack section measures this system: one it takes, with at least one
    of the run's attacks (a floor takes the mass disconnect only)."""
    return takes_attacks(system) and bool(attacks_for(system, config.attacks))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = make_config(args)
    if args.attacks:
        args.no_idle = args.no_latency = True
        # Nor are the other systems' runtimes made (the SDKs' environments).
        config.systems = [n for n in config.systems if _attacked(SYSTEMS_BY_NAME[n], config)]
    if args.redis:
        args.no_attacks = True
        config.systems = redis_section(config.systems)
    elif args.no_redis:
        config.systems = [n for n in config.systems if n not in REDIS_SYSTEMS]
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()
    # The orchestrator mostly sleeps; it stays off the server's core all the same.
    pin_to_core(config.load_core)
    notes = [f"fd limit per process: {fd_limit():,}"]

    launchers: dict[str, Launcher] = {PROJECT: PROJECT_LAUNCHER}
    sdk_python: str | None = None
    if "sdk" in config.systems and args.sdk != "skip":
        try:
            sdk_python = str(sdkenv.ensure())
            launchers[PYTHON_SDK] = Launcher(sdk_python)
        except sdkenv.SdkUnavailable as exc:
            if args.sdk == "require":
                print(f"the Python SDK is required but unavailable: {exc}", file=sys.stderr)
                return 2
            notes.append(f"SDK not measured: {exc}".splitlines()[0])
    node_versions: dict[str, str] | None = None
    if "ts-sdk" in config.systems and args.ts_sdk != "skip":
        try:
            node = nodeenv.ensure()
            launchers[NODE] = Launcher(node, nodeenv.ENV)
            node_versions = nodeenv.versions(node)
            if STATELESS in config.transports:
                sdk_version = node_versions.get("@modelcontextprotocol/sdk", "?")
                notes.append(ts_sdk_stateless_note(nodeenv.protocol_versions(node), sdk_version))
        except nodeenv.TsSdkUnavailable as exc:
            if args.ts_sdk == "require":
                print(f"the TypeScript SDK is required but unavailable: {exc}", file=sys.stderr)
                return 2
            notes.append(f"TypeScript SDK not measured: {exc}".splitlines()[0])
    redis_version: str | None = None
    if any(name in REDIS_SYSTEMS for name in config.systems):
        try:
            redis_version = redisserver.ensure()
        except redisserver.RedisUnavailable as exc:
            if args.redis_server == "require":
                print(f"Redis is required but unavailable: {exc}", file=sys.stderr)
                return 2
            notes.append(f"Redis section not measured: {exc}")
            # Alone, the section has nothing left to measure: its in-memory systems are
            # there only to be set beside the Redis-backed ones.
            kept = [] if args.redis else config.systems
            config.systems = [n for n in kept if n not in REDIS_SYSTEMS]
    # A system whose runtime could not be made is left out (and the notes say why).
    config.systems = [name for name in config.systems if SYSTEMS_BY_NAME[name].runtime in launchers]
    machine = describe(sdkenv.versions(Path(sdk_python)) if sdk_python else None, node_versions)
    if redis_version is not None:
        machine["redis_server"] = redis_version

    plan = [
        (system, transport)
        for system in SYSTEMS
        if system.name in config.systems
        for transport in system.transports
        if transport in config.transports
    ]
    attacked = [] if args.no_attacks else [s for s in SYSTEMS if s.name in config.systems]
    attacked = [system for system in attacked if _attacked(system, config)]
    idle_runs = sum(len(idle_sizes(config, system, transport)) for system, transport in plan)
    echo_runs = 0 if args.no_latency else len(plan) * config.echo_runs
    steps = echo_runs + (0 if args.no_idle else idle_runs) + len(attacked)
    progress = Progress(steps, enabled=not args.quiet)
    results: dict[str, Any] = {
        "command": command,
        "machine": machine,
        # The Redis section alone: the report shows it and its targets only.
        "redis_only": args.redis,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "idle": [],
        "latency": [],
        # Every echo run, when each level ran several times (--echo-runs); "latency"
        # then holds each level's median run.
        "latency_runs": [],
        "attacks": [],
        "targets": [],
        "notes": notes,
    }
    workers = LoadWorkers(config.workers, config.load_core)
    try:
        for system, transport in plan:
            server_command = launchers[system.runtime].command(system)
            if not args.no_latency:
                progress.begin(f"{system.name} /{transport} echo")
                results["latency_runs"] += run_latency(
                    config, workers, system, transport, server_command, progress
                )
            if not args.no_idle:
                for size in idle_sizes(config, system, transport):
                    progress.begin(f"{system.name} /{transport} idle N={size:,}")
                    results["idle"].append(
                        run_idle(config, workers, system, transport, size, server_command, progress)
                    )
        # The further echo rounds, each in the order opposite to the one before.
        for round_ in range(1, 0 if args.no_latency else config.echo_runs):
            for system, transport in plan[:: -1 if round_ % 2 else 1]:
                progress.begin(f"{system.name} /{transport} echo, run {round_ + 1}")
                server_command = launchers[system.runtime].command(system)
                results["latency_runs"] += run_latency(
                    config, workers, system, transport, server_command, progress
                )
        for system in attacked:
            progress.begin(f"{system.name} /sse attacks")
            server_command = launchers[system.runtime].command(system)
            results["attacks"] += run_attacks(config, workers, system, server_command, progress)
    finally:
        progress.finish()
        workers.close()

    results["latency"] = median_runs(results["latency_runs"])
    if config.echo_runs == 1:
        del results["latency_runs"]  # the same rows
    results["targets"] = [t.as_dict() for t in report.targets(results["idle"], results["latency"])]
    print(report.render(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    in_memory = [r for r in results["idle"] if not r.get("redis")]
    if args.plot and in_memory:
        from .plot import plot_idle

        title = f"{machine['cpu']}, {machine['cores']} cores; heartbeat {config.heartbeat:g} s"
        plot_idle(in_memory, args.plot, title)
    echoes = results.get("latency_runs", results["latency"])
    failed = [r for r in results["idle"] + echoes + results["attacks"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
