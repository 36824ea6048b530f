"""The latency/throughput driver: closed-loop ``tools/call`` echo at several concurrencies.

Each concurrency level of one system and transport, in increasing order, gets a fresh
server process, so that each starts as the first does: the sessions a level leaves
outlive it (an ``/sse`` session by ``resume_grace`` after its stream closed), and a
later level on the same process would run beside them. Each level opens its sessions
(one POST connection each, as a client has), warms up, then measures a window in which
every session calls ``echo`` again as soon as its previous call is answered. Latency is
from sending the POST to having the reply (on the SSE stream for ``/sse``, in the POST's
answer for ``/mcp``). The server's and the load process's CPU over the window show which
side was the bottleneck.

A Redis-backed system (issue 14) is its workers and the redis-server they share (see
:mod:`.deployment`), fresh for each level like any server: the server's CPU is
then every worker's and redis-server's, so that ``calls_per_cpu_second`` charges a call
with all it cost, and Redis's commands over the window are counted. With two workers
the runs are the crossing cost first (one session whose POSTs go to the worker that
holds its stream, then one whose POSTs go to the other), then each concurrency spread
over both as a round-robin balancer would (see :mod:`.routing`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .config import RunConfig
from .deployment import Deployment
from .progress import Progress
from .redisserver import commands_between
from .routing import echo_levels
from .servers import System
from .stats import summary
from .workers import LoadWorkers


def _row(system: System, transport: str) -> dict[str, Any]:
    row: dict[str, Any] = {"system": system.name, "host": system.host, "transport": transport}
    if system.redis:
        row |= {"redis": True, "server_workers": system.server_workers}
    return row


def run_latency(
    config: RunConfig,
    workers: LoadWorkers,
    system: System,
    transport: str,
    server_command: list[str],
    progress: Progress,
) -> list[dict[str, Any]]:
    results = []
    at_window: dict[str, Any] = {}
    deployment: Deployment | None = None

    def on_window(index: int, message: dict[str, Any]) -> None:
        assert deployment is not None
        at_window["cpu"] = deployment.cpu()
        at_window["commands"] = deployment.commandstats()
        deployment.gc_stats()  # counts from here on

    levels = echo_levels(system.server_workers, config.concurrency, config.routings)
    for level, (routing, sessions) in enumerate(levels):
        progress.update(level, len(levels), f"{sessions} sessions")
        result = _row(system, transport) | {"sessions": sessions}
        if system.server_workers > 1:
            result["routing"] = routing
        at_window.clear()
        try:
            # A fresh server side for each level, whatever the levels before it left
            # (an /sse session outlives its stream by resume_grace).
            deployment = Deployment(
                config,
                system,
                transport,
                server_command,
                f"{system.name}-{transport}-latency-{level + 1}",
            )
            deployment.wait_ready()
            command = {
                "op": "calls",
                "transport": transport,
                "host": "127.0.0.1",
                "port": deployment.ports[0],
                "ports": deployment.ports,
                "routing": routing,
                "sources": config.sources,
                "sessions": sessions,
                "warmup": config.warmup,
                "duration": config.duration,
            }
            timeout = config.warmup + config.duration + 120
            reply = workers.command({0: command}, "calls", on_window, timeout)[0]
            cpu = deployment.cpu()
            begun = at_window.get("cpu", cpu)
            spent = {part: cpu[part] - begun[part] for part in cpu}
            server_cpu = spent["workers"] + spent["redis"]
            collector = deployment.gc_stats()
            window = reply["window"]
            calls = len(reply["latencies"])
            result.update(
                {
                    "calls": calls,
                    "calls_per_s": reply["calls_per_s"],
                    "latency": summary(reply["latencies"]),
                    "errors": reply["errors"],
                    "window": window,
                    "server_cpu_percent": server_cpu / window * 100,
                    "calls_per_cpu_second": calls / server_cpu if server_cpu else math.nan,
                    "load_cpu_percent": reply["load_cpu"] / window * 100,
                    "gc": collector,
                    "gc_measured": system.gc_hooks,
                }
            )
            if system.redis:
                commands = commands_between(
                    at_window.get("commands", {}), deployment.commandstats()
                )
                result.update(
                    {
                        "worker_cpu_percent": spent["workers"] / window * 100,
                        "redis_cpu_percent": spent["redis"] / window * 100,
                        "redis_commands": commands,
                        "redis_commands_per_call": sum(commands.values()) / calls
                        if calls
                        else math.nan,
                    }
                )
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if deployment is not None:
                deployment.stop()
                deployment = None
        results.append(result)
        time.sleep(config.pause_seconds)
    progress.update(len(levels), len(levels), "done")
    return results
