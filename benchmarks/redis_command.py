"""What one Redis command costs a trio-mcp worker, through coredis and on a RedisLine.

``python -m benchmarks.redis_command`` starts its own redis-server (on the load core),
then, on the server core, sends N commands one after the other through each client in
the same run: coredis 6.9 (the client every other command of a worker uses) and
:class:`trio_mcp._redis_line.RedisLine` (the reader's and the sessions' publisher's own
connection). Each sends a ``PING`` and an ``EVALSHA`` of a small script; the figures
are the client process's CPU and wall time per command. Issue 14's two-worker figure is
made of such commands: this is the part of it that the client decides.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import trio

from .machine import describe, format_machine
from .proc import pin_to_core
from .redisserver import RedisServer

SERVER_CORE, REDIS_CORE = 0, 1
#: A script with a key and an argument, as trio-mcp's are (their bodies are longer).
SCRIPT = "return {KEYS[1], ARGV[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000, help="per client and command")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    machine = describe(None)
    with TemporaryDirectory() as logs:
        redis = RedisServer(REDIS_CORE, Path(logs) / "redis.log")
        try:
            pin_to_core(SERVER_CORE)
            rows = trio.run(measure, redis.url, args.commands)
        finally:
            redis.stop()
    print(format_machine(machine))
    print(
        f"\nOne command after another, {args.commands:,} of each; client on core "
        f"{SERVER_CORE}, redis-server on core {REDIS_CORE}. CPU is the client process's.\n"
    )
    print(f"{'client':>10}  {'command':>8}  {'CPU µs':>7}  {'wall µs':>7}")
    for row in rows:
        print(
            f"{row['client']:>10}  {row['command']:>8}  "
            f"{row['cpu_us']:>7.1f}  {row['wall_us']:>7.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


async def measure(url: str, commands: int) -> list[dict[str, Any]]:
    from trio_mcp._redis_client import RedisConnection
    from trio_mcp._redis_line import RedisLine

    connection = RedisConnection(url, "bench")
    rows: list[dict[str, Any]] = []
    async with connection.client:
        line = RedisLine(connection)
        try:
            clients: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {
                "coredis": {
                    "PING": connection.client.ping,
                    "EVALSHA": lambda: connection.script(SCRIPT, ["k"], ["v"]),
                },
                "RedisLine": {
                    "PING": lambda: line.execute("PING"),
                    "EVALSHA": lambda: line.script(SCRIPT, ["k"], ["v"]),
                },
            }
            for client, sends in clients.items():
                for command, send in sends.items():
                    await send()  # connected, and the script loaded
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(commands):
                        await send()
                    rows.append(
                        {
                            "client": client,
                            "command": command,
                            "cpu_us": (time.process_time() - cpu) / commands * 1e6,
                            "wall_us": (time.perf_counter() - wall) / commands * 1e6,
                        }
                    )
        finally:
            line.close()
    return rows


if __name__ == "__main__":
    main()
