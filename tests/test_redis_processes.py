"""Workers as real processes sharing a real redis-server: one killed with SIGKILL has
its tasks settled ``failed`` by the survivors, and ``hypercorn -k trio -w 2`` serves one
task through either worker, whichever the kernel hands a connection to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio
from redispeer import RedisPeer, free_port
from statelessclient import StatelessClient, listen, open_stateless
from test_tasks import EXT, Client

import trio_mcp
from trio_mcp._redis_tasks import WORKER_LOST

TESTS = Path(__file__).parent
ROOT = TESTS.parent
#: Seconds a worker process may take to start serving.
START = 20.0
CAPABILITIES = {**EXT, "elicitation": {}}
ANSWER = {"action": "accept", "content": {"name": "Ada"}}

Serve = Callable[[Any], Any]


@contextmanager
def worker_processes(
    command: list[str],
    redis: RedisPeer,
    *,
    url_from_env: bool = True,
    port: int | None = None,
    worker_timeout: float = 1.0,
) -> Iterator[tuple[str, int]]:
    """Run ``command`` (serving tests/redis_target.py on a free port; ``{port}`` and
    ``{redis}`` filled in) until the block ends; yields its URL and PID. The Redis URL
    is in ``TRIO_MCP_REDIS_URL`` unless not ``url_from_env``. Stopped by its PID
    (SIGTERM, then SIGKILL). ``port`` is a free one unless given (a restart). A worker
    that does not beat for ``worker_timeout`` seconds counts as lost: short, so that a
    killed one is noticed within a test's bounds."""
    port = free_port() if port is None else port
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
        "TEST_WORKER_TIMEOUT": str(worker_timeout),
    }
    env.pop("TRIO_MCP_REDIS_URL", None)
    if url_from_env:
        env["TRIO_MCP_REDIS_URL"] = redis.url
    process = subprocess.Popen(
        [arg.format(port=port, redis=redis.url) for arg in command],
        cwd=TESTS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def spawned_workers(parent: int) -> list[int]:
    """The PIDs of the worker processes ``hypercorn -w N`` (PID ``parent``) spawned: its
    children but for multiprocessing's resource tracker."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited while we looked
        # The parent's PID is the second field after the command name in parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
            workers.append(int(entry.name))
    return workers


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """A worker process stopped (SIGSTOP) until the block ends. Worker processes share one
    listening socket and whichever calls accept first takes a connection; which one
    wins depends on how the scheduler placed them, and on some machines it is always the
    same. A stopped worker accepts nothing, so each new connection goes to another: a
    test picks the worker a connection reaches instead of counting on the kernel."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the worker did not start")


PYTHON_M = [sys.executable, "-m", "trio_mcp", "--server", "hypercorn", "--port", "{port}"]


async def test_a_killed_workers_tasks_settle_failed_saying_it_was_lost(
    serve_app: Serve, redis: RedisPeer
) -> None:
    survivor = trio_mcp.Server("survivor").asgi_app(
        trio_mcp.Settings(redis_url=redis.url, redis_worker_timeout=1.0)
    )
    with worker_processes([*PYTHON_M, "redis_target:app"], redis) as (doomed, pid):
        async with serve_app(survivor) as there:
            task_id = (await Client(doomed, EXT).call("forever"))["taskId"]
            async with (
                open_stateless(there, capabilities=EXT) as raw,
                listen(raw, {"taskIds": [task_id]}) as listener,
            ):
                assert (await listener.next())["method"].endswith("/acknowledged")
                os.kill(pid, signal.SIGKILL)  # no settling, no goodbye
                # Nobody polls: the survivor's heartbeat notices the silence (within
                # the 1 s worker timeout and a beat) and settles it, once.
                task = (await listener.next(timeout=5))["params"]
            assert task["status"] == "failed"
            assert task["error"] == {"code": trio_mcp.INTERNAL_ERROR, "message": WORKER_LOST}
            assert (await Client(there, EXT).get(task_id))["status"] == "failed"


async def test_python_m_trio_mcp_redis_shares_the_tasks_of_the_server_it_serves(
    serve_app: Serve, redis: RedisPeer
) -> None:
    command = [*PYTHON_M, "--redis", "{redis}", "redis_target:server"]
    other = trio_mcp.Server("other").asgi_app(trio_mcp.Settings(redis_url=redis.url))
    with worker_processes(command, redis, url_from_env=False) as (url, _):
        async with serve_app(other) as there:
            task_id = (await Client(url, EXT).call("forever"))["taskId"]
            assert (await Client(there, EXT).get(task_id))["status"] == "working"
            await Client(there, EXT).result("tasks/cancel", {"taskId": task_id})
            assert (await Client(there, EXT).wait_for(task_id, "cancelled"))["statusMessage"] == (
                "cancelled by the client"
            )


async def test_hypercorn_with_two_workers_serves_one_task_through_either(
    redis: RedisPeer,
) -> None:
    command = [
        sys.executable, "-m", "hypercorn", "-k", "trio", "-w", "2",
        "-b", "127.0.0.1:{port}", "redis_target:app",
    ]  # fmt: skip
    with worker_processes(command, redis, worker_timeout=10) as (url, parent):
        async with open_stateless(url, capabilities=CAPABILITIES) as first:
            creator = await _pid(first)
            asking = (await _result(first, "tools/call", {"name": "ask_once"}))["taskId"]
            running = (await _result(first, "tools/call", {"name": "forever"}))["taskId"]
        (other,) = set(spawned_workers(parent)) - {creator}
        async with open_stateless(url, capabilities=CAPABILITIES) as client:
            # With the creator stopped, the other worker takes the connection; the
            # client keeps it alive, so every request below reaches that worker.
            with paused(creator):
                with trio.fail_after(20):
                    assert await _pid(client) == other
            task = await _result(client, "tasks/get", {"taskId": asking})
            assert task["status"] in ("working", "input_required")
            (key,) = (await _until_asked(client, asking))["inputRequests"]
            update = {"taskId": asking, "inputResponses": {key: ANSWER}}
            await _result(client, "tasks/update", update)
            await _result(client, "tasks/cancel", {"taskId": running})
            done = await _until(client, asking, "completed")
            cancelled = await _until(client, running, "cancelled")
            assert await _pid(client) == other
        # The answer reached the coroutine parked in the creating process.
        assert done["result"]["content"][0]["text"] == f"Hi Ada from {creator}"
        assert cancelled["statusMessage"] == "cancelled by the client"


async def _result(
    client: StatelessClient, method: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A request that must succeed (tasks' shapes are the extension's, not in the core
    schema the client checks against)."""
    response = await client.post(client.request(method, params))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def _pid(client: StatelessClient) -> int:
    result = await _result(client, "tools/call", {"name": "worker"})
    return int(result["content"][0]["text"])


async def _until(client: StatelessClient, task_id: str, status: str) -> dict[str, Any]:
    with trio.fail_after(5):
        while (task := await _result(client, "tasks/get", {"taskId": task_id}))["status"] != status:
            await trio.sleep(0.05)
    return task


async def _until_asked(client: StatelessClient, task_id: str) -> dict[str, Any]:
    return await _until(client, task_id, "input_required")
