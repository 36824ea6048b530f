"""MCP 2026-07-28's stateless wire over real HTTP on loopback: refusals with the spec's
statuses and codes, discovery, JSON or event-stream answers, logs by the request's own
level, cancellation by disconnect, caching hints, input by retry (MRTR) with a sealed
``requestState``, and ``subscriptions/listen``. Every message the server sends is
checked against the 2026-07-28 schema (tests/statelessclient.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from hosts import count_server_tasks
from rawhttp import host_port
from statelessclient import MODERN, StatelessClient, listen, open_stateless
from streamclient import open_client

import trio_mcp
from trio_mcp import CacheHint, Context
from trio_mcp._listen import MAX_EVENTS, _Listener

every_host = pytest.mark.every_host

NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
ACCEPT = {"action": "accept", "content": {"name": "Ada"}}


class Seen:
    """What the tools saw, shared with the test whatever thread serves them."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def wait_for(self, event: str, timeout: float = 5) -> None:
        with trio.fail_after(timeout):
            while event not in self.events:
                await trio.sleep(0.01)


def make_server(seen: Seen) -> trio_mcp.Server:
    """A fresh server per test: tests change its lists."""
    server = trio_mcp.Server("stateless-test", "1.0", title="Stateless", instructions="Hi")

    @server.tool()
    async def hello(name: str) -> str:
        """Greets."""
        return f"Hello, {name}"

    @server.tool()
    async def wait_forever() -> str:
        """Runs until cancelled, and says what it saw."""
        seen.events.append("started")
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen.events.append("cancelled")
            raise
        return "never"

    @server.tool()
    async def progress(ctx: Context) -> str:
        """Reports progress three times."""
        for step in (1, 2, 3):
            await ctx.report_progress(step, 3)
        return "done"

    @server.tool()
    async def logs(ctx: Context) -> str:
        """Logs at four levels."""
        for level in ("debug", "info", "warning", "error"):
            await ctx.log(level, f"at {level}")
        return "logged"

    @server.tool()
    async def ask_name(ctx: Context, greeting: str = "Hello") -> str:
        """Asks the user's name."""
        answer = await ctx.elicit("Your name?", NAME_SCHEMA, key="name")
        return f"{greeting}, {(answer.get('content') or {}).get('name')}"

    @server.tool()
    async def three_rounds(ctx: Context) -> str:
        """Asks three questions, one round each; the answers must all be there at the end."""
        answers = [await ctx.elicit(f"Q{n}?", NAME_SCHEMA, key=f"q{n}") for n in (1, 2, 3)]
        return ",".join(str((a.get("content") or {}).get("name")) for a in answers)

    @server.tool()
    async def explicit(ctx: Context) -> str:
        """Asks with InputRequired of its own, with a state."""
        if "name" not in ctx.input_responses:
            raise trio_mcp.InputRequired(
                {
                    "name": {
                        "method": "elicitation/create",
                        "params": {
                            "mode": "form",
                            "message": "Your name?",
                            "requestedSchema": NAME_SCHEMA,
                        },
                    }
                },
                state={"round": 1},
            )
        content = ctx.input_responses["name"].get("content") or {}
        return f"state={ctx.request_state} name={content.get('name')}"

    @server.tool()
    async def two_at_once(ctx: Context) -> str:
        """Asks two questions at the same time, from two tasks."""
        names: dict[str, str] = {}

        async def ask(key: str) -> None:
            answer = await ctx.elicit(f"{key}?", NAME_SCHEMA, key=key)
            names[key] = str((answer.get("content") or {}).get("name"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")
            nursery.start_soon(ask, "second")
        return f"{names['first']} and {names['second']}"

    @server.resource("test://asks", mime_type="text/plain", cache=CacheHint(60_000, "public"))
    async def asks(ctx: Context) -> str:
        answer = await ctx.elicit("Your name?", NAME_SCHEMA, key="name")
        return f"read for {(answer.get('content') or {}).get('name')}"

    @server.tool()
    async def flood(ctx: Context) -> str:
        """Logs 100 KB messages until cancelled."""
        seen.events.append("started")
        try:
            while True:
                await ctx.info("x" * 100_000)
        except trio.Cancelled:
            seen.events.append("cancelled")
            raise

    @server.tool()
    async def needs_sampling(ctx: Context) -> str:
        """Needs the client's LLM."""
        result = await ctx.sample("Hi", max_tokens=5)
        return str(result.get("content"))

    @server.tool()
    async def add_tool() -> str:
        """Adds a tool, changing the tool list."""
        server.add_tool(hello, name=f"hello_{len(server.tools)}")
        return "added"

    @server.tool()
    async def add_prompt() -> str:
        """Adds a prompt, changing the prompt list."""
        server.add_prompt(greeting, name=f"greeting_{len(server.prompts)}")
        return "added"

    @server.tool()
    async def touch(uri: str) -> str:
        """Says a resource changed."""
        server.notify_resource_updated(uri)
        return "touched"

    @server.prompt()
    async def greeting() -> str:
        """A prompt."""
        return "Say hello"

    @server.resource("test://plain", mime_type="text/plain")
    async def plain() -> str:
        return "plain"

    @server.resource("test://shared", mime_type="text/plain", cache=CacheHint(5000, "public"))
    async def shared() -> str:
        return "shared"

    @server.resource("test://other", mime_type="text/plain")
    async def other() -> str:
        return "other"

    return server


@pytest.fixture
def seen() -> Seen:
    return Seen()


@asynccontextmanager
async def served(
    serve_app: Any, seen: Seen, settings: trio_mcp.Settings | None = None
) -> AsyncIterator[tuple[trio_mcp.App, str]]:
    app = make_server(seen).asgi_app(settings)
    async with serve_app(app) as url:
        yield app, url


@pytest.fixture
async def url(serve_app: Any, seen: Seen) -> AsyncIterator[str]:
    async with served(serve_app, seen) as (_, base):
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[StatelessClient]:
    async with open_stateless(url) as stateless:
        yield stateless


def error_of(response: httpx.Response, client: StatelessClient) -> dict[str, Any]:
    """The JSON-RPC error a refusal carries, once it validates as its code's error."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    message = client.check(response.json())
    return dict(message["error"])


def call(name: str, arguments: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments or {}, **more}


# -- refusals ------------------------------------------------------------------------------


@every_host
async def test_a_request_without_meta_is_400_invalid_params(client: StatelessClient) -> None:
    message = client.request("tools/list")
    del message["params"]["_meta"]
    response = await client.post(message)
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32602


@every_host
async def test_a_request_without_client_capabilities_is_400_invalid_params(
    client: StatelessClient,
) -> None:
    message = client.request("tools/list")
    del message["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    response = await client.post(message)
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32602


@every_host
async def test_a_method_header_differing_from_the_body_is_400_header_mismatch(
    client: StatelessClient,
) -> None:
    response = await client.post(client.request("tools/list"), mcp_method="prompts/list")
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32020


async def test_a_missing_mcp_name_is_400_header_mismatch(client: StatelessClient) -> None:
    response = await client.post(client.request("tools/call", call("hello")), mcp_name=None)
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32020


async def test_a_non_ascii_name_travels_in_base64_and_is_served(everything_url: str) -> None:
    async with open_stateless(everything_url) as client:
        message = client.request("resources/read", {"uri": "test://template/ünï/data"})
        assert client.headers(message)["mcp-name"].startswith("=?base64?")
        response, replies = await client.exchange(message)
    assert response.status_code == 200, response.text
    assert json.loads(replies[-1]["result"]["contents"][0]["text"])["id"] == "ünï"


async def test_a_param_header_differing_from_the_argument_is_400_header_mismatch(
    everything_url: str,
) -> None:
    async with open_stateless(everything_url) as client:
        arguments = {"region": "eu-west-1", "query": "q"}
        message = client.request("tools/call", call("test_header_parameter", arguments))
        good, _ = await client.exchange(message, mcp_param_region="eu-west-1")
        bad = await client.post(message, mcp_param_region="us-east-1")
        missing = await client.post(message)
    assert good.status_code == 200, good.text
    assert bad.status_code == 400 and error_of(bad, client)["code"] == -32020
    assert missing.status_code == 400 and error_of(missing, client)["code"] == -32020


@every_host
async def test_an_unsupported_version_is_400_with_supported_and_requested(
    client: StatelessClient,
) -> None:
    message = client.request(
        "tools/list", **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    )
    response = await client.post(message, mcp_protocol_version="2099-01-01")
    assert response.status_code == 400
    error = error_of(response, client)
    assert error["code"] == -32022
    assert error["data"]["requested"] == "2099-01-01" and MODERN in error["data"]["supported"]


@every_host
@pytest.mark.parametrize(
    "method",
    [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "no/such/method",
    ],
)
async def test_a_removed_or_unknown_method_is_404_method_not_found(
    client: StatelessClient, method: str
) -> None:
    params = {"uri": "test://plain"} if method.startswith("resources/") else {}
    if method == "logging/setLevel":
        params = {"level": "debug"}
    response = await client.post(client.request(method, params))
    assert response.status_code == 404
    assert error_of(response, client)["code"] == -32601


@every_host
async def test_a_batch_is_400(client: StatelessClient) -> None:
    batch = [client.request("tools/list"), client.request("prompts/list")]
    response = await client.post(batch, mcp_method="tools/list")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


@every_host
async def test_a_notification_is_accepted_with_202(client: StatelessClient) -> None:
    note = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 1, "_meta": client.request("x")["params"]["_meta"]},
    }
    response = await client.post(note)
    assert response.status_code == 202 and response.content == b""


@every_host
@pytest.mark.parametrize("verb", ["GET", "DELETE"])
async def test_get_and_delete_on_the_modern_revision_are_405_allow_post(
    url: str, verb: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.request(
            verb,
            url + "/mcp",
            headers={"mcp-protocol-version": MODERN, "accept": "text/event-stream"},
        )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# -- discovery and plain answers -----------------------------------------------------------


@every_host
async def test_discover_says_versions_capabilities_identity_and_cache_hint(
    client: StatelessClient,
) -> None:
    result = await client.call("server/discover")
    assert MODERN in result["supportedVersions"] and "2025-11-25" in result["supportedVersions"]
    assert set(result["capabilities"]) >= {"tools", "prompts", "resources"}
    assert result["instructions"] == "Hi"
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == {
        "name": "stateless-test",
        "version": "1.0",
        "title": "Stateless",
    }
    assert (result["ttlMs"], result["cacheScope"]) == (60_000, "public")


@every_host
async def test_a_call_without_notifications_is_answered_as_one_json_body(
    client: StatelessClient,
) -> None:
    response, replies = await client.exchange(
        client.request("tools/call", call("hello", {"name": "Bo"}))
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert [r["result"]["content"][0]["text"] for r in replies] == ["Hello, Bo"]
    assert replies[0]["result"]["resultType"] == "complete"
    assert "ttlMs" not in replies[0]["result"]


@every_host
async def test_a_call_reporting_progress_is_answered_as_a_stream_progress_first(
    client: StatelessClient,
) -> None:
    message = client.request("tools/call", call("progress"), progressToken="p1")
    response, replies = await client.exchange(message)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [r.get("method") for r in replies] == ["notifications/progress"] * 3 + [None]
    assert [r["params"]["progress"] for r in replies[:3]] == [1, 2, 3]
    assert all(r["params"]["progressToken"] == "p1" for r in replies[:3])
    assert (
        replies[-1]["id"] == message["id"] and replies[-1]["result"]["content"][0]["text"] == "done"
    )


@every_host
async def test_a_client_taking_only_event_streams_gets_a_stream(client: StatelessClient) -> None:
    message = client.request("tools/call", call("hello", {"name": "Bo"}))
    response, replies = await client.exchange(message, accept="text/event-stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(replies) == 1 and replies[0]["result"]["content"][0]["text"] == "Hello, Bo"


@every_host
async def test_a_request_without_a_log_level_gets_no_logs(client: StatelessClient) -> None:
    _, replies = await client.exchange(client.request("tools/call", call("logs")))
    assert [r for r in replies if "method" in r] == []
    assert replies[-1]["result"]["content"][0]["text"] == "logged"


@every_host
async def test_logs_come_at_and_above_the_requests_log_level(client: StatelessClient) -> None:
    message = client.request(
        "tools/call", call("logs"), **{"io.modelcontextprotocol/logLevel": "warning"}
    )
    _, replies = await client.exchange(message)
    logged = [r["params"]["level"] for r in replies if r.get("method") == "notifications/message"]
    assert logged == ["warning", "error"]
    assert "result" in replies[-1]


# -- cancellation -------------------------------------------------------------------------


async def settled_tasks(app: trio_mcp.App, base: str) -> tuple[int, int]:
    """The server's task counts with no client connected, once whatever the server
    builds lazily is built (one request served and its connection closed)."""
    async with open_stateless(base) as client:
        await client.call("tools/list")
    counts = await count_server_tasks(app)
    with trio.fail_after(5):
        while True:
            await trio.sleep(0.05)
            now = await count_server_tasks(app)
            if now == counts:
                return counts
            counts = now


async def tasks_back_to(app: trio_mcp.App, expected: tuple[int, int]) -> tuple[int, int]:
    with trio.move_on_after(5):
        while await count_server_tasks(app) != expected:
            await trio.sleep(0.02)
    return await count_server_tasks(app)


@every_host
async def test_the_client_leaving_mid_call_cancels_the_tool_and_leaks_nothing(
    serve_app: Any, seen: Seen
) -> None:
    async with served(serve_app, seen) as (app, base):
        before = await settled_tasks(app, base)
        # Raw HTTP: the answer's head comes only with the answer, so a client library
        # would wait for it; this one sends the request, and leaves once the tool runs.
        async with raw_call(base, "wait_forever"):
            await seen.wait_for("started")
        await seen.wait_for("cancelled")
        assert await tasks_back_to(app, before) == before


@every_host
async def test_a_client_that_stops_reading_its_stream_has_its_call_cancelled(
    serve_app: Any, seen: Seen
) -> None:
    settings = trio_mcp.Settings(stalled_client_timeout=0.5)
    async with served(serve_app, seen, settings) as (_, base):
        # Connected, and reading nothing: the server's sends fill the socket's buffers
        # and then wait, until the stall timer gives up on this client.
        async with raw_call(base, "flood", **{"io.modelcontextprotocol/logLevel": "info"}):
            await seen.wait_for("started")
            await seen.wait_for("cancelled", timeout=20)


@asynccontextmanager
async def raw_call(base: str, tool: str, **meta: Any) -> AsyncIterator[trio.SocketStream]:
    """A connection that has sent a call of ``tool`` and reads nothing of its answer."""
    async with open_stateless(base) as client:
        message = client.request("tools/call", call(tool), **meta)
        body = json.dumps(message).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in client.headers(message).items())
    host, port = host_port(base)
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(
            f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        yield stream


# -- caching hints ----------------------------------------------------------------------


@every_host
async def test_lists_carry_the_default_hint_a_minute_public(client: StatelessClient) -> None:
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        result = await client.call(method)
        assert (result["ttlMs"], result["cacheScope"]) == (60_000, "public"), method


@every_host
async def test_a_resource_read_carries_zero_private_by_default(client: StatelessClient) -> None:
    result = await client.call("resources/read", {"uri": "test://plain"})
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")


@every_host
async def test_a_resource_read_carries_its_own_hint(client: StatelessClient) -> None:
    result = await client.call("resources/read", {"uri": "test://shared"})
    assert (result["ttlMs"], result["cacheScope"]) == (5000, "public")


async def test_set_cache_sets_one_methods_hint(serve_app: Any, seen: Seen) -> None:
    server = make_server(seen)
    server.set_cache("tools/list", CacheHint(1234, "private"))
    server.set_cache("resources/read", CacheHint(77, "public"))
    async with serve_app(server.asgi_app()) as base, open_stateless(base) as client:
        tools = await client.call("tools/list")
        prompts = await client.call("prompts/list")
        plain = await client.call("resources/read", {"uri": "test://plain"})
        shared = await client.call("resources/read", {"uri": "test://shared"})
    assert (tools["ttlMs"], tools["cacheScope"]) == (1234, "private")
    assert (prompts["ttlMs"], prompts["cacheScope"]) == (60_000, "public")
    assert (plain["ttlMs"], plain["cacheScope"]) == (77, "public")
    assert (shared["ttlMs"], shared["cacheScope"]) == (5000, "public")


def test_set_cache_refuses_a_method_without_hints() -> None:
    with pytest.raises(ValueError):
        trio_mcp.Server("s").set_cache("tools/call", CacheHint(1))


# -- input by retry (MRTR) ----------------------------------------------------------------


async def ask(
    client: StatelessClient, name: str, arguments: dict[str, Any] | None = None, **params: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    response, replies = await client.exchange(
        client.request("tools/call", call(name, arguments, **params))
    )
    return response, replies[-1]


@every_host
async def test_a_tool_that_elicits_answers_input_required_with_a_sealed_state(
    client: StatelessClient,
) -> None:
    response, reply = await ask(client, "ask_name")
    assert response.status_code == 200
    result = reply["result"]
    assert result["resultType"] == "input_required"
    assert result["inputRequests"]["name"]["method"] == "elicitation/create"
    assert result["inputRequests"]["name"]["params"]["requestedSchema"] == NAME_SCHEMA
    assert isinstance(result["requestState"], str) and "name" not in result["requestState"]
    assert "ttlMs" not in result and "cacheScope" not in result


@every_host
async def test_the_retry_with_the_answer_and_the_state_completes(client: StatelessClient) -> None:
    _, first = await ask(client, "ask_name")
    state = first["result"]["requestState"]
    _, reply = await ask(client, "ask_name", inputResponses={"name": ACCEPT}, requestState=state)
    assert reply["result"]["resultType"] == "complete"
    assert reply["result"]["content"][0]["text"] == "Hello, Ada"


async def test_answers_of_the_first_round_are_still_there_in_the_third(
    client: StatelessClient,
) -> None:
    state = None
    asked = []
    for name in ("Ann", "Ben", "Cid"):
        extra = {} if state is None else {"requestState": state}
        _, reply = await ask(client, "three_rounds", **extra, inputResponses=responses(asked))
        result = reply["result"]
        assert result["resultType"] == "input_required", result
        (key,) = result["inputRequests"]
        asked.append((key, name))
        state = result["requestState"]
    _, final = await ask(
        client, "three_rounds", inputResponses=responses(asked[-1:]), requestState=state
    )
    assert final["result"]["content"][0]["text"] == "Ann,Ben,Cid"


def responses(asked: list[tuple[str, str]]) -> dict[str, Any]:
    return {key: {"action": "accept", "content": {"name": name}} for key, name in asked}


async def test_an_explicit_input_required_keeps_the_authors_state(client: StatelessClient) -> None:
    _, first = await ask(client, "explicit")
    assert first["result"]["resultType"] == "input_required"
    _, reply = await ask(
        client,
        "explicit",
        inputResponses={"name": ACCEPT},
        requestState=first["result"]["requestState"],
    )
    assert reply["result"]["content"][0]["text"] == "state={'round': 1} name=Ada"


async def first_state(client: StatelessClient, name: str = "ask_name", **arguments: Any) -> str:
    _, reply = await ask(client, name, arguments)
    return str(reply["result"]["requestState"])


async def refused_retry(
    client: StatelessClient, name: str, state: str, arguments: dict[str, Any] | None = None
) -> dict[str, Any]:
    response, reply = await ask(
        client, name, arguments, inputResponses={"name": ACCEPT}, requestState=state
    )
    assert response.status_code == 400, response.text
    return dict(reply["error"])


@every_host
async def test_a_tampered_state_is_invalid_params(client: StatelessClient) -> None:
    state = await first_state(client)
    flipped = state[:-5] + ("A" if state[-5] != "A" else "B") + state[-4:]
    assert (await refused_retry(client, "ask_name", flipped))["code"] == -32602


async def test_an_expired_state_is_invalid_params(serve_app: Any, seen: Seen) -> None:
    settings = trio_mcp.Settings(state_ttl=1)
    async with served(serve_app, seen, settings) as (_, base), open_stateless(base) as client:
        state = await first_state(client)
        await trio.sleep(2.1)  # Fernet timestamps count whole seconds
        error = await refused_retry(client, "ask_name", state)
    assert error["code"] == -32602 and "requestState" in error["message"]


async def test_a_state_for_another_tool_is_invalid_params(client: StatelessClient) -> None:
    state = await first_state(client, "explicit")
    assert (await refused_retry(client, "ask_name", state))["code"] == -32602


async def test_a_state_for_other_arguments_is_invalid_params(client: StatelessClient) -> None:
    state = await first_state(client, "ask_name", greeting="Hi")
    error = await refused_retry(client, "ask_name", state, {"greeting": "Bye"})
    assert error["code"] == -32602


async def test_a_state_for_another_principal_is_invalid_params(serve_app: Any, seen: Seen) -> None:
    tokens = {"alice-token": "alice", "bob-token": "bob"}

    async def verify(token: str) -> str | None:
        return tokens.get(token)

    settings = trio_mcp.Settings(auth=trio_mcp.BearerAuth(verify))
    async with served(serve_app, seen, settings) as (_, base):
        async with open_stateless(base, auth={"authorization": "Bearer alice-token"}) as alice:
            state = await first_state(alice)
            _, own = await ask(
                alice, "ask_name", inputResponses={"name": ACCEPT}, requestState=state
            )
        async with open_stateless(base, auth={"authorization": "Bearer bob-token"}) as bob:
            error = await refused_retry(bob, "ask_name", state)
    assert own["result"]["content"][0]["text"] == "Hello, Ada"
    assert error["code"] == -32602


@every_host
async def test_an_answer_of_the_wrong_shape_is_invalid_params(client: StatelessClient) -> None:
    state = await first_state(client)
    response, reply = await ask(
        client, "ask_name", inputResponses={"name": {"action": "maybe"}}, requestState=state
    )
    assert response.status_code == 400
    assert reply["error"]["code"] == -32602


async def test_unknown_extra_answers_are_ignored(client: StatelessClient) -> None:
    state = await first_state(client)
    answers = {"name": ACCEPT, "nobody-asked": {"whatever": True}}
    _, reply = await ask(client, "ask_name", inputResponses=answers, requestState=state)
    assert reply["result"]["content"][0]["text"] == "Hello, Ada"


@every_host
async def test_a_client_lacking_the_capability_is_400_missing_capability(url: str) -> None:
    async with open_stateless(url, capabilities={"elicitation": {}}) as client:
        response, reply = await ask(client, "needs_sampling")
    assert response.status_code == 400
    error = client.check(reply)["error"]
    assert error["code"] == -32021
    assert error["data"]["requiredCapabilities"] == {"sampling": {}}


async def session_call_answering(
    base: str, tool: str, answer: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """Call ``tool`` on a 2025-11-25 session, answering each request the server sends
    on the call's stream with ``answer``: (the methods asked, the call's result)."""
    asked: list[str] = []
    async with open_client(base) as session:
        await session.initialize(capabilities={"elicitation": {}})
        call_message = session.request("tools/call", call(tool))
        async with session.post_stream(call_message) as (response, events):
            assert response.status_code == 200
            async for event in events:
                if not event.data:
                    continue
                message = session.check(event.json())
                if "method" in message and "id" in message:
                    asked.append(message["method"])
                    reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer}
                    posted = await session.post(reply)
                    assert posted.status_code == 202, posted.text
                elif message.get("id") == call_message["id"]:
                    return asked, message["result"]
    raise AssertionError("the call's stream ended without its response")


async def test_the_same_tool_on_a_session_elicits_for_real(url: str) -> None:
    asked, result = await session_call_answering(url, "ask_name", ACCEPT)
    assert asked == ["elicitation/create"]
    assert result["content"][0]["text"] == "Hello, Ada"


async def test_an_explicit_input_required_on_a_session_is_asked_by_the_server(url: str) -> None:
    asked, result = await session_call_answering(url, "explicit", ACCEPT)
    assert asked == ["elicitation/create"]
    assert result["content"][0]["text"] == "state={'round': 1} name=Ada"


@every_host
async def test_a_session_and_a_stateless_client_share_the_endpoint_at_once(url: str) -> None:
    async with open_client(url) as session, open_stateless(url) as stateless:
        await session.initialize()
        hello = call("hello", {"name": "Bo"})
        both: dict[str, dict[str, Any]] = {}

        async def on_session() -> None:
            both["session"] = (await session.call("tools/call", hello))["result"]

        async def on_stateless() -> None:
            both["stateless"] = await stateless.call("tools/call", hello)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_session)
            nursery.start_soon(on_stateless)
    assert both["session"]["content"] == both["stateless"]["content"]
    assert "resultType" not in both["session"]
    assert both["stateless"]["resultType"] == "complete"


# -- subscriptions/listen ------------------------------------------------------------------


@every_host
async def test_listen_starts_with_an_acknowledgment_of_the_honoured_filter(
    client: StatelessClient,
) -> None:
    wanted = {
        "toolsListChanged": True,
        "promptsListChanged": True,
        "resourceSubscriptions": ["test://plain"],
    }
    async with listen(client, wanted) as listener:
        first = await listener.next()
    assert first["method"] == "notifications/subscriptions/acknowledged"
    assert first["params"]["notifications"] == wanted
    assert (
        first["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == listener.request["id"]
    )


async def test_listen_leaves_unsupported_kinds_out_of_the_acknowledgment(serve_app: Any) -> None:
    server = trio_mcp.Server("tools-only")

    @server.tool()
    async def only() -> str:
        return "x"

    async with serve_app(server.asgi_app()) as base, open_stateless(base) as client:
        async with listen(
            client, {"toolsListChanged": True, "promptsListChanged": True}
        ) as listener:
            first = await listener.next()
    assert first["params"]["notifications"] == {"toolsListChanged": True}


@every_host
async def test_list_changes_reach_only_the_listeners_that_asked_tagged(
    client: StatelessClient,
) -> None:
    async with (
        listen(client, {"toolsListChanged": True}) as tools,
        listen(client, {"promptsListChanged": True}) as prompts,
    ):
        await tools.next()
        await prompts.next()
        await client.call("tools/call", call("add_tool"))
        tool_change = await tools.next()
        await client.call("tools/call", call("add_prompt"))
        prompt_change = await prompts.next()
        # The prompt listener saw no tool change before its prompt change, and the tool
        # listener sees no prompt change: its next message is the next tool change.
        await client.call("tools/call", call("add_tool"))
        next_tool_change = await tools.next()
    assert tool_change["method"] == "notifications/tools/list_changed"
    assert (
        tool_change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
        == tools.request["id"]
    )
    assert prompt_change["method"] == "notifications/prompts/list_changed"
    assert (
        prompt_change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
        == prompts.request["id"]
    )
    assert next_tool_change["method"] == "notifications/tools/list_changed"


@every_host
async def test_resource_updates_come_for_the_named_uris_only(client: StatelessClient) -> None:
    async with listen(client, {"resourceSubscriptions": ["test://shared"]}) as listener:
        await listener.next()
        await client.call("tools/call", call("touch", {"uri": "test://other"}))
        await client.call("tools/call", call("touch", {"uri": "test://shared"}))
        update = await listener.next()
    assert update["method"] == "notifications/resources/updated"
    assert update["params"]["uri"] == "test://shared"
    assert (
        update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
        == listener.request["id"]
    )


@every_host
async def test_heartbeats_keep_an_idle_listener_alive(serve_app: Any, seen: Seen) -> None:
    settings = trio_mcp.Settings(heartbeat_interval=0.1)
    async with served(serve_app, seen, settings) as (_, base), open_stateless(base) as client:
        request = client.request(
            "subscriptions/listen", {"notifications": {"toolsListChanged": True}}
        )
        comments = 0
        async with client.http.stream(
            "POST", client.url, content=json.dumps(request), headers=client.headers(request)
        ) as response:
            lines = response.aiter_lines()
            with trio.fail_after(5):
                while comments < 3:
                    comments += (await anext(lines)).startswith(":")
            # Idle for three heartbeats and still open: a change still arrives.
            await client.call("tools/call", call("add_tool"))
            with trio.fail_after(5):
                while "tools/list_changed" not in await anext(lines):
                    pass
    assert comments == 3


async def test_shutdown_ends_a_listener_with_its_complete_result(
    serve_app: Any, seen: Seen
) -> None:
    async with served(serve_app, seen) as (app, base), open_stateless(base) as client:
        async with listen(client, {"toolsListChanged": True}) as listener:
            await listener.next()
            await app.shutdown(1)
            last = await listener.next()
    assert last["id"] == listener.request["id"]
    assert last["result"]["resultType"] == "complete"
    assert (
        last["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == listener.request["id"]
    )


@every_host
async def test_a_listener_leaving_is_closed_and_leaks_nothing(serve_app: Any, seen: Seen) -> None:
    async with served(serve_app, seen) as (app, base):
        before = await settled_tasks(app, base)
        async with open_stateless(base) as client:
            async with listen(client, {"toolsListChanged": True}) as listener:
                await listener.next()
                assert len(app.listeners) == 1
        with trio.move_on_after(5):
            while len(app.listeners):
                await trio.sleep(0.02)
        assert len(app.listeners) == 0
        assert await tasks_back_to(app, before) == before


# -- asks made at once, retries and caching, what is sealed, modes, stray session ids -------


async def test_asks_made_at_once_from_a_nursery_are_one_round(client: StatelessClient) -> None:
    _, first = await ask(client, "two_at_once")
    result = first["result"]
    assert result["resultType"] == "input_required"
    assert set(result["inputRequests"]) == {"first", "second"}
    answers = {
        "first": {"action": "accept", "content": {"name": "Ann"}},
        "second": {"action": "accept", "content": {"name": "Ben"}},
    }
    _, final = await ask(
        client, "two_at_once", inputResponses=answers, requestState=result["requestState"]
    )
    assert final["result"]["content"][0]["text"] == "Ann and Ben"


async def test_a_result_reached_by_retry_is_never_cached(client: StatelessClient) -> None:
    read = client.request("resources/read", {"uri": "test://asks"})
    _, (first,) = await client.exchange(read)
    state = first["result"]["requestState"]
    retry = client.request(
        "resources/read",
        {"uri": "test://asks", "inputResponses": {"name": ACCEPT}, "requestState": state},
    )
    _, (final,) = await client.exchange(retry)
    result = final["result"]
    assert result["contents"][0]["text"] == "read for Ada"
    # The resource's own hint is a minute, public; what came by retry is neither.
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")


async def test_answers_nobody_asked_for_are_not_sealed(client: StatelessClient) -> None:
    # A first round carrying 200 KB of unasked answers: the state must not carry them
    # (it would fail to seal past its 64 KiB bound, or grow with whatever a client sends).
    junk = {f"junk{n}": {"action": "accept", "content": {"x": "y" * 2000}} for n in range(100)}
    response, reply = await ask(client, "ask_name", inputResponses=junk)
    assert response.status_code == 200, response.text
    result = reply["result"]
    assert result["resultType"] == "input_required"
    assert len(result["requestState"]) < 2000


async def test_a_client_with_url_mode_elicitation_only_is_400_missing_capability(
    url: str,
) -> None:
    async with open_stateless(url, capabilities={"elicitation": {"url": {}}}) as client:
        response, reply = await ask(client, "ask_name")
    assert response.status_code == 400
    error = reply["error"]
    assert error["code"] == -32021
    assert error["data"]["requiredCapabilities"] == {"elicitation": {"form": {}}}


async def test_an_explicit_url_mode_ask_to_a_form_only_client_is_refused(
    serve_app: Any,
) -> None:
    # An empty elicitation object declares form mode alone.
    server = trio_mcp.Server("url-asker")

    @server.tool()
    async def consent(ctx: Context) -> str:
        """Sends the user to a page."""
        request = {
            "method": "elicitation/create",
            "params": {
                "mode": "url",
                "message": "Approve",
                "url": "https://example.com/approve",
                "elicitationId": "e1",
            },
        }
        raise trio_mcp.InputRequired({"approve": request})

    async with (
        serve_app(server.asgi_app()) as base,
        open_stateless(base, capabilities={"elicitation": {}}) as client,
    ):
        response, reply = await ask(client, "consent")
    assert response.status_code == 400
    assert reply["error"]["data"]["requiredCapabilities"] == {"elicitation": {"url": {}}}


async def test_a_stray_session_id_on_the_modern_revision_is_ignored(
    client: StatelessClient,
) -> None:
    response, (reply,) = await client.exchange(
        client.request("tools/list"), mcp_session_id="not-a-session"
    )
    assert response.status_code == 200, response.text
    assert reply["result"]["resultType"] == "complete"


async def test_an_unknown_log_level_is_400_invalid_params(client: StatelessClient) -> None:
    message = client.request(
        "tools/call", call("hello", {"name": "x"}), **{"io.modelcontextprotocol/logLevel": "loud"}
    )
    response = await client.post(message)
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32602


# -- a listener's stream, without HTTP: what it keeps when its client is behind ----------


def behind_listener() -> _Listener:
    """A listener to tool changes and task "t" whose client reads nothing yet."""
    listener = _Listener(7, frozenset({"tools"}), frozenset(), 1 << 20, frozenset({"t"}))
    listener.send("notifications/subscriptions/acknowledged", {"notifications": {}}, keep=True)
    return listener


def methods_kept(listener: _Listener) -> list[str]:
    return [
        json.loads(event.data).get("method", "result")
        for event in listener.stream.log.after(listener.stream.log.first_seq - 1) or []
    ]


def test_a_listener_too_far_behind_ends_rather_than_drop_its_acknowledgment() -> None:
    listener = behind_listener()
    for _ in range(2 * MAX_EVENTS):
        listener.on_change("list_changed", "tools")
    kept = methods_kept(listener)
    assert kept[0] == "notifications/subscriptions/acknowledged"
    assert listener.stream.complete and len(kept) == MAX_EVENTS


async def test_a_listener_behind_drops_old_changes_but_never_a_tasks_end() -> None:
    listener = behind_listener()
    await listener.stream.next_events(0)  # the acknowledgment is out
    listener.on_task(None, {"taskId": "t", "status": "working"})
    for _ in range(MAX_EVENTS):
        listener.on_change("list_changed", "tools")
    assert not listener.stream.complete  # old changes and statuses may go
    assert "notifications/tasks" not in methods_kept(listener)
    listener.on_task(None, {"taskId": "t", "status": "completed", "result": {}})
    for _ in range(2 * MAX_EVENTS):
        listener.on_change("list_changed", "tools")
    kept = methods_kept(listener)
    assert listener.stream.complete and kept[0] == "notifications/tasks"


def test_nothing_follows_a_listeners_final_result() -> None:
    listener = behind_listener()
    listener.end({"resultType": "complete"})
    listener.on_change("list_changed", "tools")
    listener.on_task(None, {"taskId": "t", "status": "cancelled"})
    assert methods_kept(listener)[-1] == "result"


@pytest.mark.parametrize("notifications", [None, [], "tools"])
async def test_a_listen_without_a_filter_object_is_400_invalid_params(
    client: StatelessClient, notifications: Any
) -> None:
    params = {} if notifications is None else {"notifications": notifications}
    response = await client.post(client.request("subscriptions/listen", params))
    assert response.status_code == 400
    assert error_of(response, client)["code"] == -32602
