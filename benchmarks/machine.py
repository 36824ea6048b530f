"""What machine a run was made on: figures mean little without it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = [
    "trio-mcp",
    "trio",
    "hypercorn",
    "quart",
    "quart-trio",
    "h11",
    "attrs",
    "cattrs",
    # The asyncio hosts trio-mcp is measured under.
    "uvicorn",
    "uvloop",
    "httptools",
    # The Redis client of the Redis-backed systems (issue 14).
    "coredis",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _git_commit() -> str:
    root = Path(__file__).parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def describe(
    sdk_versions: dict[str, str] | None, ts_sdk_versions: dict[str, str] | None = None
) -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "trio_mcp_commit": _git_commit(),
        # Other work on the machine shows up in every figure: say how busy it was.
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "packages": packages,
        "sdk_packages": sdk_versions or {},
        "ts_sdk_packages": ts_sdk_versions or {},
    }


def format_machine(machine: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    sdk = ", ".join(f"{k} {v}" for k, v in machine["sdk_packages"].items()) or "not measured"
    ts_sdk = (
        ", ".join(f"{k} {v}" for k, v in machine.get("ts_sdk_packages", {}).items())
        or "not measured"
    )
    return "\n".join(
        [
            f"Machine: {machine['cpu']}, {machine['cores']} cores, "
            f"{machine['memory_gib']} GiB RAM, {machine['kernel']}, Python {machine['python']}; "
            f"load average at start {' '.join(map(str, machine['load_average_at_start']))}",
            f"trio-mcp side: {packages} (commit {machine['trio_mcp_commit']})",
            f"SDK side: {sdk}",
            f"TypeScript SDK side: {ts_sdk}",
            *(
                [f"Redis side: redis-server {machine['redis_server']}"]
                if "redis_server" in machine
                else []
            ),
        ]
    )
