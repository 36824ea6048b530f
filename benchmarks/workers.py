"""The orchestrator's handle on the load-generator processes (see :mod:`.loadworker`).

Workers are started once per benchmark run and reused by every measurement, so their
start-up never lands in a measured window. Commands go out to several workers at once
and their replies are gathered in order, with progress messages passed on as they come.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import Any

from . import loadworker

Progress = Callable[[int, dict[str, Any]], None]


class WorkerDied(RuntimeError):
    pass


class LoadWorkers:
    def __init__(self, count: int, core: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Pipe] = []
        self._processes: list[Any] = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=loadworker.main, args=(theirs, core), daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    def __len__(self) -> int:
        return len(self._pipes)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def command(
        self,
        commands: dict[int, dict[str, Any]],
        expect: str,
        on_message: Progress | None = None,
        timeout: float = 3600.0,
    ) -> dict[int, dict[str, Any]]:
        """Send ``commands`` (worker index -> command); wait for each one's ``expect`` reply.

        Other messages (progress, window marks) go to ``on_message`` meanwhile."""
        for index, command in commands.items():
            self.post(index, command)
        return self.gather(commands, expect, on_message, timeout)

    def post(self, index: int, command: dict[str, Any]) -> None:
        """Send one worker a command without waiting for anything: what a measurement in
        progress (an ``on_message`` callback) uses to set another worker going."""
        self._pipes[index].send(command)

    def gather(
        self,
        indices: Iterable[int],
        expect: str,
        on_message: Progress | None = None,
        timeout: float = 3600.0,
    ) -> dict[int, dict[str, Any]]:
        """Wait for each of these workers' ``expect`` reply; other messages go to
        ``on_message``, or are dropped."""
        replies: dict[int, dict[str, Any]] = {}
        waiting = {self._pipes[index]: index for index in indices}
        while waiting:
            ready = wait(list(waiting), timeout)
            if not ready:
                raise WorkerDied(f"no reply to {expect!r} within {timeout:g} s")
            for pipe in ready:
                assert isinstance(pipe, Pipe)
                index = waiting[pipe]
                try:
                    message = pipe.recv()
                except (EOFError, OSError):
                    raise WorkerDied(f"load worker {index} died") from None
                if message["op"] == expect:
                    replies[index] = message
                    del waiting[pipe]
                elif on_message is not None:
                    on_message(index, message)
        return replies

    def each(
        self,
        indices: Iterable[int],
        command: dict[str, Any],
        expect: str,
        timeout: float = 3600.0,
    ) -> dict[int, dict[str, Any]]:
        """The same command to each of these workers."""
        return self.command({index: dict(command) for index in indices}, expect, None, timeout)

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send({"op": "exit"})
            except OSError:
                pass
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
