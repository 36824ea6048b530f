"""The guest bridge (trio_mcp/_guest.py) driven straight from an asyncio loop, for what
no HTTP server lets a test arrange: many receives completing in the same pass."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_mcp._guest import DEPARTURES_PER_PASS, GuestHost
from trio_mcp._http import received_already

LEAVING = 200


def test_clients_leaving_at_once_wake_trio_a_group_per_pass() -> None:
    woken_per_pass = asyncio.run(_leave_at_once())
    assert sum(woken_per_pass.values()) == LEAVING
    assert max(woken_per_pass.values()) <= DEPARTURES_PER_PASS


async def _leave_at_once() -> Counter[int]:
    """``LEAVING`` calls wait for their client's departure, which comes for all of them
    at once; how many of them trio ran in each pass of its loop."""
    passes = 0
    woken_per_pass: Counter[int] = Counter()

    class CountPasses(trio.abc.Instrument):
        def before_io_wait(self, timeout: float) -> None:
            nonlocal passes
            passes += 1

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            trio.lowlevel.add_instrument(CountPasses())
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "http.disconnect"
        woken_per_pass[passes] += 1

    host = GuestHost(app)
    lifespan_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan_messages.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(host({"type": "lifespan"}, lifespan_messages.get, lifespan_send))
    await started.wait()
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "method": "GET", "path": "/sse", "headers": []}
    calls = [asyncio.create_task(host(scope, receive, send)) for _ in range(LEAVING)]
    await asyncio.sleep(0.05)  # every call is waiting for its client by now (and any
    gone.set()  # that is not yet finds it gone at once: its wakeup is paced all the same)
    await asyncio.gather(*calls)
    await lifespan_messages.put({"type": "lifespan.shutdown"})
    await lifespan
    return woken_per_pass


BODY = {"type": "http.request", "body": b"{}", "more_body": False}


def test_a_body_the_server_already_holds_is_there_without_waiting() -> None:
    async def receive() -> dict[str, Any]:
        return BODY

    assert asyncio.run(_read_twice(receive, arrives_after=None)) == [BODY, None]


def test_a_body_still_on_its_way_is_not_there_and_the_next_receive_waits_for_it() -> None:
    arrived = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await arrived.wait()
        return BODY

    assert asyncio.run(_read_twice(receive, arrives_after=arrived)) == [None, BODY]


async def _read_twice(receive: Any, arrives_after: asyncio.Event | None) -> list[Any]:
    """What an app sees asking :func:`received_already` and then, if that had nothing,
    awaiting ``receive`` (``arrives_after`` is set 50 ms into the call)."""
    seen: list[Any] = []

    async def handle(receive: Any) -> None:
        seen.append(received_already(receive))
        seen.append(await receive() if seen[0] is None else None)

    async def while_waiting() -> None:
        if arrives_after is not None:
            await asyncio.sleep(0.05)
            arrives_after.set()

    await _one_call(handle, receive, while_waiting)
    return seen


DISCONNECT = {"type": "http.disconnect"}


def test_a_receive_waiting_in_place_holds_no_asyncio_task_of_its_own() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return DISCONNECT

    async def while_waiting() -> None:
        tasks_waiting.append(len(asyncio.all_tasks()))
        gone.set()

    tasks_waiting: list[int] = []
    assert asyncio.run(_receive_in_trio(receive, while_waiting)) == DISCONNECT
    # The test's own, the lifespan's, its receive's (a queue's, so not in place) and the
    # call's; none for the call's receive.
    assert tasks_waiting == [4]


def test_a_receive_that_waits_twice_goes_on_until_it_returns() -> None:
    first, second = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        await first.wait()
        await second.wait()
        return BODY

    async def while_waiting() -> None:
        first.set()
        await asyncio.sleep(0.01)
        second.set()

    assert asyncio.run(_receive_in_trio(receive, while_waiting)) == BODY


def test_a_receive_that_yields_bare_goes_on_in_an_asyncio_task() -> None:
    arrived = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await arrived.wait()
        await asyncio.sleep(0)  # a bare yield: no future to step it on
        return BODY

    async def while_waiting() -> None:
        arrived.set()

    assert asyncio.run(_receive_in_trio(receive, while_waiting)) == BODY


def test_a_cancelled_receive_has_unwound_on_the_server_side_when_trio_raises() -> None:
    unwound: list[bool] = []

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)
        raise AssertionError("never set")

    async def while_waiting() -> None:
        pass

    seen_on_cancel = asyncio.run(
        _receive_in_trio(receive, while_waiting, cancelled=lambda: list(unwound))
    )
    assert seen_on_cancel == [True]


async def _receive_in_trio(
    receive: Any, while_waiting: Any, cancelled: Callable[[], Any] | None = None
) -> Any:
    """What one ``await receive()`` in a trio app gives. With ``cancelled``, the receive
    is cancelled after 10 ms instead, and this gives what ``cancelled()`` said as trio
    raised the cancellation."""
    seen: list[Any] = []

    async def handle(receive: Any) -> None:
        if cancelled is None:
            seen.append(await receive())
            return
        try:
            with trio.fail_after(0.01):
                await receive()
        except trio.TooSlowError:
            seen.append(cancelled())

    await _one_call(handle, receive, while_waiting)
    return seen[0]


async def _one_call(
    handle: Callable[[Any], Awaitable[None]],
    receive: Any,
    while_waiting: Callable[[], Awaitable[None]],
) -> None:
    """Serve one HTTP call whose trio side is ``handle(receive)``, lifespan and all, for
    a server whose own ``receive`` runs in place (as uvicorn's and hypercorn's do);
    ``while_waiting`` runs on the asyncio side 5 ms into the call."""
    receive.__module__ = "uvicorn.protocols.http.fake"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await handle(receive)

    host = GuestHost(app)
    lifespan_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan_messages.put({"type": "lifespan.startup"})

    async def ignore(message: dict[str, Any]) -> None:
        pass

    lifespan = asyncio.create_task(host({"type": "lifespan"}, lifespan_messages.get, ignore))
    call = asyncio.create_task(host({"type": "http", "headers": []}, receive, ignore))
    await asyncio.sleep(0.005)
    await while_waiting()
    await call
    await lifespan_messages.put({"type": "lifespan.shutdown"})
    await lifespan
