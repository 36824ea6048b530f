"""Generated garbage against both transports: every answer is a 4xx or a JSON-RPC error
(or a plain success), never a 5xx or a traceback, and the server is whole afterwards.

Hypothesis drives plain synchronous requests, so the server runs in a thread of its own
(its own trio run) on loopback; what it holds is counted inside that run.

Four properties of 2,500 examples each throw over 10,000 requests: bodies at the
HTTP+SSE POST endpoint and at /mcp (from raw bytes through JSON to near-valid JSON-RPC
aimed at real methods), and methods, paths and headers at every route.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import httpx
import pytest
import trio
from hosts import count_trio_tasks as count_tasks
from hypercorn.config import Config
from hypercorn.trio import serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_mcp

EXAMPLES = 2500
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: a failure here is reproducible
)

METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
]


def fuzz_server() -> trio_mcp.Server:
    """Fast handlers only: a generated call must never start something long."""
    server = trio_mcp.Server("fuzz")

    @server.tool()
    async def echo(text: str, times: int = 1) -> str:
        """Echo text.

        Args:
            text: what to echo.
            times: how often.
        """
        return text * max(0, min(times, 10))

    @server.tool()
    async def fail() -> str:
        """Always raises."""
        raise RuntimeError("boom")

    @server.resource("fuzz://static")
    async def static() -> str:
        """A resource."""
        return "static"

    @server.resource("fuzz://item/{id}")
    async def item(id: str) -> str:
        """A template."""
        return id

    @server.prompt()
    async def greet(name: str) -> str:
        """A prompt.

        Args:
            name: whom to greet.
        """
        return f"hi {name}"

    return server


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.integers() | st.text(max_size=8) | st.none() | st.floats() | st.booleans()
params = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["echo", "fail", "greet", "nope"]) | st.text(max_size=5),
            "arguments": json_values,
            "uri": st.sampled_from(["fuzz://static", "fuzz://item/1", "x"]) | st.text(),
            "cursor": st.text(max_size=12) | json_values,
            "level": st.sampled_from(["debug", "info", "loud"]) | json_values,
            "requestId": ids,
            "protocolVersion": st.sampled_from(trio_mcp.SUPPORTED_VERSIONS) | st.text(),
            "capabilities": json_values,
            "clientInfo": json_values,
            "ref": json_values,
            "argument": json_values,
            "_meta": json_values,
        },
    ),
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]) | json_values},
    optional={
        "id": ids,
        "method": st.sampled_from(METHODS) | st.text(max_size=12),
        "params": params,
        "result": json_values,
        "error": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    messages.map(lambda m: json.dumps(m).encode()),
    st.lists(messages, max_size=4).map(lambda b: json.dumps(b).encode()),
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
).map(
    str.strip  # HTTP carries no leading or trailing blanks in a value
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "accept",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "origin",
            "authorization",
            "content-length",
        ]
    ),
    header_values | st.sampled_from(["application/json", "text/event-stream", "*/*", ""]),
    max_size=5,
)


def check(status: int, body: bytes) -> None:
    assert status < 500, (status, body[:300])
    assert b"Traceback" not in body


def exchange(
    http: httpx.Client, method: str, url: str, content: bytes, headers: dict[str, str]
) -> None:
    """One request; an event stream is read only until its first chunk, then dropped."""
    with http.stream(method, url, content=content, headers=headers) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for chunk in response.iter_bytes():
                check(response.status_code, chunk)
                break
            return
        check(response.status_code, response.read())


class ServerThread:
    """The fuzz server, served by hypercorn in a trio run of its own thread."""

    def __init__(self, app: trio_mcp.App, url: str, token: trio.lowlevel.TrioToken) -> None:
        self.app = app
        self.url = url
        self.token = token

    def tasks(self) -> int:
        return trio.from_thread.run_sync(count_tasks, trio_token=self.token)

    def end_all_sessions(self) -> None:
        def end() -> None:
            for session in list(self.app.supervisor._local):
                self.app.supervisor.end(session)

        trio.from_thread.run_sync(end, trio_token=self.token)


@contextmanager
def serving_in_a_thread() -> Iterator[ServerThread]:
    app = fuzz_server().asgi_app(trio_mcp.Settings(resume_grace=0, session_idle_timeout=60))
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.Event]] = queue.Queue()

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.graceful_timeout = 0.5
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
            started.put((binds[0], trio.lowlevel.current_trio_token(), stop))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    url, token, stop = started.get(timeout=15)
    try:
        yield ServerThread(app, url, token)
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token)
        thread.join(15)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serving_in_a_thread() as running:
        yield running


@contextmanager
def leaves_the_server_whole(server: ServerThread) -> Iterator[httpx.Client]:
    """Around a fuzz run: afterwards, a new session is served normally, and once the
    run's sessions are ended the server holds no more tasks than before it."""
    server.end_all_sessions()
    tasks = server.tasks()
    with httpx.Client(timeout=10) as http:
        yield http
        response = http.post(
            server.url + "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
            },
            headers={"accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 200, response.text
    server.end_all_sessions()
    for _ in range(100):  # the run's tasks unwind within 5 s
        if server.tasks() <= tasks:
            break
        threading.Event().wait(0.05)
    assert server.tasks() <= tasks
    assert len(server.app.supervisor.store) == 0


def initialized_sse(http: httpx.Client, base: str) -> tuple[str, httpx.Response, Iterator[str]]:
    """An initialized HTTP+SSE session (on 2025-03-26, so batches are in play). The
    stream's line iterator is returned too: once collected, it would close the stream."""
    request = http.build_request("GET", base + "/sse")
    response = http.send(request, stream=True)
    lines = response.iter_lines()
    while not (line := next(lines)).startswith("data: "):
        pass
    endpoint = line.removeprefix("data: ")
    init = {
        "jsonrpc": "2.0",
        "id": "init",
        "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {}},
    }
    assert http.post(base + endpoint, json=init).status_code == 202
    return endpoint, response, lines


def test_generated_bodies_at_the_sse_post_endpoint(server: ServerThread) -> None:
    with leaves_the_server_whole(server) as http:
        endpoint, stream, _lines = initialized_sse(http, server.url)

        @FUZZ
        @given(body=bodies)
        def post(body: bytes) -> None:
            response = http.post(
                server.url + endpoint, content=body, headers={"content-type": "application/json"}
            )
            check(response.status_code, response.content)
            # Each body reached the live session (an ended one would answer 404).
            assert response.status_code != 404, response.text

        try:
            post()
        finally:
            stream.close()


def test_generated_bodies_at_the_mcp_endpoint(server: ServerThread) -> None:
    with leaves_the_server_whole(server) as http:
        init = http.post(
            server.url + "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {}},
            },
            headers={"accept": "application/json, text/event-stream"},
        )
        session_headers = {
            "mcp-session-id": init.headers["mcp-session-id"],
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        }

        @FUZZ
        @given(body=bodies, with_session=st.booleans())
        def post(body: bytes, with_session: bool) -> None:
            sent = session_headers if with_session else {"content-type": "application/json"}
            exchange(http, "POST", server.url + "/mcp", body, sent)

        post()


def test_generated_headers_at_every_route(server: ServerThread) -> None:
    with leaves_the_server_whole(server) as http:

        @FUZZ
        @given(
            method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD"]),
            path=st.sampled_from(["/sse", "/messages/", "/messages", "/mcp"]),
            query=st.sampled_from(["", "?session_id=", "?session_id=abc", "?x=%ff"]),
            sent=headers,
            body=bodies,
        )
        def request(method: str, path: str, query: str, sent: dict[str, str], body: bytes) -> None:
            sent = {k: v for k, v in sent.items() if k != "content-length"}
            exchange(http, method, server.url + path + query, body, sent)

        request()


def test_generated_paths_and_methods(server: ServerThread) -> None:
    with leaves_the_server_whole(server) as http:

        @FUZZ
        @given(
            method=st.sampled_from(["GET", "POST", "DELETE", "PATCH"]),
            path=st.text(
                alphabet=st.characters(
                    min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"
                ),
                max_size=20,
            ),
            body=bodies,
        )
        def request(method: str, path: str, body: bytes) -> None:
            exchange(
                http, method, server.url + "/" + path, body, {"content-type": "application/json"}
            )

        request()
