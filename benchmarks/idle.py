"""The idle-capacity driver: open N sessions, initialize them, hold them, measure.

One measurement is one fresh server process:

1. start the server and open a few sessions once, so that imports and caches that the
   first session fills are not charged to the N that follow; then read its RSS;
2. open N sessions from several load processes, each session initialized
   (``initialize`` answered, ``notifications/initialized`` sent) and its stream held;
3. ask the server for one full garbage collection (see ``servers/_common.py``; not
   Node, whose collector runs on its own schedule), let it settle, then measure an idle
   window: server CPU time over the window (heartbeats are all the server does), the
   heartbeat intervals each stream observed, streams the server ended, and the server's
   RSS at the end;
4. close everything and stop the server.

RSS per session is (RSS after - RSS before) / sessions established.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from .config import RunConfig
from .proc import cpu_seconds, open_fds, rss_bytes
from .progress import Progress
from .servers import ServerProcess, System
from .stats import summary
from .workers import LoadWorkers

#: Sessions opened and closed before the baseline RSS is read.
WARMUP_SESSIONS = 20


def _open_command(
    config: RunConfig, server: ServerProcess, count: int, first_index: int
) -> dict[str, Any]:
    return {
        "op": "open",
        "transport": server.transport,
        "host": "127.0.0.1",
        "port": server.port,
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
    server = ServerProcess(
        system,
        transport,
        command=server_command,
        heartbeat=config.heartbeat,
        core=config.server_core,
        log_path=Path(config.out_dir) / "logs" / f"{system.name}-{transport}-idle-{count}.log",
    )
    result: dict[str, Any] = {
        "system": system.name,
        "host": system.host,
        "transport": transport,
        "n": count,
        "heartbeat": config.heartbeat,
        "idle_seconds": config.idle_seconds,
        "collected_before_window": config.collect and system.gc_hooks,
    }
    try:
        server.wait_ready()
        workers.command({0: _open_command(config, server, WARMUP_SESSIONS, 0)}, "opened")
        workers.command({0: {"op": "close"}}, "closed")
        time.sleep(config.pause_seconds)
        rss_before = rss_bytes(server.pid)

        shares = _split(count, config, len(workers))
        commands = {}
        first = 0
        for index, share in enumerate(shares):
            commands[index] = _open_command(config, server, share, first)
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
        cpu_begun, window_begun = cpu_seconds(server.pid), time.perf_counter()
        _sleep_with_progress(config.idle_seconds, progress)
        cpu = cpu_seconds(server.pid) - cpu_begun
        window = time.perf_counter() - window_begun
        collector = server.gc_stats()
        rss_after = rss_bytes(server.pid)
        fds = open_fds(server.pid)
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
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        try:
            workers.each(range(len(workers)), {"op": "close"}, "closed", 60)
        except Exception:
            pass
    finally:
        server.stop()
    return result


def _sleep_with_progress(seconds: float, progress: Progress) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        progress.update(int(seconds - left), int(seconds), "s idle")
        time.sleep(min(1.0, left))
    progress.update(int(seconds), int(seconds), "s idle")
