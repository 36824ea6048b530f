"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663) on the 2026-07-28
wire: over real HTTP on loopback for what a client sees, and the sans-io record and the
runner's expiry timer (under MockClock) on their own."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from mcpschema import validate
from statelessclient import listen, open_stateless

import trio_mcp
from trio_mcp import Context, InMemoryTaskStore, TaskRecord
from trio_mcp._jsonrpc import Request
from trio_mcp._task_runner import TaskRunner

VERSION = "2026-07-28"
EXT = {"extensions": {trio_mcp.TASKS_EXTENSION: {}}}
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}
#: Bound on any wait for a task to reach a state (a failure, not a hang, past it).
WAIT = 5.0


class Client:
    """Stateless 2026-07-28 requests: the headers and ``_meta`` every one carries."""

    def __init__(self, url: str, capabilities: dict[str, Any], token: str | None = None) -> None:
        self.url = url + "/mcp"
        self.capabilities = capabilities
        self._auth = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._id = 0

    async def post(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._id += 1
        params = {
            **params,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            },
        }
        headers = {
            "MCP-Protocol-Version": VERSION,
            "Mcp-Method": method,
            "Accept": "application/json, text/event-stream",
            **self._auth,
        }
        name = params.get("taskId", params.get("name"))
        if isinstance(name, str):
            headers["Mcp-Name"] = name
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        async with httpx.AsyncClient(timeout=WAIT) as http:
            response = await http.post(self.url, json=body, headers=headers)
        return response.status_code, json.loads(response.text)

    async def result(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        status, message = await self.post(method, params)
        assert status == 200 and "result" in message, message
        result: dict[str, Any] = message["result"]
        return result

    async def error(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        _, message = await self.post(method, params)
        assert "error" in message, message
        error: dict[str, Any] = message["error"]
        return error

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        return await self.result("tools/call", {"name": name, "arguments": arguments})

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.result("tasks/get", {"taskId": task_id})

    async def wait_for(self, task_id: str, *statuses: str) -> dict[str, Any]:
        """Poll until the task's status is one of ``statuses`` (bounded by WAIT)."""
        with trio.fail_after(WAIT):
            while True:
                task = await self.get(task_id)
                if task["status"] in statuses:
                    return task
                await trio.sleep(0.02)


def task_server() -> tuple[trio_mcp.Server, dict[str, int]]:
    """A server with tools that count how often they start and how they end."""
    server = trio_mcp.Server("tasks-test")
    seen = {"runs": 0, "cancelled": 0, "asks": 0}

    @server.tool(task="optional")
    async def quick(text: str) -> str:
        return f"echo {text}"

    @server.tool(task="required")
    async def forever() -> str:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen["cancelled"] += 1
            raise
        return "never"

    @server.tool(task="required")
    async def ask_once(ctx: Context) -> str:
        seen["runs"] += 1
        answer = await ctx.elicit("Name?", NAME_SCHEMA)
        return f"Hi {answer['content']['name']}"

    @server.tool(task="required")
    async def ask_twice(ctx: Context) -> str:
        answers: dict[str, Any] = {}

        async def ask(what: str) -> None:
            answers[what] = await ctx.elicit(what, NAME_SCHEMA)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")
            nursery.start_soon(ask, "second")
        return " ".join(answers[k]["content"]["name"] for k in ("first", "second"))

    @server.tool(task="required")
    async def broken() -> str:
        raise trio_mcp.JSONRPCError(trio_mcp.INTERNAL_ERROR, "broken on purpose")

    async def ask_name(arguments: dict[str, Any], ctx: Context) -> str:
        seen["asks"] += 1
        answer = await ctx.elicit("Who?", NAME_SCHEMA, key="who")
        return str(answer["content"]["name"])

    @server.tool(task="required", before_task=ask_name)
    async def prepared(ctx: Context) -> str:
        return f"Hello {ctx.prepared}"

    return server, seen


Serve = Callable[[Any], Any]


class BrokenStore(InMemoryTaskStore):
    """A store that fails (as a remote one may) on the writes the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_terminal_puts = False
        self.fail_deletes = False

    async def put(self, record: TaskRecord) -> bool:
        if self.fail_terminal_puts and record.terminal:
            raise RuntimeError("the store is down")
        return await super().put(record)

    async def delete(self, task_id: str) -> None:
        if self.fail_deletes:
            raise RuntimeError("the store is down")
        await super().delete(task_id)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded by WAIT) until ``condition()`` holds."""
    with trio.fail_after(WAIT):
        while not condition():
            await trio.sleep(0.01)


@pytest.mark.every_host
async def test_a_task_is_created_then_completes_with_the_result_inlined(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, EXT)
        created = await client.call("quick", text="hi")
        assert created["resultType"] == "task" and created["status"] == "working"
        assert {"result", "error", "inputRequests", "requestState"}.isdisjoint(created)
        assert created["ttlMs"] == 3_600_000 and created["pollIntervalMs"] == 1000
        done = await client.wait_for(created["taskId"], "completed")
        assert done["resultType"] == "complete"
        assert done["result"]["content"] == [{"type": "text", "text": "echo hi"}]


async def test_a_completed_tasks_result_is_the_call_result_of_this_wire(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, EXT)
        task_id = (await client.call("quick", text="whole"))["taskId"]
        result = (await client.wait_for(task_id, "completed"))["result"]
        validate(VERSION, "CallToolResult", result)  # resultType is required
        assert result["resultType"] == "complete"
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "tasks-test"


@pytest.mark.every_host
async def test_an_optional_task_runs_inline_for_a_client_without_the_extension(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        result = await Client(url, {}).call("quick", text="inline")
        assert result["resultType"] == "complete" and "taskId" not in result
        assert result["content"] == [{"type": "text", "text": "echo inline"}]


@pytest.mark.every_host
async def test_cancel_cancels_the_running_coroutine_and_settles_cancelled(
    serve_app: Serve,
) -> None:
    server, seen = task_server()
    app = server.asgi_app()
    async with serve_app(app) as url:
        client = Client(url, EXT)
        task_id = (await client.call("forever"))["taskId"]
        assert await client.result("tasks/cancel", {"taskId": task_id}) == {
            "resultType": "complete",
            "_meta": {
                "io.modelcontextprotocol/serverInfo": {"name": "tasks-test", "version": "0.1.0"}
            },
        }
        task = await client.wait_for(task_id, "cancelled", "completed", "failed")
        assert task["status"] == "cancelled"
        assert seen["cancelled"] == 1
        # Cancelling a task that has ended is the same empty acknowledgment.
        again = await client.result("tasks/cancel", {"taskId": task_id})
        assert again["resultType"] == "complete" and "status" not in again
        assert len(app.tasks) == 0


@pytest.mark.every_host
async def test_an_ask_parks_the_task_and_the_update_resumes_the_same_coroutine(
    serve_app: Serve,
) -> None:
    server, seen = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, {**EXT, "elicitation": {}})
        task_id = (await client.call("ask_once"))["taskId"]
        parked = await client.wait_for(task_id, "input_required")
        (key,) = parked["inputRequests"]
        assert parked["inputRequests"][key]["method"] == "elicitation/create"
        ack = await client.result(
            "tasks/update",
            {
                "taskId": task_id,
                "inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}},
            },
        )
        assert ack["resultType"] == "complete" and "status" not in ack
        done = await client.wait_for(task_id, "completed")
        assert done["result"]["content"][0]["text"] == "Hi Ada"
        assert seen["runs"] == 1  # resumed where it waited, not run again


@pytest.mark.every_host
async def test_a_partial_update_leaves_only_the_unanswered_key(serve_app: Serve) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, {**EXT, "elicitation": {}})
        task_id = (await client.call("ask_twice"))["taskId"]
        with trio.fail_after(WAIT):
            while len((parked := await client.get(task_id)).get("inputRequests", {})) < 2:
                await trio.sleep(0.02)
        by_message = {r["params"]["message"]: k for k, r in parked["inputRequests"].items()}
        first, second = by_message["first"], by_message["second"]
        answer = {"action": "accept", "content": {"name": "one"}}
        await client.result("tasks/update", {"taskId": task_id, "inputResponses": {first: answer}})
        after = await client.get(task_id)
        assert after["status"] == "input_required"
        assert list(after["inputRequests"]) == [second]
        answer = {"action": "accept", "content": {"name": "two"}}
        await client.result("tasks/update", {"taskId": task_id, "inputResponses": {second: answer}})
        done = await client.wait_for(task_id, "completed")
        assert done["result"]["content"][0]["text"] == "one two"
        assert first != second


async def test_a_malformed_answer_is_refused_and_the_question_stays(serve_app: Serve) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, {**EXT, "elicitation": {}})
        task_id = (await client.call("ask_once"))["taskId"]
        (key,) = (await client.wait_for(task_id, "input_required"))["inputRequests"]
        error = await client.error(
            "tasks/update", {"taskId": task_id, "inputResponses": {key: {"action": "maybe"}}}
        )
        assert error["code"] == trio_mcp.INVALID_PARAMS
        assert list((await client.get(task_id))["inputRequests"]) == [key]


