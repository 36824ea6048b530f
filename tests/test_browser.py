"""A web page in a real browser as the HTTP+SSE client: headless Chromium (Debian's
``chromium`` and ``chromium-driver``; .ci/run installs them), driven by Selenium.

The page (tests/browser_client.html) is served by the MCP app itself, so its fetches
pass the Origin check as a same-origin page's do. It uses only what a browser gives a
page: ``EventSource`` for the stream, with its own reconnection and ``Last-Event-ID``,
and ``fetch`` for the POSTs. Last, the page goes through nginx to two server processes
sharing a redis-server, and the one holding its stream is killed.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from peers import module, program
from redispeer import RedisPeer, free_port
from test_redis_deploy import call, nginx_over
from test_redis_processes import PYTHON_M, worker_processes

import trio_mcp
from trio_mcp._demo import demo
from trio_mcp._redis_takeover import LOST_CODE, LOST_MESSAGE

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

Serve = Callable[[Any], AbstractAsyncContextManager[str]]
PAGE = Path(__file__).with_name("browser_client.html").read_text()
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root, Chromium runs only without its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium's own calls home would be refused by a machine without network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long one step in the page may take before the test fails.
STEP_TIMEOUT = 15
TEST_TIMEOUT = 60

INITIALIZE = {
    "protocolVersion": "2024-11-05",
    "capabilities": {},
    "clientInfo": {"name": "a web page", "version": "1"},
}
#: A call still running when the stream drops: its reply is written while no one listens.
SLEEP = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "sleep", "arguments": {"seconds": 0.5}, "_meta": {"progressToken": 2}},
}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    webdriver = module("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = program("chromium", "chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    # A driver path of our own: Selenium then never tries to download one.
    service = webdriver.ChromeService(program("chromedriver", "chromium-driver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(STEP_TIMEOUT)
        driver.set_script_timeout(STEP_TIMEOUT)
        yield driver
    finally:
        driver.quit()


class Server:
    """The demo app with the client page at ``/``, and a hand on its open /sse
    responses: :meth:`drop` ends them as a restarting server or a failing network does."""

    def __init__(self, settings: trio_mcp.Settings | None = None) -> None:
        self.app = demo.asgi_app(settings)
        self.app.route("/")(self.page)
        self._streams: list[trio.CancelScope] = []
        self._cleanly = False
        #: The Last-Event-ID of each GET /sse (None when it had none), in order.
        self.last_event_ids: list[str | None] = []

    async def page(self) -> str:
        return PAGE

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["path"] != self.app.settings.sse_path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        self.last_event_ids.append(
            headers[b"last-event-id"].decode() if b"last-event-id" in headers else None
        )
        with trio.CancelScope() as stream:
            self._streams.append(stream)
            await self.app(scope, receive, send)
        if stream.cancelled_caught and self._cleanly:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def drop(self, *, cleanly: bool) -> None:
        """End every open /sse response: ``cleanly`` with its last chunk, else cut off
        mid-body (hypercorn then closes the connection). The sessions live on."""
        self._cleanly = cleanly
        for stream in self._streams:
            stream.cancel()


async def run_js(driver: WebDriver, body: str, *args: Any) -> Any:
    """Run ``body``, an async function's body with ``mcp`` and ``args`` in scope, in the
    page; its result, or a failure with the page's error."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        f"(async () => {{ {body} }})().then((value) => done({{value}}),"
        " (error) => done({error: String(error)}));"
    )
    outcome = await trio.to_thread.run_sync(
        functools.partial(driver.execute_async_script, script, *args)
    )
    assert "error" not in outcome, outcome["error"]
    return outcome.get("value")


async def open_page(driver: WebDriver, url: str) -> None:
    await trio.to_thread.run_sync(driver.get, url + "/")
    assert await run_js(driver, "return await mcp.until(() => mcp.endpoints[0]);")


async def page_state(driver: WebDriver) -> dict[str, Any]:
    state: dict[str, Any] = await run_js(
        driver,
        "return {opened: mcp.opened, errors: mcp.errors, endpoints: mcp.endpoints,"
        " endpointIds: mcp.endpointIds, received: mcp.received};",
    )
    return state


async def start_session(driver: WebDriver) -> dict[str, Any]:
    """initialize, then notifications/initialized: the initialize result."""
    reply = await run_js(driver, "return await mcp.request(1, 'initialize', args[0]);", INITIALIZE)
    assert await run_js(driver, "return await mcp.notify('notifications/initialized');") == 202
    result: dict[str, Any] = reply["result"]
    return result


async def test_a_page_opens_an_event_source_posts_with_fetch_and_gets_the_replies(
    browser: WebDriver, serve_app: Serve
) -> None:
    server = Server()
    with trio.fail_after(TEST_TIMEOUT):
        async with serve_app(server) as url:
            await open_page(browser, url)
            result = await start_session(browser)
            tools = await run_js(browser, "return await mcp.request(2, 'tools/list', {});")
            echoed = await run_js(
                browser,
                "return await mcp.request(3, 'tools/call', args[0]);",
                {"name": "echo", "arguments": {"text": "from a page"}},
            )
            state = await page_state(browser)
    assert result["protocolVersion"] == "2024-11-05"
    assert result["serverInfo"]["name"] == "trio-mcp-demo"
    assert {"echo", "add", "sleep"} <= {tool["name"] for tool in tools["result"]["tools"]}
    assert echoed["result"]["content"] == [{"type": "text", "text": "from a page"}]
    assert [r["message"]["id"] for r in state["received"]] == [1, 2, 3]
    assert (state["opened"], state["errors"], len(state["endpoints"])) == (1, 0, 1)
    assert server.last_event_ids == [None]


