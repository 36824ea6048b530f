"""trio-mcp behind a real nginx, configured by the README's examples/nginx.conf.

Each test starts its own nginx (Debian's ``nginx``; .ci/run installs it) on a free
loopback port, in front of an in-process trio-mcp server, and stops it by its PID at the
end. The config is the documented file with only the test's ports (and, for the
controls that show a test can fail, one directive) changed.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from peers import program
from sseclient import event_stream, open_sse

import trio_mcp
from trio_mcp._demo import demo

PROJECT = Path(__file__).resolve().parent.parent
CONFIG = PROJECT / "examples" / "nginx.conf"

#: The proxy's read timeout in these tests: nginx cuts a response silent for this long.
READ_TIMEOUT = 1.0
START_TIMEOUT = 10.0

# Lines of the documented config, and what a test runs instead.
SHORT_READ_TIMEOUT = {"proxy_read_timeout 60s;": f"proxy_read_timeout {READ_TIMEOUT:g}s;"}
BUFFERING_ON = {"proxy_buffering off;": "proxy_buffering on;"}
#: A site that compresses event streams too (nginx's gzip is per http block or server).
GZIP = "gzip on; gzip_types text/event-stream;"
HOST_WITHOUT_PORT = {"proxy_set_header Host $http_host;": "proxy_set_header Host $host;"}

Serve = Callable[[trio_mcp.App], AbstractAsyncContextManager[str]]


def render(*, listen: int, upstream: str, changes: dict[str, str]) -> str:
    """examples/nginx.conf with this test's addresses, and each line ``changes`` names
    (``"proxy_buffering off;"``) replaced."""
    text = CONFIG.read_text()
    addresses = {"listen": f"127.0.0.1:{listen}", "server": upstream}
    for name, value in addresses.items():
        text, count = re.subn(
            rf"^(\s*){name}\s[^;{{]*;",
            lambda match, name=name, value=value: f"{match[1]}{name} {value};",
            text,
            flags=re.MULTILINE,
        )
        assert count == 1, f"{CONFIG.name} should have exactly one {name} directive"
    for line, replacement in changes.items():
        assert text.count(line) == 1, f"{CONFIG.name} should have exactly one {line!r}"
        text = text.replace(line, replacement)
    return text


def main_config(prefix: Path, http_extra: str) -> str:
    """nginx.conf's own part: every file nginx writes stays under ``prefix``."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} notice;
master_process off;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
{temp}
    {http_extra}
    include {prefix / "trio-mcp.conf"};
}}
"""


def configure(prefix: Path, site: str, http_extra: str) -> Path:
    """Write the site's config and nginx's own under ``prefix``; the path of the latter."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "trio-mcp.conf").write_text(site)
    (prefix / "nginx.conf").write_text(main_config(prefix, http_extra))
    return prefix / "nginx.conf"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def accepting(port: int, process: trio.Process) -> bool:
    """Whether nginx listens on ``port`` before START_TIMEOUT; False if it exited."""
    with trio.fail_after(START_TIMEOUT):
        while process.poll() is None:
            try:
                connection = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)  # nginx tells no one when it listens: ask again
            else:
                await connection.aclose()
                return True
    return False