@pytest.mark.every_host
async def test_a_json_rpc_error_fails_the_task_with_that_error(serve_app: Serve) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, EXT)
        task_id = (await client.call("broken"))["taskId"]
        failed = await client.wait_for(task_id, "failed", "completed")
        assert failed["status"] == "failed" and "result" not in failed
        assert failed["error"] == {"code": trio_mcp.INTERNAL_ERROR, "message": "broken on purpose"}


@pytest.mark.every_host
async def test_a_required_task_without_the_extension_is_32021(serve_app: Serve) -> None:
    server, seen = task_server()
    async with serve_app(server.asgi_app()) as url:
        status, message = await Client(url, {}).post(
            "tools/call", {"name": "ask_once", "arguments": {}}
        )
        assert status == 400 and message["error"]["code"] == -32021
        assert message["error"]["data"] == {
            "requiredCapabilities": {"extensions": {trio_mcp.TASKS_EXTENSION: {}}}
        }
        assert seen["runs"] == 0


@pytest.mark.every_host
@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
async def test_tasks_methods_without_the_extension_are_32021(serve_app: Serve, method: str) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        error = await Client(url, {}).error(method, {"taskId": "x", "inputResponses": {}})
        assert error["code"] == -32021


@pytest.mark.every_host
async def test_an_unknown_task_is_32602_and_removed_methods_are_32601(serve_app: Serve) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, EXT)
        for method in ("tasks/get", "tasks/update", "tasks/cancel"):
            error = await client.error(method, {"taskId": "no-such-task", "inputResponses": {}})
            assert error["code"] == trio_mcp.INVALID_PARAMS, method
        for method in ("tasks/result", "tasks/list"):
            assert (await client.error(method, {"taskId": "x"}))["code"] == -32601


