"""How users start the server: python -m trio_mcp, hypercorn with and without -k trio, and
uvicorn, each exactly as typed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(*command: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def first_event(url: str, deadline: float = 15) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with httpx.stream("GET", url, timeout=5) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        return line
        except httpx.TransportError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_python_dash_m_serves_the_demo_on_the_given_port() -> None:
    port = free_port()
    with running(sys.executable, "-m", "trio_mcp", "--port", str(port)) as process:
        assert first_event(f"http://127.0.0.1:{port}/sse").startswith(
            "data: /messages/?session_id="
        )
        assert process.poll() is None


def test_python_dash_m_serves_a_users_server_object(tmp_path: pytest.TempPathFactory) -> None:
    module = tmp_path / "weather_server.py"  # type: ignore[operator]
    module.write_text(
        "import trio_mcp\nserver = trio_mcp.Server('weather')\n"
        "@server.tool()\nasync def forecast(city: str) -> str:\n    return 'sunny in ' + city\n"
    )
    port = free_port()
    env_path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    os.environ["PYTHONPATH"], saved = env_path, os.environ.get("PYTHONPATH")
    try:
        with running(
            sys.executable, "-m", "trio_mcp", "--port", str(port), "weather_server:server"
        ):
            assert first_event(f"http://127.0.0.1:{port}/sse").startswith("data: /messages/")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def test_python_dash_m_refuses_a_shutdown_timeout_an_app_targets_settings_do_not_hold() -> None:
    # trio_mcp.app:app is made with the default settings (10 s).
    argv = [sys.executable, "-m", "trio_mcp", "--port", str(free_port())]
    done = subprocess.run(
        [*argv, "--shutdown-timeout", "3", "trio_mcp.app:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "Settings(shutdown_timeout=3)" in done.stderr


def test_hypercorn_with_the_trio_worker_serves_the_demo_app() -> None:
    port = free_port()
    hypercorn = [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        "-b",
        f"127.0.0.1:{port}",
        "trio_mcp.app",
    ]
    with running(*hypercorn):
        assert first_event(f"http://127.0.0.1:{port}/sse").startswith("data: /messages/")


def test_plain_hypercorn_serves_the_demo_app_as_typed() -> None:
    # hypercorn's default worker is asyncio: the app runs trio as its guest.
    port = free_port()
    with running(sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "trio_mcp.app"):
        assert first_event(f"http://127.0.0.1:{port}/sse").startswith("data: /messages/")


def test_uvicorn_serves_the_demo_app_as_typed() -> None:
    port = free_port()
    with running(sys.executable, "-m", "uvicorn", "--port", str(port), "trio_mcp.app:app"):
        assert first_event(f"http://127.0.0.1:{port}/sse").startswith("data: /messages/")


def test_an_async_library_other_than_trio_or_asyncio_fails_startup_saying_which() -> None:
    import trio

    from trio_mcp._app import _refuse_lifespan

    sent: list[dict[str, str]] = []

    async def receive() -> dict[str, str]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    trio.run(_refuse_lifespan, "curio", receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "curio" in sent[0]["message"] and "uvicorn" in sent[0]["message"]
