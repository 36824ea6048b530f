"""Abandoned sessions leave nothing behind: no trio or asyncio task, no socket, no registry
entry, under every host."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
from hosts import count_server_tasks
from rawhttp import open_sse_stream, post

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host

SESSIONS = 1000
AT_ONCE = 100


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _abandon_one(url: str, index: int) -> None:
    stream, endpoint = await open_sse_stream(url)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-03-26",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    assert await post(url, endpoint, init) == 202
    batch: list[dict[str, Any]] = [{"jsonrpc": "2.0", "method": "notifications/initialized"}]
    if index % 3 == 0:  # a third leave with a call still running
        batch.append(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 60}},
            }
        )
    assert await post(url, endpoint, batch) == 202
    await stream.aclose()


async def _snapshot(app: trio_mcp.App) -> tuple[int, tuple[int, int], int]:
    """(sessions, (trio tasks, asyncio tasks), open file descriptors)."""
    return len(app.supervisor.store), await count_server_tasks(app), open_fds()


async def _settle(
    app: trio_mcp.App, expected: tuple[int, tuple[int, int], int]
) -> tuple[int, tuple[int, int], int]:
    with trio.move_on_after(10):
        while await _snapshot(app) != expected:
            await trio.sleep(0.05)
    return await _snapshot(app)


async def test_a_thousand_abandoned_sessions_leave_no_task_socket_or_registry_entry(
    serve_app: Any,
) -> None:
    from trio_mcp._demo import demo

    # No grace period: an abandoned session ends as soon as its stream drops. (With one,
    # it ends when the grace period is over; tests/test_session_lifetime.py shows that.)
    demo_app = demo.asgi_app(trio_mcp.Settings(resume_grace=0))
    async with serve_app(demo_app) as url:
        await _abandon_one(url, 1)  # warm up whatever the server creates lazily
        with trio.fail_after(10):
            while len(demo_app.supervisor.store):
                await trio.sleep(0.05)
        await trio.sleep(0.2)
        before = await _snapshot(demo_app)

        for start in range(0, SESSIONS, AT_ONCE):
            async with trio.open_nursery() as nursery:
                for index in range(start, start + AT_ONCE):
                    nursery.start_soon(_abandon_one, url, index)

        assert before[0] == 0
        assert await _settle(demo_app, before) == before