@pytest.mark.every_host
async def test_discover_advertises_the_extension(serve_app: Serve) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app()) as url:
        discovered = await Client(url, {}).result("server/discover", {})
        assert discovered["capabilities"]["extensions"] == {trio_mcp.TASKS_EXTENSION: {}}
        assert "tasks" not in discovered["capabilities"]


@pytest.mark.every_host
async def test_before_task_asks_by_round_trip_then_the_task_gets_its_value(
    serve_app: Serve,
) -> None:
    server, seen = task_server()
    async with serve_app(server.asgi_app()) as url:
        client = Client(url, {**EXT, "elicitation": {}})
        first = await client.call("prepared")
        assert first["resultType"] == "input_required" and "taskId" not in first
        assert list(first["inputRequests"]) == ["who"]
        created = await client.result(
            "tools/call",
            {
                "name": "prepared",
                "arguments": {},
                "inputResponses": {"who": {"action": "accept", "content": {"name": "Alice"}}},
                "requestState": first["requestState"],
            },
        )
        assert created["resultType"] == "task" and "requestState" not in created
        done = await client.wait_for(created["taskId"], "completed")
        assert done["result"]["content"][0]["text"] == "Hello Alice"
        assert seen["asks"] == 2  # once per round on the request; never in the task


async def test_an_ended_task_is_reaped_after_its_ttl(serve_app: Serve) -> None:
    server, _ = task_server()
    app = server.asgi_app(trio_mcp.Settings(task_ttl=0.2))
    async with serve_app(app) as url:
        client = Client(url, EXT)
        created = await client.call("quick", text="soon gone")
        assert created["ttlMs"] == 200
        await client.wait_for(created["taskId"], "completed")
        with trio.fail_after(WAIT):
            while (await client.post("tasks/get", {"taskId": created["taskId"]}))[0] == 200:
                await trio.sleep(0.05)
        error = await client.error("tasks/get", {"taskId": created["taskId"]})
        assert error["code"] == trio_mcp.INVALID_PARAMS