@pytest.mark.parametrize("cleanly", [False, True], ids=["cut-off", "ended"])
async def test_event_source_reconnects_by_itself_and_gets_the_reply_in_flight_once(
    browser: WebDriver, serve_app: Serve, cleanly: bool
) -> None:
    # EventSource waits the retry delay the endpoint event named before it reconnects:
    # the call ends in that gap, with nobody listening.
    server = Server(trio_mcp.Settings(sse_retry_ms=1000))
    with trio.fail_after(TEST_TIMEOUT):
        async with serve_app(server) as url:
            await open_page(browser, url)
            await start_session(browser)
            status = await run_js(
                browser,
                "const status = await mcp.post(args[0]);"
                "await mcp.until(() => mcp.received.find((r) => r.message.params?.progressToken));"
                "return status;",
                SLEEP,
            )
            assert status == 202
            server.drop(cleanly=cleanly)  # the call is still running
            reply = await run_js(browser, "return (await mcp.reply(2)).message;")
            # Anything replayed twice would come before the answer to a later request.
            assert await run_js(browser, "return await mcp.request(3, 'ping');") == {
                "jsonrpc": "2.0",
                "id": 3,
                "result": {},
            }
            state = await page_state(browser)
    assert reply["result"]["content"] == [{"type": "text", "text": "slept 0.5 s"}]
    received = state["received"]
    before = [r for r in received if r["connection"] == 1]
    after = [r for r in received if r["connection"] == 2]
    # The reply came on the new connection, which EventSource opened by itself.
    assert (state["opened"], state["errors"]) == (2, 1)
    assert [r["message"].get("id") for r in after if "method" not in r["message"]] == [2, 3]
    assert [r["message"]["id"] for r in received if "method" not in r["message"]] == [1, 2, 3]
    # It resumed from the last event the page had, in the same session.
    assert server.last_event_ids == [None, before[-1]["id"]]
    assert state["endpoints"][0] == state["endpoints"][1]
    progress = [r["message"]["params"]["progress"] for r in received if "method" in r["message"]]
    assert progress == sorted(set(progress)) and len(progress) >= 3
    assert len({r["id"] for r in received}) == len(received)


async def page_call(driver: WebDriver, request_id: int, name: str, **arguments: Any) -> Any:
    """tools/call from the page; the text of its result."""
    reply = await run_js(
        driver, "return await mcp.request(args[0], 'tools/call', args[1]);", request_id,
        {"name": name, "arguments": arguments},
    )  # fmt: skip
    assert "result" in reply, reply
    return reply["result"]["content"][0]["text"]


async def test_event_source_resumes_through_nginx_on_the_other_instance_when_its_own_dies(
    browser: WebDriver, redis: RedisPeer, tmp_path: Path
) -> None:
    # Two server processes (tests/redis_target.py, 1 s worker timeout) sharing the
    # redis-server, behind nginx round-robin with no stickiness (nginx-scale.conf).
    ports = [free_port(), free_port()]
    with ExitStack() as processes, trio.fail_after(TEST_TIMEOUT):
        pids = [
            processes.enter_context(
                worker_processes([*PYTHON_M, "redis_target:app"], redis, port=port)
            )[1]
            for port in ports
        ]
        async with nginx_over([f"http://127.0.0.1:{port}" for port in ports], tmp_path) as proxy:
            await open_page(browser, proxy)
            await start_session(browser)
            # Tools run on the session's owner: the instance that took the page's stream.
            owner = int(await page_call(browser, 2, "worker"))
            assert owner in pids
            # Two calls in flight, then one answered: the kill comes after all three.
            statuses = await run_js(
                browser,
                "return [await mcp.post(args[0]), await mcp.post(args[1])];",
                call(3, "slow", seconds=60),
                call(4, "slow", seconds=60),
            )
            assert statuses == [202, 202]
            assert await page_call(browser, 5, "echo", text="before") == "before"
            os.kill(owner, signal.SIGKILL)
            # Nothing but the page's own EventSource brings the stream back.
            missed = await run_js(
                browser, "return [(await mcp.reply(3)).message, (await mcp.reply(4)).message];"
            )
            assert await page_call(browser, 6, "echo", text="after") == "after"
            survivor = int(await page_call(browser, 7, "worker"))
            state = await page_state(browser)
    lost = {"code": LOST_CODE, "message": LOST_MESSAGE}
    assert missed == [{"jsonrpc": "2.0", "id": i, "error": lost} for i in (3, 4)]
    assert survivor in pids and survivor != owner
    received = state["received"]
    replies = [(r["connection"], r["message"]["id"]) for r in received if "id" in r["message"]]
    # Each reply once, in order: the first stream's, then (the two lost calls in the
    # order their errors were written) the resumed stream's.
    assert replies[:3] == [(1, 1), (1, 2), (1, 5)]
    assert sorted(replies[3:5]) == [(2, 3), (2, 4)]
    assert replies[5:] == [(2, 6), (2, 7)]
    seqs = [int(r["id"].rsplit(".", 1)[1]) for r in received]
    assert seqs == sorted(set(seqs))
    # One reconnection, by the EventSource itself, into the same session: the
    # resumed endpoint event carries the Last-Event-ID the browser sent.
    assert (state["opened"], len(state["endpoints"])) == (2, 2)
    assert state["endpoints"][0] == state["endpoints"][1]
    assert state["endpointIds"][1] == [r for r in received if r["connection"] == 1][-1]["id"]
