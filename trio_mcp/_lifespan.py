"""Running an ASGI app's lifespan from a parent app that does not pass it on.

A Starlette or FastAPI app mounts sub-apps for HTTP only: the server's lifespan reaches
the parent, never the app mounted in it. trio-mcp's app needs its lifespan (it owns the
nursery every session lives in), so the parent runs it from its own:
``Starlette(lifespan=lambda _: mcp_app.lifespan())``. This drives the ASGI lifespan
protocol against the app, on asyncio or on trio, whichever the parent runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import sniffio
import trio

Message = dict[str, Any]
AsgiApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Any], Coroutine[Any, Any, None]
]


class LifespanFailed(RuntimeError):
    """The app's lifespan startup or shutdown failed; the message says why."""


def _scope() -> dict[str, Any]:
    return {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}


@asynccontextmanager
async def run_lifespan(app: AsgiApp) -> AsyncIterator[None]:
    """Start ``app``'s lifespan on entry and shut it down on exit.

    Raises :class:`LifespanFailed` if the app reports that startup or shutdown failed,
    or ends its lifespan before answering.
    """
    if sniffio.current_async_library() == "trio":
        driver = _run_lifespan_trio(app)
    else:
        driver = _run_lifespan_asyncio(app)
    async with driver:
        yield


@asynccontextmanager
async def _run_lifespan_asyncio(app: AsgiApp) -> AsyncIterator[None]:
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
        app(_scope(), to_app.get, from_app.put)
    )

    async def step(event: str) -> None:
        await to_app.put({"type": f"lifespan.{event}"})
        answer = asyncio.ensure_future(from_app.get())
        await asyncio.wait((answer, task), return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            task.result()  # the app's own error, if it raised one
            raise LifespanFailed(f"the app ended its lifespan before {event} was complete")
        _check(answer.result(), event)

    try:
        await step("startup")
        yield
        await step("shutdown")
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))


@asynccontextmanager
async def _run_lifespan_trio(app: AsgiApp) -> AsyncIterator[None]:
    to_app_send, to_app = trio.open_memory_channel[Message](1)
    from_app, from_app_receive = trio.open_memory_channel[Message](1)
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            try:
                await app(_scope(), to_app.receive, from_app.send)
            finally:
                from_app.close()

        nursery.start_soon(serve)

        async def step(event: str) -> None:
            await to_app_send.send({"type": f"lifespan.{event}"})
            try:
                answer = await from_app_receive.receive()
            except trio.EndOfChannel:
                raise LifespanFailed(
                    f"the app ended its lifespan before {event} was complete"
                ) from None
            _check(answer, event)

        try:
            await step("startup")
            yield
            await step("shutdown")
        finally:
            nursery.cancel_scope.cancel()


def _check(answer: Message, event: str) -> None:
    if answer["type"] != f"lifespan.{event}.complete":
        raise LifespanFailed(answer.get("message") or f"the app's lifespan {event} failed")
