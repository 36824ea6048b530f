"""One benchmark run's parameters, from the command line (see ``__main__``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .routing import AT_LOAD

#: Source addresses on loopback the load spreads its connections over: each one has the
#: whole ephemeral port range to itself, so TIME_WAIT from earlier runs never runs it dry.
SOURCES = [f"127.0.0.{host}" for host in range(2, 18)]

#: The transport name of MCP 2026-07-28's stateless wire on /mcp: the command line's,
#: the report's and the server scripts' (see mcpclient.StatelessSession).
STATELESS = "mcp-stateless"

#: The attack section's attacks, in the order they run (see attackers.py).
ATTACKS = (
    "stalled-readers",
    "flooded-session",
    "trickled-bodies",
    "connect-burst",
    "mass-disconnect",
)


@dataclass
class RunConfig:
    sizes: list[int]
    concurrency: list[int]
    systems: list[str]
    transports: list[str]
    #: The idle sweep's sizes on the stateless wire (idle subscriptions/listen streams,
    #: for the systems that listen): fewer than on /sse, to keep the full run's length,
    #: and among ``sizes`` so that a listener's RSS has an /sse session's to compare with.
    listen_sizes: list[int] = field(default_factory=lambda: [5000])
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
    #: Times each echo level is measured, in rounds over the systems (see repeats.py).
    echo_runs: int = 1
    workers: int = 4
    sessions_per_worker: int = 5000
    establish_concurrency: int = 32
    pool_size: int = 8
    server_core: int | None = 0
    load_core: int | None = 1
    #: Where each Redis-backed measurement's redis-server runs: the server core by
    #: default, so that the server side (workers and Redis) has the one core an
    #: in-memory server has; None leaves it to the scheduler.
    redis_core: int | None = 0
    #: Where the workers of a several-worker system run: "own" gives worker i the
    #: core server_core + i (modulo the cores there are), each its own while cores
    #: last, as scaling out over processes gives them; "server" puts them all on the
    #: server core (time-sharing it); "any" leaves them to the scheduler.
    worker_cores: str = "own"
    #: Which of the several workers' routings at load run (see routing.py).
    routings: tuple[str, ...] = AT_LOAD
    #: The idle sweep's sizes for the Redis-backed systems (issue 14).
    redis_sizes: list[int] = field(default_factory=lambda: [10_000])
    #: Seconds a Redis-backed server is given to end the warm-up sessions before its
    #: idle measurement (their closed /sse streams wait ``Settings.resume_grace``, 30 s
    #: by default, for a resumption), so that their ends are not counted as idle
    #: traffic: the default and a margin.
    redis_drain: float = 32.0
    out_dir: Path = Path("benchmarks/out")
    sources: list[str] = field(default_factory=lambda: list(SOURCES))

    # The attack section (attacks.py, attackers.py; README "Attacks"): which attacks, the
    # well-behaved sessions beside them, each attack's size, and the server's bounds.
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    #: Well-behaved sessions on /sse, calling echo in a closed loop, alone and beside.
    attack_sessions: int = 8
    #: Clients that stop reading at once, one large reply asked for each.
    stalled_readers: int = 50
    #: Large replies asked for by the one flooded session before it stops reading.
    flood_requests: int = 64
    #: Size of each large reply (the benchmark server's big tool), bytes.
    reply_bytes: int = 1024 * 1024
    #: SO_RCVBUF of the clients that stop reading: their window shuts after a few KB.
    receive_buffer: int = 4096
    #: Connections trickling POST bodies at once, one byte every trickle_interval s.
    trickled_bodies: int = 50
    trickle_interval: float = 1.0
    #: Connects in each burst, and bursts in the window (evenly spaced).
    burst_connections: int = 2000
    burst_repeats: int = 3
    #: Idle /sse sessions opened before the window and closed at once when it opens.
    disconnect_sessions: int = 3000
    #: The server's bounds in the attack section, short enough to act within the
    #: window (their defaults are 30 s each).
    stalled_client_timeout: float = 1.0
    body_timeout: float = 2.0
    resume_grace: float = 2.0
    #: The host's keep-alive timeout (5 s by default), which hypercorn also keeps a
    #: connection its client closed for.
    keep_alive_timeout: float = 1.0
    #: How long after an attack stops the server may take to close what it held.
    settle_limit: float = 10.0


def worker_core(config: RunConfig, index: int, workers: int) -> int | None:
    """The core worker ``index`` of ``workers`` runs on (None: any)."""
    if workers == 1 or config.worker_cores == "server":
        return config.server_core
    if config.worker_cores == "any" or config.server_core is None:
        return None
    return (config.server_core + index) % (os.cpu_count() or 1)
