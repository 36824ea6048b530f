"""The idle-capacity driver: open N sessions, initialize them, hold them, measure.

One measurement is one fresh server process:

1. start the server and open a few sessions once, so that imports and caches that the
   first session fills are not charged to the N that follow; then read its RSS (on
   Redis, once the server has ended those sessions: see ``RunConfig.redis_drain``);
2. open N sessions from several load processes, each session initialized
   (``initialize`` answered, ``notifications/initialized`` sent) and its stream held;
3. ask the server for one full garbage collection (see ``servers/_common.py``; not
   Node, whose collector runs on its own schedule), let it settle, then measure an idle
   window: server CPU time over the window (heartbeats are all the server does), the
   heartbeat intervals each stream observed, streams the server ended, and the server's
   RSS at the end;
4. close everything and stop the server.

RSS per session is (RSS after - RSS before) / sessions established.

A Redis-backed system (issue 14) gets a fresh redis-server with its server (see
:mod:`.deployment`), and the same figures for it beside the worker's: its RSS growth
and its allocator's (``used_memory``) per session, its CPU over the idle window, and
every command it ran in the window (``INFO commandstats`` before and after), which is
what idle sessions cost Redis in traffic.
"""

from __future__ import annotations

import math
import time
from typing import Any

from .config import RunConfig
from .deployment import Deployment
from .proc import open_fds
from .progress import Progress
from .redisserver import commands_between
from .servers import System
from .stats import summary
from .workers import LoadWorkers

#: Sessions opened and closed before the baseline RSS is read.
WARMUP_SESSIONS = 20


def _open_command(
    config: RunConfig, transport: str, port: int, count: int, first_index: int
) -> dict[str, Any]:
    return {
        "op": "open",
        "transport": transport,
        "host": "127.0.0.1",
        "port": port,
        "sources": config.sources,
        "n": count,
        "first_index": first_index,
        "concurrency": config.establish_concurrency,
        "pool": config.pool_size,
    }


def _split(total: int, config: RunConfig, workers: int) -> list[int]:
    """Sessions per load process: as few processes as hold them within their limit."""
    needed = max(1, min(workers, math.ceil(total / config.sessions_per_worker)))
    base, extra = divmod(total, needed)
    return [base + (1 if index < extra else 0) for index in range(needed)]


def run_idle(
    config: RunConfig,
    workers: LoadWorkers,
    system: System,
    transport: str,
    count: int,
    server_command: list[str],
    progress: Progress,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "system": system.name,
        "host": system.host,
        "transport": transport,
        "n": count,
        "heartbeat": config.heartbeat,
        "idle_seconds": config.idle_seconds,
        "collected_before_window": config.collect and system.gc_hooks,
    }
    if system.redis:
        result["redis"] = True
    server: Deployment | None = None
    try:
        # Sessions are held on the first worker (the Redis-backed systems that idle
        # have one).
        server = Deployment(
            config, system, transport, server_command, f"{system.name}-{transport}-idle-{count}"
        )
        server.wait_ready()
        port = server.ports[0]
        workers.command({0: _open_command(config, transport, port, WARMUP_SESSIONS, 0)}, "opened")
        workers.command({0: {"op": "close"}}, "closed")
        # On Redis a session's end is traffic (its registry entry deleted): the warm-up
        # sessions, whose streams just closed, end resume_grace later, which must not
        # land in the idle window. In memory the old way stands (nothing to count).
        time.sleep(config.redis_drain if system.redis else config.pause_seconds)
        rss_before = server.worker_rss()
        redis_before = server.redis_memory()

        shares = _split(count, config, len(workers))
        commands = {}
        first = 0
        for index, share in enumerate(shares):
            commands[index] = _open_command(config, transport, port, share, first)
            first += share
        done = dict.fromkeys(commands, 0)

        def on_progress(index: int, message: dict[str, Any]) -> None:
            done[index] = message["done"]
            progress.update(sum(done.values()), count, "sessions")

        begun = time.perf_counter()
        opened = workers.command(commands, "opened", on_progress)
        establish_wall = time.perf_counter() - begun
        progress.update(count, count, "sessions")

        if config.collect:
            server.collect()
        time.sleep(config.settle_seconds)
        workers.each(commands, {"op": "mark"}, "marked")
        server.gc_stats()  # counts from here on
        redis_begun = server.commandstats()
        cpu_begun, window_begun = server.cpu(), time.perf_counter()
        _sleep_with_progress(config.idle_seconds, progress)
        cpu_ended = server.cpu()
        window = time.perf_counter() - window_begun
        redis_commands = commands_between(redis_begun, server.commandstats())
        cpu = cpu_ended["workers"] - cpu_begun["workers"]
        collector = server.gc_stats()
        rss_after = server.worker_rss()
        redis_after = server.redis_memory()
        fds = sum(open_fds(worker.pid) for worker in server.workers)
        reports = workers.each(commands, {"op": "report"}, "report")
        workers.each(commands, {"op": "close"}, "closed")

        established = sum(reply["established"] for reply in opened.values())
        errors: dict[str, int] = {}
        for reply in opened.values():
            for name, times in reply["errors"].items():
                errors[name] = errors.get(name, 0) + times
        durations = [d for reply in opened.values() for d in reply["durations"]]
        intervals = [i for reply in reports.values() for i in reply["intervals"]]
        result.update(
            {
                "established": established,
                "failed": sum(reply["failed"] for reply in opened.values()),
                "errors": errors,
                "establish_seconds": establish_wall,
                "establish_latency": summary(durations),
                "rss_before": rss_before,
                "rss_after": rss_after,
                "rss_per_session": (rss_after - rss_before) / established
                if established
                else math.nan,
                "idle_cpu_seconds": cpu,
                "idle_window": window,
                "gc": collector,
                "gc_measured": system.gc_hooks,
                "cpu_seconds_per_minute": cpu / window * 60,
                "cpu_percent": cpu / window * 100,
                "heartbeats": sum(reply["beats"] for reply in reports.values()),
                "heartbeat_interval": summary(intervals),
                "closed_by_server": sum(reply["closed_by_server"] for reply in reports.values()),
                "server_fds": fds,
                "load_processes": len(shares),
            }
        )
        if system.redis:
            redis_cpu = cpu_ended["redis"] - cpu_begun["redis"]
            result.update(
                {
                    "redis_rss_before": redis_before["rss"],
                    "redis_rss_after": redis_after["rss"],
                    "redis_rss_per_session": (redis_after["rss"] - redis_before["rss"])
                    / established
                    if established
                    else math.nan,
                    "redis_used_memory_per_session": (redis_after["used"] - redis_before["used"])
                    / established
                    if established
                    else math.nan,
                    "redis_cpu_seconds": redis_cpu,
                    "redis_cpu_percent": redis_cpu / window * 100,
                    "redis_commands": redis_commands,
                    "redis_commands_per_minute": sum(redis_commands.values()) / window * 60,
                }
            )
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        try:
            workers.each(range(len(workers)), {"op": "close"}, "closed", 60)
        except Exception:
            pass
    finally:
        if server is not None:
            server.stop()
    return result


def _sleep_with_progress(seconds: float, progress: Progress) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        progress.update(int(seconds - left), int(seconds), "s idle")
        time.sleep(min(1.0, left))
    progress.update(int(seconds), int(seconds), "s idle")