async def test_ended_tasks_leave_no_trio_task_behind(serve_app: Serve) -> None:
    server, _ = task_server()
    app = server.asgi_app()
    async with serve_app(app) as url:
        client = Client(url, EXT)
        nursery = app.tasks._nursery
        assert nursery is not None
        baseline = len(nursery.child_tasks)
        ids = [(await client.call("quick", text=str(n)))["taskId"] for n in range(5)]
        ids.append((await client.call("forever"))["taskId"])
        await client.result("tasks/cancel", {"taskId": ids[-1]})
        for task_id in ids:
            await client.wait_for(task_id, "completed", "cancelled")
        assert len(app.tasks) == 0
        assert len(nursery.child_tasks) == baseline


async def test_a_store_failing_to_record_a_tasks_end_leaves_the_runner_serving(
    serve_app: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = task_server()
    store = BrokenStore()
    app = server.asgi_app(task_store=store)
    async with serve_app(app) as url:
        client = Client(url, EXT)
        store.fail_terminal_puts = True
        lost = (await client.call("quick", text="lost"))["taskId"]
        await until(lambda: len(app.tasks) == 0)
        assert (await client.get(lost))["status"] == "working"  # what the store kept
        assert "the task store failed to record that it ended completed" in caplog.text
        store.fail_terminal_puts = False
        later = (await client.call("quick", text="later"))["taskId"]
        done = await client.wait_for(later, "completed")
        assert done["result"]["content"] == [{"type": "text", "text": "echo later"}]
        assert app.tasks.running


async def test_a_listener_learns_a_tasks_end_that_the_store_failed_to_record(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    store = BrokenStore()
    async with serve_app(server.asgi_app(task_store=store)) as url:
        client = Client(url, {**EXT, "elicitation": {}})
        task_id = (await client.call("ask_once"))["taskId"]
        (key,) = (await client.wait_for(task_id, "input_required"))["inputRequests"]
        store.fail_terminal_puts = True
        async with (
            open_stateless(url, capabilities=client.capabilities) as raw,
            listen(raw, {"taskIds": [task_id]}) as listener,
        ):
            assert (await listener.next())["method"] == "notifications/subscriptions/acknowledged"
            answer = {"action": "accept", "content": {"name": "Ada"}}
            await client.result(
                "tasks/update", {"taskId": task_id, "inputResponses": {key: answer}}
            )
            while (task := (await listener.next())["params"])["status"] == "working":
                pass
        assert task["status"] == "completed"
        assert task["result"]["content"][0]["text"] == "Hi Ada"


async def test_a_cancel_where_the_task_does_not_run_is_acked_and_fabricates_no_end(
    serve_app: Serve,
) -> None:
    """Two instances share a store: the one that does not run the task acknowledges
    the cancel and writes nothing, so the runner's own end is the only one."""
    server = trio_mcp.Server("shared")
    release = trio.Event()

    @server.tool(task="required")
    async def slow() -> str:
        await release.wait()
        return "finished"

    store = InMemoryTaskStore()
    runner, other = server.asgi_app(task_store=store), server.asgi_app(task_store=store)
    async with serve_app(runner) as here, serve_app(other) as there:
        task_id = (await Client(here, EXT).call("slow"))["taskId"]
        elsewhere = Client(there, EXT)
        ack = await elsewhere.result("tasks/cancel", {"taskId": task_id})
        assert ack["resultType"] == "complete" and "status" not in ack
        assert (await elsewhere.get(task_id))["status"] == "working"
        release.set()
        done = await elsewhere.wait_for(task_id, "completed", "cancelled", "failed")
        assert done["status"] == "completed"
        assert done["result"]["content"] == [{"type": "text", "text": "finished"}]


async def test_an_update_where_the_task_does_not_run_is_an_error_and_loses_nothing(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    store = InMemoryTaskStore()
    runner, other = server.asgi_app(task_store=store), server.asgi_app(task_store=store)
    async with serve_app(runner) as here, serve_app(other) as there:
        client = Client(here, {**EXT, "elicitation": {}})
        task_id = (await client.call("ask_once"))["taskId"]
        (key,) = (await client.wait_for(task_id, "input_required"))["inputRequests"]
        answer = {"action": "accept", "content": {"name": "Ada"}}
        update = {"taskId": task_id, "inputResponses": {key: answer}}
        error = await Client(there, client.capabilities).error("tasks/update", update)
        assert error["code"] == trio_mcp.INTERNAL_ERROR
        assert "runs on another instance" in error["message"]
        assert list((await client.get(task_id))["inputRequests"]) == [key]  # still asked
        await client.result("tasks/update", update)
        assert (await client.wait_for(task_id, "completed"))["result"]["content"][0][
            "text"
        ] == "Hi Ada"


class SlowToConfirmStore(InMemoryTaskStore):
    """A remote store's create: the record is kept at once, the confirmation comes
    later (when the test says)."""

    def __init__(self) -> None:
        super().__init__()
        self.creating = trio.Event()
        self.confirm = trio.Event()

    async def create(self, record: TaskRecord) -> None:
        await super().create(record)
        self.creating.set()
        await self.confirm.wait()


async def test_a_client_leaving_while_its_task_is_created_leaves_no_orphan(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    store = SlowToConfirmStore()
    app = server.asgi_app(task_store=store)
    disconnected = trio.Event()

    async def noticing_disconnects(scope: Any, receive: Any, send: Any) -> None:
        async def receiving() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
            return message

        await app(scope, receiving, send)

    async with serve_app(noticing_disconnects) as url:
        client = Client(url, EXT)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(client.call, "quick", text="orphan?"))
            await store.creating.wait()
            nursery.cancel_scope.cancel()  # the client leaves: its connection closes
        with trio.fail_after(WAIT):
            await disconnected.wait()
        await trio.testing.wait_all_tasks_blocked()  # the request's cancellation is in
        store.confirm.set()
        ((task_id, _),) = store._records.items()
        done = await client.wait_for(task_id, "completed", "failed", "cancelled")
        assert done["status"] == "completed" and len(app.tasks) == 0


async def test_at_max_tasks_a_required_tool_is_busy_and_an_optional_one_runs_inline(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    async with serve_app(server.asgi_app(trio_mcp.Settings(max_tasks=1))) as url:
        client = Client(url, EXT)
        running = (await client.call("forever"))["taskId"]
        error = await client.error("tools/call", {"name": "forever", "arguments": {}})
        assert error["code"] == trio_mcp.SERVER_BUSY
        assert "Settings.max_tasks" in error["message"] and "retry" in error["message"]
        inline = await client.call("quick", text="inline")
        assert inline["resultType"] == "complete" and "taskId" not in inline
        assert inline["content"] == [{"type": "text", "text": "echo inline"}]
        await client.result("tasks/cancel", {"taskId": running})
        await client.wait_for(running, "cancelled")
        assert (await client.call("forever"))["resultType"] == "task"  # room again


async def test_one_principal_at_its_limit_leaves_room_for_the_others(serve_app: Serve) -> None:
    server, _ = task_server()
    tokens = {"alice-token": "alice", "bob-token": "bob"}

    async def verify(token: str) -> str | None:
        return tokens.get(token)

    settings = trio_mcp.Settings(
        auth=trio_mcp.BearerAuth(verify), max_tasks=10, max_tasks_per_principal=2
    )
    async with serve_app(server.asgi_app(settings)) as url:
        alice, bob = Client(url, EXT, "alice-token"), Client(url, EXT, "bob-token")
        for _ in range(2):
            assert (await alice.call("forever"))["resultType"] == "task"
        error = await alice.error("tools/call", {"name": "forever", "arguments": {}})
        assert error["code"] == trio_mcp.SERVER_BUSY
        assert "Settings.max_tasks_per_principal" in error["message"]
        assert "tasks/cancel" in error["message"]
        assert (await bob.call("forever"))["resultType"] == "task"


async def test_past_max_finished_tasks_the_oldest_ended_record_goes_first(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    settings = trio_mcp.Settings(task_ttl=None, max_finished_tasks=2)
    async with serve_app(server.asgi_app(settings)) as url:
        client = Client(url, EXT)
        ids = []
        for n in range(3):
            ids.append((await client.call("quick", text=str(n)))["taskId"])
            await client.wait_for(ids[-1], "completed")
        with trio.fail_after(WAIT):
            while (await client.post("tasks/get", {"taskId": ids[0]}))[0] == 200:
                await trio.sleep(0.02)
        assert (await client.error("tasks/get", {"taskId": ids[0]}))["code"] == -32602
        for task_id in ids[1:]:
            assert (await client.get(task_id))["status"] == "completed"


async def test_at_shutdown_a_listener_hears_its_tasks_cancelled_before_its_result(
    serve_app: Serve,
) -> None:
    server, _ = task_server()
    app = server.asgi_app()
    async with serve_app(app) as url:
        client = Client(url, EXT)
        task_id = (await client.call("forever"))["taskId"]
        async with (
            open_stateless(url, capabilities=EXT) as raw,
            listen(raw, {"taskIds": [task_id]}) as listener,
        ):
            await listener.next()  # the acknowledgment
            await app.shutdown(1)
            cancelled = await listener.next()
            last = await listener.next()
    assert cancelled["method"] == "notifications/tasks"
    assert cancelled["params"]["status"] == "cancelled"
    assert cancelled["params"]["statusMessage"] == "the server shut down"
    assert last["id"] == listener.request["id"] and last["result"]["resultType"] == "complete"


# -- without HTTP --------------------------------------------------------------------------


def test_the_wire_shapes_carry_only_their_status_payload() -> None:
    record = TaskRecord(
        "t", "working", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", 1000, 500
    )
    assert record.created() == {
        "resultType": "task",
        "taskId": "t",
        "status": "working",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "lastUpdatedAt": "2026-01-01T00:00:00.000Z",
        "ttlMs": 1000,
        "pollIntervalMs": 500,
    }
    record.input_requests = {"k": {"method": "roots/list"}}
    record.result = {"content": []}
    assert "inputRequests" not in record.detailed() and "result" not in record.detailed()
    record.status = "input_required"
    assert record.detailed()["inputRequests"] == {"k": {"method": "roots/list"}}
    record.status = "completed"
    assert record.detailed()["result"] == {"content": []}
    assert TaskRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


async def test_the_in_memory_store_does_not_bring_back_a_deleted_task() -> None:
    store = InMemoryTaskStore()
    record = TaskRecord("t", "working", "a", "a", None, None)
    await store.create(record)
    await store.delete("t")
    await store.put(record)
    assert await store.get("t") is None and len(store) == 0


async def test_the_in_memory_store_never_changes_a_terminal_record() -> None:
    store = InMemoryTaskStore()
    record = TaskRecord("t", "working", "a", "a", None, None)
    await store.create(record)
    assert await store.put(attrs.evolve(record, status="cancelled"))
    assert not await store.put(attrs.evolve(record, status="completed"))
    stored = await store.get("t")
    assert stored is not None and stored.status == "cancelled"


async def test_one_timer_reaps_tasks_ttl_after_their_last_update(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Pure timing: the runner's expiry under trio's MockClock (no HTTP, no waiting)."""
    server = trio_mcp.Server("ttl")

    @server.tool(task="required")
    async def sleeper(seconds: float) -> str:
        await trio.sleep(seconds)
        return "woke"

    runner = TaskRunner(server, ttl=10.0)
    request = Request(1, "tools/call", {"name": "sleeper", "arguments": {"seconds": 5}})
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        created = await runner.start(
            request, protocol_version=VERSION, capabilities=EXT, meta={}, principal=None
        )
        task_id = created["taskId"]
        await trio.sleep(14.9)  # ended at 5 s: due at 15 s
        assert await runner.store.get(task_id) is not None
        await trio.sleep(0.2)
        await trio.testing.wait_all_tasks_blocked()
        assert await runner.store.get(task_id) is None
        runner.close()


async def test_a_task_still_running_at_its_ttl_is_never_reaped_nor_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The spec lets a server discard a task's record after its TTL, not stop its work:
    a task working past it keeps running and keeps its record, and is reaped a TTL
    after it ends."""
    server = trio_mcp.Server("ttl")

    @server.tool(task="required")
    async def long_job() -> str:
        await trio.sleep(35)
        return "done at last"

    runner = TaskRunner(server, ttl=10.0)
    request = Request(1, "tools/call", {"name": "long_job", "arguments": {}})
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        created = await runner.start(
            request, protocol_version=VERSION, capabilities=EXT, meta={}, principal=None
        )
        task_id = created["taskId"]
        await trio.sleep(34)  # three TTLs without an update
        record = await runner.store.get(task_id)
        assert record is not None and record.status == "working" and len(runner) == 1
        await trio.sleep(2)
        record = await runner.store.get(task_id)
        assert record is not None and record.status == "completed"
        assert record.result is not None
        await trio.sleep(10.1)
        await trio.testing.wait_all_tasks_blocked()
        assert await runner.store.get(task_id) is None
        runner.close()


async def test_shutdown_settles_running_tasks_cancelled() -> None:
    server = trio_mcp.Server("stop")

    @server.tool(task="required")
    async def sleeper() -> str:
        await trio.sleep_forever()
        return "never"

    runner = TaskRunner(server)
    request = Request(1, "tools/call", {"name": "sleeper", "arguments": {}})
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        task_id = (
            await runner.start(
                request, protocol_version=VERSION, capabilities=EXT, meta={}, principal=None
            )
        )["taskId"]
        await trio.testing.wait_all_tasks_blocked()
        runner.close()
    record = await runner.store.get(task_id)
    assert record is not None and record.status == "cancelled"
    assert record.status_message == "the server shut down"


async def test_a_store_failing_to_delete_an_expired_task_leaves_the_reaper_going(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = task_server()
    store = BrokenStore()
    store.fail_deletes = True
    runner = TaskRunner(server, store, ttl=10.0)
    quick = Request(1, "tools/call", {"name": "quick", "arguments": {"text": "x"}})
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        first = await runner.start(
            quick, protocol_version=VERSION, capabilities=EXT, meta={}, principal=None
        )
        await trio.sleep(11)
        assert "failed to delete it" in caplog.text
        assert await store.get(first["taskId"]) is not None  # left behind, not fatal
        store.fail_deletes = False
        second = await runner.start(
            quick, protocol_version=VERSION, capabilities=EXT, meta={}, principal=None
        )
        await trio.sleep(11)
        assert await store.get(second["taskId"]) is None
        runner.close()
