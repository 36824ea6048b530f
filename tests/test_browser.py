"""A web page in a real browser as the HTTP+SSE client: headless Chromium (Debian's
``chromium`` and ``chromium-driver``; .ci/run installs them), driven by Selenium.

The page (tests/browser_client.html) is served by the MCP app itself, so its fetches
pass the Origin check as a same-origin page's do. It uses only what a browser gives a
page: ``EventSource`` for the stream, with its own reconnection and ``Last-Event-ID``,
and ``fetch`` for the POSTs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from peers import module, program

import trio_mcp
from trio_mcp._demo import demo

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
        " received: mcp.received};",
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
