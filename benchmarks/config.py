"""One benchmark run's parameters, from the command line (see ``__main__``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Source addresses on loopback the load spreads its connections over: each one has the
#: whole ephemeral port range to itself, so TIME_WAIT from earlier runs never runs it dry.
SOURCES = [f"127.0.0.{host}" for host in range(2, 18)]


@dataclass
class RunConfig:
    sizes: list[int]
    concurrency: list[int]
    systems: list[str]
    transports: list[str]
    heartbeat: float = 15.0
    idle_seconds: float = 60.0
    settle_seconds: float = 5.0
    #: Ask each server for one full garbage collection before the idle window (see
    #: servers/_common.py); settle_seconds must leave it time to finish.
    collect: bool = True
    #: Pause before reading a fresh server's baseline RSS, and between echo levels.
    pause_seconds: float = 1.0
    duration: float = 10.0
    warmup: float = 2.0
    workers: int = 4
    sessions_per_worker: int = 5000
    establish_concurrency: int = 32
    pool_size: int = 8
    server_core: int | None = 0
    load_core: int | None = 1
    out_dir: Path = Path("benchmarks/out")
    sources: list[str] = field(default_factory=lambda: list(SOURCES))
