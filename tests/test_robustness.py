"""Bad input and buggy handlers cost one request, never the session or the server."""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hosts import in_server_run
from sseclient import open_sse

import trio_mcp

#: Each test runs under every ASGI server trio-mcp supports (tests/hosts.py).
pytestmark = pytest.mark.every_host


def buggy_server() -> trio_mcp.Server:
    server = trio_mcp.Server("buggy")

    @server.prompt()
    async def greet(name: str) -> str:
        """Greets someone.

        Args:
            name: whom to greet.
        """
        return f"hello {name}"

    @server.completion(prompt="greet")
    async def complete(argument: str, value: str, context: Any) -> list[str]:
        return [b"not json"]  # type: ignore[list-item]

    return server


async def test_a_result_that_is_not_json_is_an_internal_error_and_the_server_goes_on(
    serve_app: Any,
) -> None:
    app = buggy_server().asgi_app()
    async with serve_app(app) as url:
        async with open_sse(url) as sse:
            await sse.initialize()
            reply = await sse.call(
                "completion/complete",
                {
                    "ref": {"type": "ref/prompt", "name": "greet"},
                    "argument": {"name": "name", "value": "x"},
                },
            )
            assert reply["error"]["code"] == trio_mcp.INTERNAL_ERROR
            assert "Traceback" not in reply["error"]["message"] and "data" not in reply["error"]
            assert (await sse.call("ping"))["result"] == {}
        async with open_sse(url) as again:  # the supervisor, and so the server, lives on
            await again.initialize()


async def test_a_lone_surrogate_travels_as_an_escape_and_the_stream_lives_on(
    demo_url: str,
) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        reply = await sse.call("tools/call", {"name": "echo", "arguments": {"text": "a\ud800b"}})
        assert reply["result"]["content"][0]["text"] == "a\ud800b"
        assert (await sse.call("ping"))["result"] == {}


async def test_nan_in_a_body_is_a_parse_error(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        response = await sse.http.post(
            demo_url + sse.endpoint,
            content=b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {"x": NaN}}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == trio_mcp.PARSE_ERROR


async def test_a_cancellation_in_the_same_batch_as_its_request_wins(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize("2025-03-26")
        sse.expect({1: "tools/call"})
        response = await sse.post(
            [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "late"}},
                },
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
            ]
        )
        assert response.status_code == 202
        ping = await sse.send_request("ping")
        assert (await sse.receive())["id"] == ping  # and nothing for request 1 before it
        with trio.move_on_after(0.3):
            await sse.receive()
            raise AssertionError("a cancelled request was answered")


