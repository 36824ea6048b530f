"""The ASGI servers trio-mcp is served by in tests: hypercorn's trio worker in the test's
own trio run, and the asyncio ones (hypercorn's asyncio worker, uvicorn on uvloop with
httptools), each on its own loop in a thread of the test process, where the app runs
trio as a guest. Same app object, same loopback HTTP, same assertions."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import trio
from hypercorn.config import Config

T = TypeVar("T")

#: Every host, in the order reports list them; the first is the native one.
HOSTS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")
#: Seconds a server waits for open connections when a test's server stops.
GRACEFUL_TIMEOUT = 0.5


@asynccontextmanager
async def serving(app: Any, host: str = "hypercorn-trio") -> AsyncIterator[str]:
    """Serve ``app`` under ``host`` on a free loopback port for the duration; yields the
    base URL. The server has finished its lifespan's shutdown when this exits."""
    if host == "hypercorn-trio":
        async with _serving_hypercorn_trio(app) as url:
            yield url
    else:
        async with _serving_in_thread(app, host) as url:
            yield url


@asynccontextmanager
async def _serving_hypercorn_trio(app: Any) -> AsyncIterator[str]:
    from hypercorn.trio import serve

    config = _hypercorn_config()
    config.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield binds[0]
        finally:
            stop.set()


def _hypercorn_config() -> Config:
    config = Config()
    config.accesslog = None
    config.graceful_timeout = GRACEFUL_TIMEOUT
    return config


@asynccontextmanager
async def _serving_in_thread(app: Any, host: str) -> AsyncIterator[str]:
    # Bound here, before the thread starts: connections wait in the backlog until the
    # server (and the app's lifespan) is up, so the URL is usable at once.
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]
    server = _ThreadedServer(app, host, listener)
    thread = threading.Thread(target=server.run, name=f"test {host} server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        await trio.to_thread.run_sync(thread.join)
        if server.error is not None:
            raise server.error


class _ThreadedServer:
    """An asyncio ASGI server running on its own loop in a thread."""

    def __init__(self, app: Any, host: str, listener: socket.socket) -> None:
        self._app = app
        self._host = host
        self._listener = listener
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: Callable[[], None] | None = None
        self._stop_requested = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self._host == "uvicorn":
                import uvloop

                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(self._serve_uvicorn())
            elif self._host == "hypercorn-asyncio":
                asyncio.run(self._serve_hypercorn())
            else:
                raise ValueError(f"unknown host {self._host!r}")
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop_requested.set()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop)

    def _started(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():
            stop()

    async def _serve_uvicorn(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self._app,
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_TIMEOUT,
        )
        server = uvicorn.Server(config)
        self._started(lambda: setattr(server, "should_exit", True))
        await server.serve(sockets=[self._listener])

    async def _serve_hypercorn(self) -> None:
        from hypercorn.asyncio import serve

        config = _hypercorn_config()
        config.bind = [f"fd://{self._listener.detach()}"]
        stopping = asyncio.Event()
        self._started(stopping.set)
        await serve(self._app, config, shutdown_trigger=stopping.wait)


async def in_server_run(app: Any, fn: Callable[[], T]) -> T:
    """Call ``fn()`` inside the trio run that serves ``app``: the test's own, or, under an
    asyncio host, the guest run in the server's thread (trio objects belong to one run,
    so changing a served Server from the test's run would wake the wrong one)."""
    guest = app._guest
    if guest is None:
        return fn()
    token = guest._token
    return await trio.to_thread.run_sync(partial(trio.from_thread.run_sync, fn, trio_token=token))


def count_trio_tasks() -> int:
    """Every task of the current trio run."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


async def count_server_tasks(app: Any) -> tuple[int, int]:
    """(trio tasks, asyncio tasks) of the runs serving ``app``: the trio run that serves
    it (under hypercorn's trio worker, the test's own), and the asyncio server's loop
    (0 without one)."""
    trio_tasks = await in_server_run(app, count_trio_tasks)
    guest = app._guest
    if guest is None:
        return trio_tasks, 0
    loop = guest._loop

    async def count() -> int:
        return len(asyncio.all_tasks())

    future = asyncio.run_coroutine_threadsafe(count(), loop)
    return trio_tasks, await trio.to_thread.run_sync(future.result)
