"""Soak: sessions over two worker processes behind nginx (examples/nginx-scale.conf),
one worker killed with SIGKILL and restarted on its port mid-run, a third of the
streams dropped and resumed at random. Every call sent (answered 202) gets exactly one
reply: its result, or the worker-lost error; counted per request id.

Bounded: SESSIONS sessions for CHURN_SECONDS of calls. Reuses test_soak's raw-socket
resumable stream; random choices come from seeded generators."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import trio
from redispeer import RedisPeer, free_port
from test_redis_deploy import nginx_over
from test_redis_processes import worker_processes
from test_soak import ResumableStream

from trio_mcp._redis_takeover import LOST_CODE

SESSIONS = 100
CHURN_SECONDS = 20.0
KILL_AT = 6.0
RESTART_AT = 9.0
REPLY_TIMEOUT = 30.0
WORKER = [sys.executable, "-m", "trio_mcp", "--server", "hypercorn", "--port", "{port}"]


class Replies(ResumableStream):
    """A resumable stream that also keeps each reply, to tell results from errors."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.errors: dict[Any, dict[str, Any]] = {}

    async def read(self) -> None:
        try:
            while True:
                event = await self._next_event()
                message = json.loads(event["data"])
                if "method" not in message:
                    self.replies[message["id"]] += 1
                    if "error" in message:
                        self.errors[message["id"]] = message["error"]
                    self._arrived.set()
                    self._arrived = trio.Event()
        except (trio.ClosedResourceError, trio.BrokenResourceError, EOFError, OSError):
            pass


async def post(http: httpx.AsyncClient, url: str, endpoint: str, message: Any) -> None:
    """Until accepted: 503 (Redis or a takeover under way) and 502 (nginx found no
    instance) accept nothing, so sending again is safe."""
    with trio.fail_after(REPLY_TIMEOUT):
        while True:
            try:
                response = await http.post(url + endpoint, json=message)
            except httpx.TransportError:
                await trio.sleep(0.1)
                continue
            if response.status_code == 202:
                return
            assert response.status_code in (502, 503), response.text
            await trio.sleep(0.1)


async def connect(stream: Replies) -> None:
    with trio.fail_after(REPLY_TIMEOUT):
        while True:
            try:
                await stream.connect()
                return
            except (
                EOFError,
                OSError,
                AssertionError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                await stream.drop()
                await trio.sleep(0.1)


async def one_session(
    http: httpx.AsyncClient, url: str, index: int, deadline: float, sent: list[int]
) -> Replies:
    rng = random.Random(index)
    await trio.sleep(index * 0.02)
    stream = Replies(url)
    await connect(stream)
    done = False

    async def keep_reading() -> None:
        # A stream cut by a killed worker (or dropped below) is resumed at once.
        while not done:
            await stream.read()
            if not done:
                await stream.drop()
                await connect(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_reading)
        params = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        await post(http, url, stream.endpoint, init)
        await stream.reply(0)
        notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await post(http, url, stream.endpoint, notified)

        async def chaos() -> None:
            while trio.current_time() < deadline - 2:
                await trio.sleep(rng.uniform(1.0, 5.0))
                if stream._socket is not None:
                    await stream._socket.aclose()  # read() ends; keep_reading resumes

        if rng.random() < 0.3:
            nursery.start_soon(chaos)
        request_id = index * 10_000
        while trio.current_time() < deadline:
            request_id += 1
            if rng.random() < 0.4:
                tool = {"name": "slow", "arguments": {"seconds": rng.uniform(0.2, 2.0)}}
            else:
                tool = {"name": "echo", "arguments": {"text": str(request_id)}}
            message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": tool}
            await post(http, url, stream.endpoint, message)
            sent.append(request_id)
            await stream.reply(request_id)
            await trio.sleep(rng.uniform(0, 0.5))
        # Nothing more may come: a late duplicate would show in the counts.
        await trio.sleep(1.0)
        done = True
        nursery.cancel_scope.cancel()
    await stream.drop()
    return stream


async def test_a_killed_and_restarted_worker_behind_nginx_loses_and_repeats_no_reply(
    redis: RedisPeer, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    upstreams = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as workers:
        pids = [
            workers.enter_context(worker_processes(WORKER, redis, port=port))[1] for port in ports
        ]
        async with nginx_over(upstreams, tmp_path, connections=2048) as proxy:
            sent: list[int] = []
            streams: list[Replies] = []
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(timeout=REPLY_TIMEOUT, limits=limits) as http:
                start = trio.current_time()
                deadline = start + CHURN_SECONDS

                async def one(index: int) -> None:
                    streams.append(await one_session(http, proxy, index, deadline, sent))

                async with trio.open_nursery() as nursery:
                    for index in range(SESSIONS):
                        nursery.start_soon(one, index)
                    await trio.sleep_until(start + KILL_AT)
                    os.kill(pids[0], signal.SIGKILL)
                    await trio.sleep_until(start + RESTART_AT)
                    workers.enter_context(worker_processes(WORKER, redis, port=ports[0]))
    replies: Counter[int] = Counter()
    lost = 0
    for stream in streams:
        replies.update(stream.replies)
        lost += sum(1 for e in stream.errors.values() if e["code"] == LOST_CODE)
    expected = Counter(sent)
    expected[0] = SESSIONS  # each session's initialize
    assert len(streams) == SESSIONS
    assert replies == expected
    assert lost > 0  # the kill hit calls in flight: else this proves little
    assert sum(stream.resumptions for stream in streams) > SESSIONS // 3