@asynccontextmanager
async def nginx(
    upstream_url: str,
    prefix: Path,
    changes: dict[str, str] | None = None,
    http_extra: str = "",
) -> AsyncIterator[str]:
    """Run nginx in front of ``upstream_url``; yields the proxy's base URL. ``changes``
    maps lines of the documented config to what the test runs instead."""
    executable = program("nginx", "nginx")
    upstream = upstream_url.removeprefix("http://")
    log = prefix / "error.log"
    for attempt in range(3):
        port = free_port()
        conf = configure(
            prefix, render(listen=port, upstream=upstream, changes=changes or {}), http_extra
        )
        process = await trio.lowlevel.open_process(
            [executable, "-p", prefix, "-c", conf, "-e", log, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if await accepting(port, process):
                yield f"http://127.0.0.1:{port}"
                return
        finally:
            with trio.CancelScope(shield=True):
                if process.poll() is None:
                    process.terminate()  # by its PID: nginx's fast shutdown
                    with trio.move_on_after(5):
                        await process.wait()
                    if process.poll() is None:
                        process.kill()
                        await process.wait()
        errors = log.read_text() if log.exists() else ""
        if "Address already in use" not in errors or attempt == 2:
            raise RuntimeError(f"nginx did not start (exit {process.returncode}):\n{errors}")
    raise AssertionError("unreachable")


async def stream_until_closed(proxy: str, seconds: float) -> tuple[bool, list[str], float]:
    """Open an initialized /sse session through ``proxy`` and leave it idle for up to
    ``seconds``: (whether it was cut, the comments it got, when it ended or now)."""
    async with open_sse(proxy) as sse:
        await sse.initialize()
        started = trio.current_time()
        with trio.move_on_after(seconds):
            await sse.closed.wait()
        ended = trio.current_time() - started
        if not sse.closed.is_set():
            # Still open: and still working, not merely not yet noticed as dead.
            assert (await sse.call("ping"))["result"] == {}
        return sse.closed.is_set(), sse.comments, ended


# -- the documented config ----------------------------------------------------------------


def test_the_readme_shows_the_config_these_tests_run() -> None:
    readme = (PROJECT / "README.md").read_text()
    assert f"```nginx\n{CONFIG.read_text()}```" in readme


# -- heartbeats ---------------------------------------------------------------------------


async def test_heartbeats_keep_an_idle_stream_open_past_the_proxy_read_timeout(
    serve_app: Serve, tmp_path: Path
) -> None:
    app = demo.asgi_app(trio_mcp.Settings(heartbeat_interval=0.3))
    async with serve_app(app) as url, nginx(url, tmp_path, SHORT_READ_TIMEOUT) as proxy:
        cut, comments, _ = await stream_until_closed(proxy, 3 * READ_TIMEOUT)
    assert not cut
    assert len(comments) >= 5 and set(comments) == {": ping"}


async def test_a_stream_without_heartbeats_in_time_is_cut_by_the_proxy(
    serve_app: Serve, tmp_path: Path
) -> None:
    # The control: were nginx's timeout not in play, the test above would prove nothing.
    app = demo.asgi_app(trio_mcp.Settings(heartbeat_interval=30))
    async with serve_app(app) as url, nginx(url, tmp_path, SHORT_READ_TIMEOUT) as proxy:
        cut, comments, after = await stream_until_closed(proxy, 5 * READ_TIMEOUT)
    assert cut and comments == []
    assert READ_TIMEOUT * 0.9 <= after < 5 * READ_TIMEOUT


# -- no buffering -------------------------------------------------------------------------


async def arrivals(proxy: str) -> dict[str, float]:
    """When each event of a 1 s ``sleep`` call arrived through ``proxy``, from the POST:
    ``progress <n>`` for each progress notification, ``reply`` for the result."""
    async with open_sse(proxy) as sse:
        await sse.initialize()
        started = trio.current_time()
        request_id = await sse.send_request(
            "tools/call",
            {"name": "sleep", "arguments": {"seconds": 1.0}, "_meta": {"progressToken": "p"}},
        )
        seen: dict[str, float] = {}
        while "reply" not in seen:
            message = await sse.receive(timeout=5)
            if message.get("method") == "notifications/progress":
                seen[f"progress {message['params']['progress']}"] = trio.current_time() - started
            elif message.get("id") == request_id:
                seen["reply"] = trio.current_time() - started
        assert not sse.closed.is_set()
        return seen


async def test_each_event_passes_the_proxy_as_soon_as_it_is_written(
    demo_url: str, tmp_path: Path
) -> None:
    async with nginx(demo_url, tmp_path) as proxy:
        seen = await arrivals(proxy)
    # The call reports progress at once, then every 0.25 s, and ends after 1 s.
    assert seen["progress 0"] < 0.5
    assert seen["reply"] - seen["progress 0"] >= 0.5


async def test_x_accel_buffering_keeps_events_flowing_through_a_buffering_compressing_proxy(
    demo_url: str, tmp_path: Path
) -> None:
    # Buffering left at nginx's default and the site compressing event streams: trio-mcp's
    # X-Accel-Buffering: no header turns the buffering off for its streams.
    async with nginx(demo_url, tmp_path, BUFFERING_ON, http_extra=GZIP) as proxy:
        seen = await arrivals(proxy)
    assert seen["progress 0"] < 0.5
    assert seen["reply"] - seen["progress 0"] >= 0.5


async def test_a_proxy_that_buffers_and_compresses_regardless_holds_events_back(
    demo_url: str, tmp_path: Path
) -> None:
    # The control: the same proxy, told to ignore the header, sits on the events.
    async with nginx(
        demo_url,
        tmp_path,
        BUFFERING_ON,
        http_extra=GZIP + " proxy_ignore_headers X-Accel-Buffering;",
    ) as proxy:
        with trio.move_on_after(3) as waiting:
            await arrivals(proxy)
    assert waiting.cancelled_caught


# -- resumption ---------------------------------------------------------------------------


async def post(http: httpx.AsyncClient, url: str, message: dict[str, Any]) -> None:
    response = await http.post(url, json=message)
    assert response.status_code == 202, response.text


async def test_a_stream_dropped_mid_call_resumes_through_the_proxy_with_each_reply_once(
    demo_app: trio_mcp.App, demo_url: str, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []
    async with nginx(demo_url, tmp_path) as proxy, httpx.AsyncClient(timeout=10) as http:
        async with event_stream(http, proxy) as stream:
            endpoint_event = await anext(stream)
            messages = proxy + endpoint_event.data
            await post(http, messages, initialize(0))
            await post(http, messages, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            await post(http, messages, sleep_call(1, seconds=1.0))
            last_id = endpoint_event.id
            async for event in stream:
                last_id = event.id
                seen.append(event.json())
                if seen[-1].get("method") == "notifications/progress":
                    break  # the client's connection to nginx drops with the call in flight
        assert [m["id"] for m in seen if "result" in m] == [0]
        async with event_stream(http, proxy, last_id) as stream:
            again = await anext(stream)
            assert (again.event, again.data) == ("endpoint", endpoint_event.data)
            # After the call's reply, a ping: replayed events come before it, if twice.
            async for event in stream:
                seen.append(event.json())
                if seen[-1].get("id") == 1:
                    await post(http, messages, {"jsonrpc": "2.0", "id": 2, "method": "ping"})
                if seen[-1].get("id") == 2:
                    break
    assert len(demo_app.supervisor.store) == 1
    assert [m["id"] for m in seen if "result" in m] == [0, 1, 2]
    progress = [m["params"]["progress"] for m in seen if m.get("method")]
    assert progress == sorted(set(progress)) and len(progress) >= 4


def initialize(request_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "behind-nginx", "version": "1"},
        },
    }


def sleep_call(request_id: int, seconds: float) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "sleep",
            "arguments": {"seconds": seconds},
            "_meta": {"progressToken": request_id},
        },
    }


