"""Hosting trio-mcp: as a trio guest on asyncio servers, mounted inside an asyncio app,
and how a failure or a disconnect on one side reaches the other."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from hosts import serving
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from sseclient import open_sse

import trio_mcp

ASYNCIO_HOSTS = ["hypercorn-asyncio", "uvicorn"]

#: Set by an asyncio middleware around the app; a tool reads it.
REQUEST_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="")


def mounted(mcp_app: trio_mcp.App, *, http_middleware: bool = False) -> Any:
    """A Starlette app serving its own route, with trio-mcp mounted under /tools; with
    ``http_middleware``, behind a ``BaseHTTPMiddleware`` (FastAPI's
    ``@app.middleware("http")``), whose receive and send are anyio-based wrappers."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello from starlette")

    async def passing(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    return Starlette(
        routes=[Route("/hello", hello), Mount("/tools", app=mcp_app)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=passing)] if http_middleware else [],
        lifespan=lambda _: mcp_app.lifespan(),
    )


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_mounted_in_starlette_serves_sse_under_the_prefix(host: str) -> None:
    from trio_mcp._demo import demo

    async with serving(mounted(demo.asgi_app()), host) as url:
        async with httpx.AsyncClient() as http:
            assert (await http.get(url + "/hello")).text == "hello from starlette"
        async with (
            sse_client(url + "/tools/sse") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            added = await session.call_tool("add", {"a": 2, "b": 40})
    assert added.structured_content == {"result": 42}


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_mounted_behind_an_http_middleware_serves_both_transports(host: str) -> None:
    # The middleware's send and receive are asyncio code of its own (anyio streams): they
    # must run as asyncio tasks, not inside a guest tick.
    from trio_mcp._demo import demo

    app = mounted(demo.asgi_app(), http_middleware=True)
    async with serving(app, host) as url:
        with trio.fail_after(20):
            async with (
                sse_client(url + "/tools/sse") as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                added = await session.call_tool("add", {"a": 2, "b": 40})
            async with (
                streamable_http_client(url + "/tools/mcp") as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                echoed = await session.call_tool("echo", {"text": "through"})
    assert added.structured_content == {"result": 42}
    assert echoed.content[0].text == "through"  # type: ignore[union-attr]


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_mounted_in_starlette_serves_streamable_http_under_the_prefix(host: str) -> None:
    from trio_mcp._demo import demo

    async with serving(mounted(demo.asgi_app()), host) as url:
        async with (
            streamable_http_client(url + "/tools/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            echoed = await session.call_tool("echo", {"text": "mounted"})
    assert echoed.content[0].text == "mounted"  # type: ignore[union-attr]


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_the_endpoint_event_names_the_mounted_messages_path(host: str) -> None:
    from trio_mcp._demo import demo

    async with serving(mounted(demo.asgi_app()), host) as url, open_sse(url + "/tools") as sse:
        assert sse.endpoint.startswith("/tools/messages/?session_id=")


def tagging(app: Any) -> Any:
    """An asyncio ASGI middleware that sets a context variable for the request."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            REQUEST_TAG.set("tagged-by-asyncio")
        await app(scope, receive, send)

    return middleware


def tag_server() -> trio_mcp.Server:
    server = trio_mcp.Server("tags", "1.0.0")

    @server.tool()
    async def tag() -> str:
        """The request's tag."""
        return REQUEST_TAG.get()

    return server


@asynccontextmanager
async def sse_session(url: str) -> AsyncIterator[ClientSession]:
    async with sse_client(url + "/sse") as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_context_set_on_the_asyncio_side_reaches_the_tool(host: str) -> None:
    # Over Streamable HTTP a call runs in the task of the POST that carried it.
    async with serving(tagging(tag_server().asgi_app()), host) as url:
        async with (
            streamable_http_client(url + "/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool("tag", {})
    assert result.content[0].text == "tagged-by-asyncio"  # type: ignore[union-attr]


def failing_app() -> Any:
    app = tag_server().asgi_app()

    @app.route("/boom")
    async def boom() -> str:
        raise RuntimeError("a bug on the trio side")

    return app


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_a_trio_side_failure_is_a_500_and_the_server_lives_on(host: str) -> None:
    async with serving(failing_app(), host) as url, httpx.AsyncClient() as http:
        with trio.fail_after(10):
            response = await http.get(url + "/boom")
            assert response.status_code == 500
            assert "a bug on the trio side" not in response.text
        async with sse_session(url) as session:
            assert (await session.call_tool("tag", {})).is_error is False


def raw_failing_app() -> Any:
    """An app whose trio side raises before answering at all."""
    app = tag_server().asgi_app()
    serve = app._serve

    async def failing_serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/raw-boom":
            raise RuntimeError("raised before any response")
        await serve(scope, receive, send)

    app._serve = failing_serve  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_an_exception_before_any_response_fails_the_request_not_hangs(host: str) -> None:
    async with serving(raw_failing_app(), host) as url, httpx.AsyncClient() as http:
        with trio.fail_after(10):
            response = await http.get(url + "/raw-boom")
        assert response.status_code == 500
        async with sse_session(url) as session:
            assert (await session.call_tool("tag", {})).is_error is False


def watched_server() -> tuple[trio_mcp.Server, dict[str, bool]]:
    """A server whose ``wait`` tool records whether its trio task was cancelled."""
    server = trio_mcp.Server("watched", "1.0.0")
    seen = {"started": False, "cancelled": False}

    @server.tool()
    async def wait() -> str:
        """Wait until cancelled."""
        seen["started"] = True
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen["cancelled"] = True
            raise
        return "never"

    return server, seen


@pytest.mark.every_host
async def test_a_client_gone_mid_call_cancels_the_tools_trio_task(serve_app: Any) -> None:
    from rawhttp import open_sse_stream, post

    server, seen = watched_server()
    # No grace period: the session, and its calls, end as soon as the stream drops.
    app = server.asgi_app(trio_mcp.Settings(resume_grace=0))
    async with serve_app(app) as url:
        stream, endpoint = await open_sse_stream(url)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {}},
        }
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wait"}}
        assert await post(url, endpoint, initialize) == 202
        assert await post(url, endpoint, call) == 202
        with trio.fail_after(5):
            while not seen["started"]:
                await trio.sleep(0.01)
        await stream.aclose()
        with trio.fail_after(5):
            while not seen["cancelled"]:
                await trio.sleep(0.01)


def crashing_app() -> Any:
    """An app whose ``/hang`` waits forever and whose ``/crash`` kills the whole trio run
    with a TrioInternalError (an abort function that raises, as a bug in low-level code
    would): the run ends without unwinding its tasks, and ``/hang``'s is abandoned."""
    app = tag_server().asgi_app()
    serve = app._serve

    async def crashing_serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/hang":
            await trio.sleep_forever()
        if scope["type"] == "http" and scope["path"] == "/crash":

            def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
                raise RuntimeError("the trio run dies")

            with trio.move_on_after(0.05):
                await trio.lowlevel.wait_task_rescheduled(abort)
        await serve(scope, receive, send)

    app._serve = crashing_serve  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_requests_in_flight_when_the_trio_run_dies_fail_instead_of_hanging(
    host: str,
) -> None:
    statuses: list[int] = []

    async def get(http: httpx.AsyncClient, url: str) -> None:
        statuses.append((await http.get(url)).status_code)

    async with serving(crashing_app(), host) as url, httpx.AsyncClient(timeout=10) as http:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(get, http, url + "/hang")
                nursery.start_soon(get, http, url + "/crash")
    assert statuses == [500, 500]


def cancelling(app: Any) -> Any:
    """An asyncio middleware whose ``receive`` is cancelled under the app on ``/cancel``,
    as asyncio cancels every task when its loop shuts down."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def cancelled_receive() -> Any:
            if scope["path"] == "/cancel":
                task = asyncio.current_task()
                assert task is not None
                asyncio.get_running_loop().call_soon(task.cancel)
                await asyncio.sleep(10)
            return await receive()

        await app(scope, cancelled_receive if scope["type"] == "http" else receive, send)

    return middleware


@pytest.mark.parametrize("host", ASYNCIO_HOSTS)
async def test_an_asyncio_cancellation_reaches_trio_code_as_a_broken_channel(host: str) -> None:
    app = tag_server().asgi_app()
    serve = app._serve
    raised: list[type[BaseException]] = []

    async def receiving_serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/cancel":
            try:
                await receive()
            except BaseException as exc:
                raised.append(type(exc))
                raise
        await serve(scope, receive, send)

    app._serve = receiving_serve  # type: ignore[method-assign]
    async with serving(cancelling(app), host) as url, httpx.AsyncClient(timeout=10) as http:
        with trio.fail_after(10):
            response = await http.post(url + "/cancel", content=b"{}")
        assert raised == [trio.BrokenResourceError]
        assert response.status_code == 500
        async with sse_session(url) as session:
            assert (await session.call_tool("tag", {})).is_error is False
