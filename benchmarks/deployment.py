"""The server side of one measurement: a system's worker processes, and the
redis-server they share when the system is Redis-backed.

An in-memory system is one worker process, as before. A Redis-backed one (issue 14)
first gets a fresh redis-server of its own (:mod:`.redisserver`), pinned to the Redis
core, then its workers, each a process on a port of its own with the Redis URL, each
on a core of its own from the server core on (``RunConfig.worker_cores``); the load
decides which worker each connection goes to (see :mod:`.routing`). Everything the
server side spends is counted: CPU time and RSS of every worker, and of redis-server,
each read from ``/proc``, and the commands Redis ran (``INFO commandstats``). Workers
stop first (by PID, as every server), so that they end their sessions while Redis is
there, then redis-server (by PID).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RunConfig, worker_core
from .proc import cpu_seconds, rss_bytes
from .redisserver import RedisServer
from .servers import ServerProcess, System


class Deployment:
    """One system's server processes for one measurement, started at once."""

    def __init__(
        self,
        config: RunConfig,
        system: System,
        transport: str,
        command: list[str],
        log_stem: str,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.system = system
        self.redis: RedisServer | None = None
        self.workers: list[ServerProcess] = []
        logs = Path(config.out_dir) / "logs"
        try:
            if system.redis:
                self.redis = RedisServer(config.redis_core, logs / f"{log_stem}.redis.log")
                extra_args = [*extra_args, "--redis-url", self.redis.url]
            for index in range(system.server_workers):
                suffix = "" if system.server_workers == 1 else f"-w{index + 1}"
                self.workers.append(
                    ServerProcess(
                        system,
                        transport,
                        command=command,
                        heartbeat=config.heartbeat,
                        core=worker_core(config, index, system.server_workers),
                        log_path=logs / f"{log_stem}{suffix}.log",
                        extra_args=extra_args,
                    )
                )
        except BaseException:
            self.stop()
            raise

    @property
    def ports(self) -> list[int]:
        return [worker.port for worker in self.workers]

    def wait_ready(self) -> None:
        for worker in self.workers:
            worker.wait_ready()

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far: by every worker together, and by redis-server."""
        return {
            "workers": sum(cpu_seconds(worker.pid) for worker in self.workers),
            "redis": cpu_seconds(self.redis.pid) if self.redis else 0.0,
        }

    def worker_rss(self) -> int:
        return sum(rss_bytes(worker.pid) for worker in self.workers)

    def redis_memory(self) -> dict[str, int]:
        """redis-server's RSS, and what its allocator holds for data (``used_memory``);
        zeros without Redis."""
        if self.redis is None:
            return {"rss": 0, "used": 0}
        return {"rss": rss_bytes(self.redis.pid), "used": self.redis.used_memory()}

    def commandstats(self) -> dict[str, int]:
        """Commands Redis has run so far, by name (empty without Redis)."""
        return self.redis.commandstats() if self.redis else {}

    def gc_stats(self) -> dict[str, Any] | None:
        """The collector's work in every worker since the last call, summed (see
        :meth:`ServerProcess.gc_stats`); None if a worker did not answer."""
        stats = [worker.gc_stats() for worker in self.workers]
        if not stats or any(s is None for s in stats):
            return None
        return {
            "collections": [sum(s["collections"][g] for s in stats if s) for g in range(3)],
            "seconds": [sum(s["seconds"][g] for s in stats if s) for g in range(3)],
        }

    def collect(self) -> None:
        for worker in self.workers:
            worker.collect()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.redis is not None:
            self.redis.stop()