# -- Host and Origin ----------------------------------------------------------------------


async def post_initialize(proxy: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            proxy + "/mcp",
            content=json.dumps(initialize(1)),
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                **headers,
            },
        )


async def test_a_page_from_the_proxy_s_own_origin_is_served(demo_url: str, tmp_path: Path) -> None:
    async with nginx(demo_url, tmp_path) as proxy:
        response = await post_initialize(proxy, origin=proxy)
    assert response.status_code == 200, response.text


async def test_forwarding_the_host_without_its_port_would_refuse_that_page(
    demo_url: str, tmp_path: Path
) -> None:
    # The control: why the config passes $http_host and not $host.
    async with nginx(demo_url, tmp_path) as proxy:
        conf = tmp_path / "trio-mcp.conf"
        assert "proxy_set_header Host $http_host;" in conf.read_text()
    async with nginx(demo_url, tmp_path / "host", HOST_WITHOUT_PORT) as proxy:
        response = await post_initialize(proxy, origin=proxy)
    assert response.status_code == 403, response.text


async def test_a_rebound_host_name_is_still_refused_behind_the_proxy(
    demo_url: str, tmp_path: Path
) -> None:
    async with nginx(demo_url, tmp_path) as proxy:
        response = await post_initialize(proxy, host="evil.example")
    assert response.status_code == 421, response.text


# -- Streamable HTTP ------------------------------------------------------------------------


async def test_the_official_client_speaks_streamable_http_through_the_proxy(
    demo_url: str, tmp_path: Path
) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with (
        nginx(demo_url, tmp_path) as proxy,
        streamable_http_client(proxy + "/mcp") as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        result = await client.call_tool("sleep", {"seconds": 0.6}, progress_callback=on_progress)
        echoed = await client.call_tool("echo", {"text": "through nginx"})
    assert not result.is_error
    assert len(progress) >= 3 and progress == sorted(progress)
    assert echoed.content[0].text == "through nginx"  # type: ignore[union-attr]
