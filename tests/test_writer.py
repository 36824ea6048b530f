"""The SSE writer on its own, on trio's MockClock: heartbeats, event framing, its end."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import trio
import trio.testing

import trio_mcp
from trio_mcp._eventstream import HEARTBEAT
from trio_mcp._heartbeat import HEARTBEAT_SLACK
from trio_mcp._session import Session
from trio_mcp._streaming import serve_stream


class RecordingSend:
    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            self.chunks.append((trio.current_time(), message["body"]))


async def connected() -> dict[str, Any]:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


def make(kind: Any = "sse") -> Session:
    return Session("s" * 32, trio_mcp.Server("writer-test"), trio_mcp.Settings(), kind)


async def write(session: Session, send: Any, interval: float = 15.0, stall: float = 30) -> None:
    settings = trio_mcp.Settings(heartbeat_interval=interval, stalled_client_timeout=stall)
    await serve_stream(session, session.main, connected, send, settings, cursor=0, take_over=False)


async def test_an_idle_stream_gets_a_heartbeat_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(write, session, send)
        await trio.sleep(47)
        nursery.cancel_scope.cancel()
    assert [body for _, body in send.chunks] == [HEARTBEAT] * 3
    # Each up to HEARTBEAT_SLACK late, so that many streams' heartbeats go out together.
    intervals = [after - before for before, after in pairwise([0.0, *(t for t, _ in send.chunks)])]
    assert all(15 <= interval <= 15 + HEARTBEAT_SLACK for interval in intervals), intervals


async def test_a_message_resets_the_heartbeat_timer(autojump_clock: trio.testing.MockClock) -> None:
    session = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(write, session, send)
        await trio.sleep(10)
        await session.notify("notifications/message", {"level": "info", "data": "x"})
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    times = [(t, b"event: message" in body) for t, body in send.chunks]
    assert [(round(t), is_event) for t, is_event in times] == [(10, True), (25, False)]
    assert 15 <= times[1][0] - times[0][0] <= 15 + HEARTBEAT_SLACK


async def test_every_event_carries_an_id_of_its_stream_in_sequence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(write, session, send)
        for n in range(2):
            await session.notify("notifications/message", {"level": "info", "data": n})
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    ids = [line for _, body in send.chunks for line in body.split(b"\n") if line[:3] == b"id:"]
    key = session.main.key.encode()
    assert ids == [b"id: " + key + b".1", b"id: " + key + b".2"]


async def test_messages_waiting_together_are_written_in_order_in_one_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        for n in range(3):
            await session.notify("notifications/message", {"level": "info", "data": n})
        nursery.start_soon(write, session, send)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    [(_, body)] = send.chunks
    assert body.count(b"event: message\n") == 3
    assert body.index(b'"data":0') < body.index(b'"data":1') < body.index(b'"data":2')


async def test_the_writer_ends_when_the_session_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        session.close()
        with trio.fail_after(1):
            await write(session, send)
    assert send.chunks == []


async def test_a_full_stream_makes_emitters_wait_for_the_writer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = Session("s" * 32, trio_mcp.Server("w"), trio_mcp.Settings(replay_events=4), "sse")
    sent = 0

    async def emit_many() -> None:
        nonlocal sent
        for n in range(10):
            await session.notify("notifications/message", {"level": "info", "data": n})
            sent += 1

    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(emit_many)
        await trio.sleep(5)
        assert sent == 4  # the budget is full and nobody reads
        nursery.start_soon(write, session, send)
        await trio.sleep(5)
        assert sent == 10
        nursery.cancel_scope.cancel()
    assert sum(body.count(b"event: message\n") for _, body in send.chunks) == 10


async def test_a_client_that_stops_reading_is_dropped_and_its_events_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = make()
    taken: list[bytes] = []

    async def stuck_send(message: dict[str, Any]) -> None:
        if message.get("body"):
            if taken:  # takes one chunk, then never another (a full TCP window)
                await trio.sleep_forever()
            taken.append(message["body"])

    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        for n in range(3):
            await session.notify("notifications/message", {"level": "info", "data": n})
        with trio.fail_after(100):
            await write(session, stuck_send, stall=30)
            await session.notify("notifications/message", {"level": "info", "data": 3})
        # The heartbeat at 15 s (and up to HEARTBEAT_SLACK) is the chunk it never takes;
        # 30 s later it is dropped.
        assert 45 <= trio.current_time() <= 45 + HEARTBEAT_SLACK
        assert not session.main.attached
        assert session.main.log.after(0) is not None  # nothing lost: a resume replays it
        nursery.cancel_scope.cancel()
