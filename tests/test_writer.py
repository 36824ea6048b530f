"""The SSE writer on its own, on trio's MockClock: heartbeats and event framing."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import trio_mcp
from trio_mcp._eventstream import HEARTBEAT
from trio_mcp._session import Session
from trio_mcp._sse import SseTransport
from trio_mcp._supervisor import SessionSupervisor


class RecordingSend:
    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.chunks.append((trio.current_time(), message["body"]))


def make(interval: float = 15.0) -> tuple[Session, SseTransport]:
    server = trio_mcp.Server("writer-test")
    settings = trio_mcp.Settings(heartbeat_interval=interval)
    session = Session("s" * 32, server, outbound_buffer=8, client_request_timeout=1)
    return session, SseTransport(SessionSupervisor(server, settings), settings)


async def test_an_idle_stream_gets_a_heartbeat_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session, transport = make(15.0)
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(transport._write, session, send)
        await trio.sleep(46)
        nursery.cancel_scope.cancel()
    assert [body for _, body in send.chunks] == [HEARTBEAT] * 3
    assert [round(t) for t, _ in send.chunks] == [15, 30, 45]


async def test_a_message_resets_the_heartbeat_timer(autojump_clock: trio.testing.MockClock) -> None:
    session, transport = make(15.0)
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        nursery.start_soon(transport._write, session, send)
        await trio.sleep(10)
        await session.notify("notifications/message", {"level": "info", "data": "x"})
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    times = [(round(t), body.startswith(b"event: message")) for t, body in send.chunks]
    assert times == [(10, True), (25, False)]


async def test_messages_waiting_together_are_written_in_order_in_one_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session, transport = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        for n in range(3):
            await session.notify("notifications/message", {"level": "info", "data": n})
        nursery.start_soon(transport._write, session, send)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    [(_, body)] = send.chunks
    assert body.count(b"event: message\n") == 3
    assert body.index(b'"data":0') < body.index(b'"data":1') < body.index(b'"data":2')


async def test_the_writer_ends_when_the_session_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session, transport = make()
    send = RecordingSend()
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        session.close()
        with trio.fail_after(1):
            await transport._write(session, send)
    assert send.chunks == []
