"""Abandoned sessions leave nothing behind: no task, no socket, no registry entry."""

from __future__ import annotations

import os
from typing import Any

import trio
from rawhttp import open_sse_stream, post

import trio_mcp

SESSIONS = 1000
AT_ONCE = 100


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


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


async def _settle(app: trio_mcp.App, tasks: int, fds: int) -> tuple[int, int, int]:
    with trio.move_on_after(10):
        while (len(app.supervisor.store), count_tasks(), open_fds()) != (0, tasks, fds):
            await trio.sleep(0.05)
    return len(app.supervisor.store), count_tasks(), open_fds()


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
        tasks, fds = count_tasks(), open_fds()

        for start in range(0, SESSIONS, AT_ONCE):
            async with trio.open_nursery() as nursery:
                for index in range(start, start + AT_ONCE):
                    nursery.start_soon(_abandon_one, url, index)

        assert await _settle(demo_app, tasks, fds) == (0, tasks, fds)
