"""When a session ends, on trio's MockClock and without sockets: an HTTP+SSE session
lives while its stream does and for the resume grace after; a Streamable HTTP session
lives until it has been idle too long; a stdio session lives until it is closed; any
ends at once when closed."""

from __future__ import annotations

from typing import Any

import trio
import trio.lowlevel
import trio.testing

import trio_mcp
from trio_mcp._session import Session


def make(kind: Any, **settings: Any) -> Session:
    return Session("s" * 32, trio_mcp.Server("lifetime"), trio_mcp.Settings(**settings), kind)


async def run_until_end(
    session: Session,
    ended: list[float],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await session.run(task_status=task_status)
    ended.append(trio.current_time())


def attach(session: Session) -> trio.CancelScope:
    writer = trio.CancelScope()
    session.main.attach(writer, take_over=False)
    session.touch()
    return writer


def detach(session: Session, writer: trio.CancelScope) -> None:
    session.main.detach(writer)
    session.touch()


async def test_an_sse_session_outlives_its_dropped_stream_by_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make("sse", resume_grace=30)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_until_end, session, ended)
        await trio.lowlevel.checkpoint()
        writer = attach(session)
        await trio.sleep(100)
        assert ended == []  # an attached stream keeps it alive however long
        detach(session, writer)
        await trio.sleep(40)
    assert ended == [130]
    assert session.closed


async def test_a_resumed_stream_cancels_the_end_of_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make("sse", resume_grace=30)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_until_end, session, ended)
        await trio.lowlevel.checkpoint()
        detach(session, attach(session))
        await trio.sleep(20)
        writer = attach(session)
        await trio.sleep(100)
        assert ended == []
        detach(session, writer)
        await trio.sleep(31)
    assert ended == [150]


async def test_a_streamable_session_ends_after_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make("streamable", session_idle_timeout=60)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_until_end, session, ended)
        await trio.sleep(50)
        await session.deliver([])  # any POST counts as activity
        await trio.sleep(100)
    assert ended == [110]


async def test_an_open_stream_keeps_a_streamable_session_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make("streamable", session_idle_timeout=60)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_until_end, session, ended)
        await trio.lowlevel.checkpoint()
        writer = attach(session)
        await trio.sleep(500)
        assert ended == []
        detach(session, writer)
        await trio.sleep(61)
    assert ended == [560]


async def test_a_stdio_session_lives_until_it_is_closed_however_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Tighter limits than any other kind would survive: none of them applies.
    session = make("stdio", session_idle_timeout=1, resume_grace=1)
    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_until_end, session, ended)
        await trio.sleep(10_000)
        assert ended == []
        session.close()
    assert ended == [10_000]


async def test_closing_a_session_cancels_its_handlers_and_closes_its_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = trio_mcp.Server("closing")
    cancelled = trio.Event()

    @server.tool()
    async def forever() -> str:
        """Never returns."""
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        return ""

    session = Session("s" * 32, server, trio_mcp.Settings(), "sse")
    from trio_mcp._jsonrpc import Notification, Request

    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
        await session.deliver(
            [
                Request(1, "initialize", init),
                Notification("notifications/initialized"),
                Request(2, "tools/call", {"name": "forever", "arguments": {}}),
            ]
        )
        await trio.sleep(1)
        session.close()
        with trio.fail_after(1):
            await cancelled.wait()
    assert session.main.closed


async def test_a_call_left_reporting_into_a_stream_nobody_reads_ends_with_the_idle_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The client POSTed a call that reports progress, then left for good: once the
    # stream's budget is full the call waits, and that wait is idleness, not activity.
    server = trio_mcp.Server("abandoned")
    reports = 0
    cancelled = trio.Event()

    @server.tool()
    async def chatty(ctx: trio_mcp.Context) -> str:
        """Reports progress forever."""
        nonlocal reports
        try:
            while True:
                await ctx.report_progress(reports + 1)
                reports += 1  # sent: the stream had room for it
                await trio.sleep(1)
        finally:
            cancelled.set()

    session = Session(
        "s" * 32, server, trio_mcp.Settings(replay_events=8, session_idle_timeout=60), "streamable"
    )
    from trio_mcp._jsonrpc import Notification, Request

    ended: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(run_until_end, session, ended)  # its nursery is open
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
        await session.deliver([Request(1, "initialize", init)])
        await session.deliver([Notification("notifications/initialized")])
        call = {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}
        session.open_request_stream([2], carry_notifications=True)
        await session.deliver([Request(2, "tools/call", call)])
        await trio.sleep(30)
        assert ended == [] and reports == 8  # running while the stream had room
        await trio.sleep(100)
    assert ended and ended[0] <= 8 + 60 + 1
    assert cancelled.is_set() and reports == 8
