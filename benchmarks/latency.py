"""The latency/throughput driver: closed-loop ``tools/call`` echo at several concurrencies.

One fresh server process serves every concurrency level of one system and transport, in
increasing order. Each level opens its sessions (one POST connection each, as a client
has), warms up, then measures a window in which every session calls ``echo`` again as
soon as its previous call is answered. Latency is from sending the POST to having the
reply (on the SSE stream for ``/sse``, in the POST's answer for ``/mcp``). The server's
and the load process's CPU over the window show which side was the bottleneck.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .config import RunConfig
from .proc import cpu_seconds
from .progress import Progress
from .servers import ServerProcess, System
from .stats import summary
from .workers import LoadWorkers


def run_latency(
    config: RunConfig,
    workers: LoadWorkers,
    system: System,
    transport: str,
    server_command: list[str],
    progress: Progress,
) -> list[dict[str, Any]]:
    server = ServerProcess(
        system,
        transport,
        command=server_command,
        heartbeat=config.heartbeat,
        core=config.server_core,
        log_path=Path(config.out_dir) / "logs" / f"{system.name}-{transport}-latency.log",
    )
    results = []
    window_cpu: list[float] = []

    def on_window(index: int, message: dict[str, Any]) -> None:
        window_cpu.append(cpu_seconds(server.pid))
        server.gc_stats()  # counts from here on

    try:
        server.wait_ready()
        for level, sessions in enumerate(config.concurrency):
            progress.update(level, len(config.concurrency), f"{sessions} sessions")
            result: dict[str, Any] = {
                "system": system.name,
                "host": system.host,
                "transport": transport,
                "sessions": sessions,
            }
            window_cpu.clear()
            command = {
                "op": "calls",
                "transport": transport,
                "host": "127.0.0.1",
                "port": server.port,
                "sources": config.sources,
                "sessions": sessions,
                "warmup": config.warmup,
                "duration": config.duration,
            }
            try:
                timeout = config.warmup + config.duration + 120
                reply = workers.command({0: command}, "calls", on_window, timeout)[0]
                server_cpu = cpu_seconds(server.pid) - window_cpu[0] if window_cpu else 0.0
                collector = server.gc_stats()
                window = reply["window"]
                result.update(
                    {
                        "calls": len(reply["latencies"]),
                        "calls_per_s": reply["calls_per_s"],
                        "latency": summary(reply["latencies"]),
                        "errors": reply["errors"],
                        "window": window,
                        "server_cpu_percent": server_cpu / window * 100,
                        "load_cpu_percent": reply["load_cpu"] / window * 100,
                        "gc": collector,
                        "gc_measured": system.gc_hooks,
                    }
                )
            except Exception as exc:
                result["error"] = f"{type(exc).__name__}: {exc}"
            results.append(result)
            time.sleep(config.pause_seconds)
        progress.update(len(config.concurrency), len(config.concurrency), "done")
    except Exception as exc:
        results.append(
            {
                "system": system.name,
                "host": system.host,
                "transport": transport,
                "error": f"{type(exc).__name__}: {exc}",
            }
        )
    finally:
        server.stop()
    return results