async def test_a_cancellation_naming_no_valid_id_is_ignored(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        for request_id in ([1], {"a": 1}, None, 1.5):
            await sse.notify("notifications/cancelled", {"requestId": request_id})
        assert (await sse.call("ping"))["result"] == {}


async def test_cancelling_a_call_cancels_the_request_it_made_of_the_client(
    everything_url: str,
) -> None:
    async with open_sse(everything_url) as sse:
        await sse.initialize(capabilities={"sampling": {}})
        call = await sse.send_request(
            "tools/call", {"name": "test_sampling", "arguments": {"prompt": "?"}}
        )
        asked = await sse.receive()
        assert asked["method"] == "sampling/createMessage"
        await sse.notify("notifications/cancelled", {"requestId": call})
        told = await sse.receive()
    assert told["method"] == "notifications/cancelled"
    assert told["params"]["requestId"] == asked["id"]


async def test_list_changes_are_announced_only_for_declared_lists(serve_app: Any) -> None:
    server = trio_mcp.Server("growing")

    @server.tool()
    async def first() -> str:
        """The first tool."""
        return "1"

    app = server.asgi_app()
    async with serve_app(app) as url, open_sse(url) as sse:
        await sse.initialize()

        async def hello() -> str:
            """A prompt added later."""
            return "hi"

        # prompts were not declared at initialize
        await in_server_run(app, partial(server.add_prompt, hello))

        async def second() -> str:
            """A second tool."""
            return "2"

        await in_server_run(app, partial(server.add_tool, second))
        changed = await sse.receive()
        assert changed["method"] == "notifications/tools/list_changed"
        assert not [
            m for m in sse.messages if m.get("method", "").startswith("notifications/prompts")
        ]


async def test_an_http_error_body_carries_no_id(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(demo_url + "/messages/", json={"jsonrpc": "2.0"})
    assert response.status_code == 400
    assert "id" not in response.json()


async def test_json_nested_past_the_parsers_depth_is_a_parse_error_not_a_500(
    demo_url: str,
) -> None:
    deep_params = b'{"x": ' * 50_000 + b"1" + b"}" * 50_000
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        for body in (
            b"[" * 100_000 + b"]" * 100_000,
            b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "params": ' + deep_params + b"}",
        ):
            response = await sse.http.post(
                demo_url + sse.endpoint,
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == trio_mcp.PARSE_ERROR
        assert (await sse.call("ping"))["result"] == {}


async def test_arguments_nested_as_deep_as_the_parser_reads_cost_one_request(
    demo_url: str,
) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        nested: Any = "leaf"
        for _ in range(900):
            nested = [nested]
        reply = await sse.call("tools/call", {"name": "echo", "arguments": {"text": nested}})
        assert reply["result"]["isError"] is True
        assert (await sse.call("ping"))["result"] == {}


async def test_past_the_in_flight_limit_a_request_gets_an_error_at_once(serve_app: Any) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(max_requests_in_flight=2))
    async with serve_app(app) as url, open_sse(url) as sse:
        await sse.initialize()
        slow = [
            await sse.send_request("tools/call", {"name": "sleep", "arguments": {"seconds": 0.3}})
            for _ in range(2)
        ]
        third = await sse.send_request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        # In any order: on a busy machine the sleeps may end before the refusal is read.
        replies = await sse.replies_to([*slow, third])
        assert replies[third]["error"]["code"] == trio_mcp.SERVER_BUSY
        for request_id in slow:  # a reply is sent once its request no longer counts
            assert "result" in replies[request_id]
        answered = await sse.call("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert answered["result"]["content"][0]["text"] == "x"


async def test_past_the_session_limit_a_new_stream_gets_503_with_retry_after(
    serve_app: Any,
) -> None:
    from trio_mcp._demo import demo

    app = demo.asgi_app(trio_mcp.Settings(max_sessions=2))
    async with serve_app(app) as url, open_sse(url), open_sse(url):
        async with httpx.AsyncClient() as http:
            refused = await http.get(url + "/sse")
            also_refused = await http.post(
                url + "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {},
                    },
                },
                headers={"accept": "application/json, text/event-stream"},
            )
    for response in (refused, also_refused):
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["error"]["code"] == trio_mcp.SERVER_BUSY
        assert "max_sessions" in response.json()["error"]["message"]


async def test_a_client_that_reads_nothing_gets_503_not_a_stalled_post(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from trio_mcp._jsonrpc import Request
    from trio_mcp._session import Session, SessionOverloaded

    session = Session("s" * 32, trio_mcp.Server("x"), trio_mcp.Settings(replay_events=4), "sse")
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        refused = 0
        for n in range(20):
            try:
                with trio.fail_after(1):  # never waits on the client
                    await session.deliver([Request(n, "ping")])
            except SessionOverloaded:
                refused += 1
        nursery.cancel_scope.cancel()
    assert refused == 12  # twice the budget of 4 was queued, no more


async def test_a_refusal_sent_before_the_body_was_read_closes_the_connection(
    demo_url: str,
) -> None:
    # A keep-alive client told nothing would send its next request into a connection
    # the server drops because the rest of the body was never read.
    async with httpx.AsyncClient() as http:
        unknown_session = await http.post(
            demo_url + "/messages/?session_id=nope", json={"jsonrpc": "2.0", "method": "ping"}
        )
        no_such_route = await http.patch(demo_url + "/elsewhere", content=b"[1, 2, 3]")
        # Quart's own 404 may or may not have read the body first (its reader races the
        # route, and under an asyncio host the body is read at once): either way the
        # same client's next request must be answered, not sent into a dead connection.
        with trio.fail_after(5):
            after = await http.patch(demo_url + "/elsewhere", content=b"[1]")
    assert unknown_session.status_code == 404
    assert unknown_session.headers["connection"] == "close"
    assert no_such_route.status_code == 404
    assert after.status_code == 404


async def test_a_request_whose_body_was_read_keeps_its_connection(demo_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            demo_url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 400  # no session: refused, but after reading the body
    assert "connection" not in response.headers


def raw_call(request_id: int, tool: str, arguments: str) -> bytes:
    """A tools/call body whose arguments are JSON text as given (numbers that Python's
    json would not write: 1e400, integers of thousands of digits)."""
    head = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call"}
    return (
        json.dumps(head)[:-1] + f', "params": {{"name": "{tool}", "arguments": {arguments}}}}}'
    ).encode()


@pytest.mark.parametrize("seconds", ["1e400", "5000", "-1"])
async def test_an_invalid_tool_argument_is_one_log_line_not_a_traceback(
    demo_url: str, seconds: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mcp")
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        sse.expect({7: "tools/call"})
        caplog.clear()
        posted = await sse.http.post(
            demo_url + sse.endpoint,
            content=raw_call(7, "sleep", f'{{"seconds": {seconds}}}'),
            headers={"content-type": "application/json"},
        )
        assert posted.status_code == 202
        reply = await sse.reply_to(7)
    assert reply["result"]["isError"] is True
    assert "seconds" in reply["result"]["content"][0]["text"]
    about_it = [record for record in caplog.records if "sleep" in record.getMessage()]
    assert len(about_it) == 1, [record.getMessage() for record in caplog.records]
    assert not [record for record in caplog.records if record.exc_info]


async def test_a_result_too_long_to_write_is_a_plain_error_not_pythons_hint(
    demo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 4,300 nines plus one: each addend is as long as Python reads, the sum one digit more.
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        sse.expect({8: "tools/call"})
        posted = await sse.http.post(
            demo_url + sse.endpoint,
            content=raw_call(8, "add", f'{{"a": {"9" * 4300}, "b": 1}}'),
            headers={"content-type": "application/json"},
        )
        assert posted.status_code == 202
        reply = await sse.reply_to(8)
        assert (await sse.call("ping"))["result"] == {}
    text = reply["result"]["content"][0]["text"]
    assert reply["result"]["isError"] is True
    assert "4301 digits" in text and "at most 4300" in text
    assert "sys." not in text and "set_int_max_str_digits" not in text
    assert not [record for record in caplog.records if record.exc_info]


async def test_an_argument_too_long_to_read_is_refused_in_plain_words(demo_url: str) -> None:
    async with open_sse(demo_url) as sse:
        await sse.initialize()
        refused = await sse.http.post(
            demo_url + sse.endpoint,
            content=raw_call(9, "add", f'{{"a": {"9" * 5000}, "b": 1}}'),
            headers={"content-type": "application/json"},
        )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == trio_mcp.PARSE_ERROR
    assert "more than 4300 digits" in error["message"] and "sys." not in error["message"]
