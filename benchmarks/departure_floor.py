"""What a mass disconnect costs an event loop with no server on it (issue 15's floor).

``python -m benchmarks.departure_floor`` measures, on this machine and in one run:

* the kernel: reading the end of N loopback TCP connections whose clients left, and
  closing them, in a bare loop with no event loop at all;
* each event loop trio-mcp runs on (uvloop under uvicorn, asyncio's own loop under
  hypercorn's asyncio worker, trio under ``hypercorn -k trio``) serving nothing but a
  one-byte echo: it holds N idle connections, a pinger echoes a byte at a time beside
  them, and the N clients all close at once. The pinger's longest round trip is the
  longest a loop with no HTTP, no ASGI and no app on it stalled a client that stayed.

The attack section's mass disconnect (``--attack-kinds mass-disconnect``) measures the
same departure against trio-mcp and the hosts' bare ASGI floors; this is the floor
beneath both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from functools import partial
from typing import Any

from .machine import describe, format_machine
from .proc import cpu_seconds, pin_to_core, raise_fd_limit
from .servers import free_port

LOOPS = ("uvloop", "asyncio", "trio")
SERVER_CORE, CLIENT_CORE = 0, 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--serve", choices=LOOPS, help=argparse.SUPPRESS)
    parser.add_argument("--ping", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.serve:
        _serve(args.serve, args.port)
    elif args.ping:
        _ping(args.ping)
    elif args.hold:
        _hold(args.port, args.hold)
    else:
        figures = _report(args.connections, args.loops.split(","))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(figures, out, indent=2)


def _report(connections: int, loops: list[str]) -> dict[str, Any]:
    machine = describe(None)
    # The machine and trio-mcp's side; no SDK runs here.
    print("\n".join(format_machine(machine).splitlines()[:2]))
    print(f"Command: python -m benchmarks.departure_floor --connections {connections}")
    print(f"Server on core {SERVER_CORE}, clients on core {CLIENT_CORE}\n")
    kernel = _kernel_floor(connections)
    print(
        f"Kernel, no event loop: reading the end of {connections:,} connections "
        f"{kernel['eof_us']:.1f} us each, closing them {kernel['close_us']:.1f} us each: "
        f"{kernel['total_ms']:.0f} ms in all\n"
    )
    columns = ["loop", "held", "left over s", "longest alone ms", "longest beside ms"]
    columns.append("server CPU s")
    widths = [max(len(name), 7) for name in columns]
    print("  ".join(f"{name:>{width}}" for name, width in zip(columns, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    rows = {}
    for loop in loops:
        row = rows[loop] = _loop_floor(loop, connections)
        cells = [loop, f"{connections:,}", f"{row['closing_s']:.2f}", f"{row['alone_ms']:.1f}"]
        cells += [f"{row['beside_ms']:.1f}", f"{row['cpu_s']:.2f}"]
        print("  ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)))
    return {"machine": machine, "connections": connections, "kernel": kernel, "loops": rows}


def _kernel_floor(connections: int) -> dict[str, float]:
    pin_to_core(SERVER_CORE)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        holder = _Holder(listener.getsockname()[1], connections)
        servers = [listener.accept()[0] for _ in range(connections)]
    holder.wait_held()
    holder.close_all()
    time.sleep(0.5)
    started = time.perf_counter()
    for server in servers:
        server.recv(1)
    read = time.perf_counter()
    for server in servers:
        server.close()
    ended = time.perf_counter()
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {
        "eof_us": 1e6 * (read - started) / connections,
        "close_us": 1e6 * (ended - read) / connections,
        "total_ms": 1e3 * (ended - started),
    }


class _Holder:
    """A process holding N connections to a port until told to close them all."""

    def __init__(self, port: int, connections: int) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.departure_floor",
                "--hold",
                str(connections),
                "--port",
                str(port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def wait_held(self) -> None:
        assert self._process.stdout is not None
        self._process.stdout.readline()

    def close_all(self) -> float:
        """Seconds the closing took."""
        out, _ = self._process.communicate(b"close\n")
        return float(out)

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def _hold(port: int, connections: int) -> None:
    pin_to_core(CLIENT_CORE)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    print("held", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for connection in held:  # all at once, as a client process's exit
        connection.close()
    print(time.perf_counter() - started, flush=True)


def _loop_floor(loop: str, connections: int) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.departure_floor"]
    server = subprocess.Popen([*command, "--serve", loop, "--port", str(port)])
    pinger = None
    holder: _Holder | None = None
    try:
        _wait_listening(port)
        holder = _Holder(port, connections)
        holder.wait_held()
        time.sleep(1.0)  # every connection accepted and idle
        pinger = subprocess.Popen(
            [*command, "--ping", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert pinger.stdout is not None and pinger.stdin is not None
        pinger.stdout.readline()  # pinging
        time.sleep(1.0)
        cpu_before = cpu_seconds(server.pid)
        pinger.stdin.write(b"mark\n")
        pinger.stdin.flush()
        closing = holder.close_all()
        time.sleep(2.0)
        cpu = cpu_seconds(server.pid) - cpu_before
        figures: dict[str, Any] = json.loads(pinger.communicate(b"stop\n")[0])
        return {"closing_s": closing, "cpu_s": cpu, **figures}
    finally:
        if pinger is not None and pinger.poll() is None:
            pinger.kill()
        if holder is not None:
            holder.kill()
        server.terminate()
        server.wait()


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ping(port: int) -> None:
    """Echo a byte at a time until told to stop; the longest round trip before the
    mark (alone) and after it (beside the departures), in ms, as JSON."""
    import threading

    pin_to_core(CLIENT_CORE)
    longest = {"alone_ms": 0.0, "beside_ms": 0.0}
    phase = ["alone_ms"]
    stop = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "mark":
                phase[0] = "beside_ms"
            else:
                stop.set()
                return

    threading.Thread(target=listen, daemon=True).start()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print("pinging", flush=True)
        while not stop.is_set():
            sent = time.perf_counter()
            connection.sendall(b"x")
            connection.recv(1)
            key = phase[0]
            longest[key] = max(longest[key], 1e3 * (time.perf_counter() - sent))
            time.sleep(0.0005)
    print(json.dumps(longest), flush=True)


def _serve(loop: str, port: int) -> None:
    """A one-byte echo on ``loop``, holding every connection until its client leaves."""
    pin_to_core(SERVER_CORE)
    if loop == "trio":
        import trio

        async def echo(stream: trio.SocketStream) -> None:
            while data := await stream.receive_some():
                await stream.send_all(data)

        trio.run(partial(trio.serve_tcp, echo, port, host="127.0.0.1", backlog=4096))
        return

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            Echo, "127.0.0.1", port, backlog=4096
        )
        await server.serve_forever()

    if loop == "uvloop":
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
