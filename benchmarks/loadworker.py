"""One load-generator process: holds sessions or drives calls, as the orchestrator says.

The orchestrator starts several of these (a process may hold at most the fd limit's
worth of connections, and a server's fd limit is the same) and pins them all to the load
core. Each runs one trio loop and takes commands over a pipe: ``open`` sessions and hold
them, ``mark`` the start of the idle window, ``report`` what the held streams saw,
``close`` them, or run closed-loop ``calls`` (over one server, or spread over a system's
workers); for the attack section, ``arm`` an attack
(:mod:`.attackers`), ``strike`` (it runs in the background, so that the worker still
hears the next command) and ``disarm`` it. Progress goes back on the same pipe while
sessions open, so a long run can show a bar.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from multiprocessing.connection import Connection as Pipe
from typing import Any

import trio
import trio.lowlevel

from .attackers import Armed, make_attack
from .holding import HeldSessions
from .httpclient import ConnectionClosed
from .mcpclient import (
    ESTABLISH_TIMEOUT,
    FAILURES,
    SESSION_TYPES,
    Poster,
    StreamableSession,
    Target,
    failure_name,
)
from .proc import pin_to_core, raise_fd_limit
from .routing import route


def main(pipe: Pipe, core: int | None) -> None:
    """The process's entry point (a ``multiprocessing`` target)."""
    pin_to_core(core)
    raise_fd_limit()
    trio.run(_serve, pipe)


async def _serve(pipe: Pipe) -> None:
    run: HeldSessions | None = None
    armed: Armed | None = None
    async with trio.open_nursery() as nursery:
        while True:
            command: dict[str, Any] = await trio.to_thread.run_sync(pipe.recv)
            op = command["op"]
            if op == "open":
                run = HeldSessions(command)
                nursery.start_soon(run.run)
                while not run.settled.is_set():
                    with trio.move_on_after(0.25):
                        await run.settled.wait()
                    pipe.send({"op": "progress", "done": run.established + run.failed})
                pipe.send(run.result())
            elif op == "mark":
                assert run is not None
                run.stats.start_recording()
                pipe.send({"op": "marked"})
            elif op == "report":
                assert run is not None
                pipe.send(
                    {
                        "op": "report",
                        "beats": run.stats.beats,
                        "intervals": run.stats.intervals,
                        "closed_by_server": run.stats.closed_by_server,
                    }
                )
            elif op == "close":
                if run is not None:
                    run.scope.cancel()
                    run = None
                await trio.lowlevel.checkpoint()
                pipe.send({"op": "closed"})
            elif op == "calls":
                pipe.send(await _calls(command, pipe))
            elif op == "arm":
                armed = Armed(make_attack(command))
                try:
                    ready = await armed.attack.prepare(nursery)
                except (*FAILURES, trio.TooSlowError) as exc:
                    await armed.stop()
                    armed = None
                    pipe.send({"op": "armed", "error": failure_name(exc)})
                else:
                    pipe.send({"op": "armed", **ready})
            elif op == "strike":
                # No reply: the orchestrator sends this from inside another worker's
                # measurement, and hears from this one again when it disarms.
                if armed is not None:
                    nursery.start_soon(armed.run, command["limit"])
            elif op == "disarm":
                outcome = await armed.stop() if armed is not None else None
                armed = None
                pipe.send({"op": "disarmed", "outcome": outcome})
            elif op == "exit":
                nursery.cancel_scope.cancel()
                return
            else:
                raise ValueError(f"unknown command {op!r}")


async def _calls(command: dict[str, Any], pipe: Pipe) -> dict[str, Any]:
    """Closed-loop ``tools/call`` echo: each session calls again as soon as it is answered.

    With several server ``ports`` (workers of one system), ``routing`` says which one
    each session's stream and POSTs go to (see :mod:`.routing`)."""
    ports: list[int] = command.get("ports") or [command["port"]]
    routing: str = command.get("routing", "one")
    targets = [Target(command["host"], port, command["sources"]) for port in ports]
    kind = SESSION_TYPES[command["transport"]]
    routes = [route(index, len(ports), routing) for index in range(command["sessions"])]
    posters = [Poster(targets[post], index) for index, (_, post) in enumerate(routes)]
    # On Streamable HTTP the worker that answers initialize owns the session: it is
    # asked there, on a connection of its own, when the POSTs go elsewhere.
    homes = {
        index: Poster(targets[home], index)
        for index, (home, post) in enumerate(routes)
        if home != post and kind is StreamableSession
    }
    sessions = [
        kind(targets[home], index, posters[index].post)
        if index not in homes
        else StreamableSession(
            targets[home], index, posters[index].post, establish_post=homes[index].post
        )
        for index, (home, _) in enumerate(routes)
    ]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    measuring = False

    ready: list[Any] = []

    async def establish(session: Any) -> None:
        try:
            with trio.fail_after(ESTABLISH_TIMEOUT):
                await session.establish(hold_stream=False)
        except (*FAILURES, trio.TooSlowError) as exc:
            errors[f"establish: {failure_name(exc)}"] += 1
            return
        ready.append(session)

    async def loop(session: Any) -> None:
        while True:
            begun = time.perf_counter()
            try:
                await session.call("hello, benchmark")
            except FAILURES as exc:
                errors[failure_name(exc)] += 1
                if isinstance(exc, ConnectionClosed | OSError):
                    return  # this session is gone; the others carry on
                continue
            if measuring:
                latencies.append(time.perf_counter() - begun)

    try:
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(establish, session)
        for poster in homes.values():
            poster.close()
        async with trio.open_nursery() as nursery:
            for session in ready:
                nursery.start_soon(loop, session)
            await trio.sleep(command["warmup"])
            measuring = True
            pipe.send({"op": "window"})
            cpu_begun, begun = time.process_time(), time.perf_counter()
            await trio.sleep(command["duration"])
            measuring = False
            window = time.perf_counter() - begun
            cpu = time.process_time() - cpu_begun
            nursery.cancel_scope.cancel()
    finally:
        for session in sessions:
            session.close()
        for poster in [*posters, *homes.values()]:
            poster.close()
    return {
        "op": "calls",
        "latencies": latencies,
        "errors": dict(errors),
        "window": window,
        "load_cpu": cpu,
        "calls_per_s": len(latencies) / window if window > 0 else math.nan,
    }
