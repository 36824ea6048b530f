"""MCP over stdin and stdout: ``python -m trio_mcp --stdio`` as a real child process,
driven by the official Python client's stdio transport and by a raw host on the pipes
(tests/stdiopeer.py), which checks every line the server writes against the schema."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from stdio_target import CANCELLED, STARTED
from stdiopeer import TESTS, child_env, stdio_server

from trio_mcp import INVALID_REQUEST, PARSE_ERROR, SERVER_BUSY
from trio_mcp._stdio import LineFramer, LineTooLong

DEMO = ("-m", "trio_mcp", "--stdio")
EVERYTHING = (*DEMO, "everything:server")
TARGET = (*DEMO, "stdio_target:server")


def target_script(*options: str) -> tuple[str, ...]:
    """tests/stdio_target.py run as a script, with small settings."""
    return (str(TESTS / "stdio_target.py"), *options)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Where the child's stderr goes."""
    return tmp_path / "stderr.log"


# -- the official client ------------------------------------------------------------------


@asynccontextmanager
async def official(log: Path, *args: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    parameters = StdioServerParameters(command=sys.executable, args=list(args), env=child_env())
    with log.open("w") as errlog:
        async with stdio_client(parameters, errlog=errlog) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                await session.initialize()
                yield session


async def test_the_official_client_lists_and_calls_the_demo_tools(log: Path) -> None:
    async with official(log, *DEMO) as client:
        tools = await client.list_tools()
        echoed = await client.call_tool("echo", {"text": "héllo"})
        added = await client.call_tool("add", {"a": 2, "b": 40})
    assert {tool.name for tool in tools.tools} == {"echo", "add", "sleep"}
    assert echoed.content[0].text == "héllo"  # type: ignore[union-attr]
    assert added.structured_content == {"result": 42}


async def test_the_official_client_receives_progress(log: Path) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with official(log, *DEMO) as client:
        result = await client.call_tool("sleep", {"seconds": 0.6}, progress_callback=on_progress)
    assert not result.is_error
    assert len(progress) >= 3 and progress == sorted(progress)
    assert progress[-1] == 0.6


async def test_the_official_client_answers_sampling_from_a_module_target(log: Path) -> None:
    async def sample(
        context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="test-model",
        )

    async with official(log, *EVERYTHING, sampling_callback=sample) as client:
        result = await client.call_tool("test_sampling", {"prompt": "the answer?"})
    assert result.content[0].text == "LLM response: forty-two"  # type: ignore[union-attr]


async def test_the_official_client_answers_elicitation(log: Path) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "a@b.c"})

    async with official(log, *EVERYTHING, elicitation_callback=elicit) as client:
        result = await client.call_tool("test_elicitation", {"message": "who are you?"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("User response: action=accept") and "'ada'" in text


async def test_the_official_client_cancelling_a_call_cancels_the_tool(log: Path) -> None:
    async with official(log, *TARGET) as client:
        async with trio.open_nursery() as nursery:
            call = trio.CancelScope()

            async def hang() -> None:
                with call:
                    await client.call_tool("hang", {})

            nursery.start_soon(hang)
            await wait_for_text(log, STARTED)
            call.cancel()
        await wait_for_text(log, CANCELLED)
        after = await client.call_tool("big", {"size": 3})
    assert after.content[0].text == "xxx"  # type: ignore[union-attr]


async def test_the_official_client_stops_the_server_by_closing_stdin(log: Path) -> None:
    async with official(log, *DEMO) as client:
        await client.send_ping()
        started = trio.current_time()
    # The client waits 2 s for an exit after closing stdin before it sends SIGTERM.
    assert trio.current_time() - started < 2
    stderr = await trio.Path(log).read_text()
    assert "stdin closed" in stderr
    assert "SIGTERM" not in stderr


async def wait_for_text(path: Path, text: str, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while text not in await trio.Path(path).read_text():
            await trio.sleep(0.02)


# -- a raw host: errors, lines, the end ----------------------------------------------------


async def test_a_line_that_is_not_json_gets_a_parse_error_and_the_session_goes_on(
    log: Path,
) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        await peer.send_line(b'{"jsonrpc": "2.0", "id": 5, "method": \n')
        error = await peer.receive()
        echoed = await peer.call("tools/call", {"name": "echo", "arguments": {"text": "still"}})
    assert error["error"]["code"] == PARSE_ERROR
    assert "id" not in error  # unreadable, so not echoed (2025-11-25 omits it)
    assert echoed["result"]["content"][0]["text"] == "still"


async def test_an_invalid_message_gets_invalid_request_with_its_id(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        await peer.send({"jsonrpc": "1.0", "id": 7, "method": "ping"})
        error = await peer.receive()
        pong = await peer.call("ping")
    assert error["id"] == 7 and error["error"]["code"] == INVALID_REQUEST
    assert pong["result"] == {}


async def test_blank_lines_are_ignored(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        await peer.send_line(b"\n   \n\t\r\n")
        await peer.send(peer.request("ping", request_id="after-blanks"))
        first = await peer.receive()
    assert first == {"jsonrpc": "2.0", "id": "after-blanks", "result": {}}


async def test_a_line_ending_in_crlf_is_a_message(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        message = peer.request("ping", request_id="crlf")
        await peer.send_line(json.dumps(message).encode() + b"\r\n")
        assert (await peer.receive())["id"] == "crlf"


async def test_a_line_longer_than_max_body_bytes_is_refused_and_the_session_goes_on(
    log: Path,
) -> None:
    async with stdio_server(log, *target_script("--max-body-bytes", "2048")) as peer:
        await peer.initialize()
        huge = peer.request("tools/call", {"name": "chatty", "arguments": {"text": "x" * 50_000}})
        await peer.send(huge)
        error = await peer.receive()
        answered = await peer.call("tools/call", {"name": "big", "arguments": {"size": 4}})
    assert error["error"] == {
        "code": INVALID_REQUEST,
        "message": "a message exceeds 2048 bytes",
    }
    assert answered["result"]["content"][0]["text"] == "xxxx"


async def test_a_batch_is_served_on_2025_03_26(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize("2025-03-26")
        echo = peer.request("tools/call", {"name": "echo", "arguments": {"text": "one"}})
        add = peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
        await peer.send([echo, add])
        replies = {(m := await peer.receive())["id"]: m for _ in range(2)}
    assert replies[echo["id"]]["result"]["content"][0]["text"] == "one"
    assert replies[add["id"]]["result"]["content"][0]["text"] == "2"


async def test_a_batch_is_refused_on_2025_11_25_and_the_session_goes_on(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize("2025-11-25")
        await peer.send([peer.request("ping"), peer.request("ping")])
        error = await peer.receive()
        await peer.send(peer.request("ping", request_id="after"))
        next_message = await peer.receive()
    assert error["error"]["code"] == INVALID_REQUEST
    assert "batches are not part of MCP 2025-11-25" in error["error"]["message"]
    assert next_message["id"] == "after"  # nothing of the batch was acted on


async def test_every_line_on_stdout_is_a_valid_mcp_message(log: Path) -> None:
    """A session with a bit of everything; the peer checks each line as it reads it."""
    async with stdio_server(log, *EVERYTHING) as peer:
        await peer.initialize(capabilities={"sampling": {}, "elicitation": {}})
        for method in ("tools/list", "resources/list", "prompts/list"):
            assert "result" in await peer.call(method)
        await peer.call("logging/setLevel", {"level": "debug"})
        await peer.call("tools/call", {"name": "test_tool_with_logging"})
        await peer.call(
            "tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": "p"}}
        )
        await peer.call("resources/read", {"uri": "test://static-binary"})
        await peer.send_line(b"not json\n")
        assert (await peer.receive())["error"]["code"] == PARSE_ERROR
        call = await peer.send_request(
            "tools/call", {"name": "test_sampling", "arguments": {"prompt": "hi"}}
        )
        sampling = await peer.receive()
        assert sampling["method"] == "sampling/createMessage"
        await peer.send(
            {
                "jsonrpc": "2.0",
                "id": sampling["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "hello"},
                    "model": "m",
                },
            }
        )
        assert (await peer.reply_to(call))["result"]["content"][0]["text"] == "LLM response: hello"
        await peer.close_stdin()
        assert await peer.read_line() is None
        assert await peer.exit_status() == 0
    messages = [json.loads(line) for line in peer.lines]
    kinds = {next(k for k in ("method", "result", "error") if k in m) for m in messages}
    assert kinds == {"method", "result", "error"}
    assert len(peer.lines) >= 12


async def test_output_printed_by_a_tool_goes_to_stderr_not_stdout(log: Path) -> None:
    async with stdio_server(log, *TARGET) as peer:
        await peer.initialize()
        reply = await peer.call("tools/call", {"name": "chatty", "arguments": {"text": "psst"}})
        await peer.close_stdin()
        assert await peer.read_line() is None
        assert await peer.exit_status() == 0
    assert reply["result"]["content"][0]["text"] == "psst"
    assert "a stray print: psst" in peer.stderr
    assert "a child's output: psst" in peer.stderr


async def test_closing_stdin_cancels_running_calls_and_exits_0(log: Path) -> None:
    async with stdio_server(log, *TARGET) as peer:
        await peer.initialize()
        await peer.send_request("tools/call", {"name": "hang"})
        await peer.wait_for_stderr(STARTED)
        closed = trio.current_time()
        await peer.close_stdin()
        status = await peer.exit_status(timeout=5)
        took = trio.current_time() - closed
        assert await peer.read_line() is None  # the cancelled call is not answered
    assert status == 0
    assert took < 2, took
    assert CANCELLED in peer.stderr
    assert "Traceback" not in peer.stderr


async def test_a_host_that_stops_reading_delays_the_exit_by_stalled_client_timeout_at_most(
    log: Path,
) -> None:
    async with stdio_server(log, *target_script("--stalled-client-timeout", "0.5")) as peer:
        await peer.initialize()
        # More than a pipe holds: once the host has some of it, the writer is stuck.
        await peer.send_request("tools/call", {"name": "big", "arguments": {"size": 1_000_000}})
        assert peer.process.stdout is not None
        assert await peer.process.stdout.receive_some(1000)
        closed = trio.current_time()
        await peer.close_stdin()
        status = await peer.exit_status(timeout=5)
        took = trio.current_time() - closed
    assert status == 0
    assert 0.5 <= took < 2.5, took
    assert "messages left unsent" in peer.stderr


async def test_a_host_that_closes_stdout_ends_the_server(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        assert peer.process.stdout is not None
        await peer.process.stdout.aclose()
        await peer.send_request("ping")
        status = await peer.exit_status(timeout=5)
    assert status == 0
    assert "stdout closed" in peer.stderr
    assert "Traceback" not in peer.stderr


async def test_a_server_started_without_stdout_says_so_and_exits_1() -> None:
    # The shell closes fd 1 (>&-) before it becomes the server.
    command = ["sh", "-c", 'exec "$0" -m trio_mcp --stdio >&-', sys.executable]
    with trio.fail_after(10):
        result = await trio.run_process(
            command, env=child_env(), stdin=subprocess.DEVNULL, capture_stderr=True, check=False
        )
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "python -m trio_mcp --stdio: stdout is not open: there is nowhere to serve MCP to"
    )


# -- signals --------------------------------------------------------------------------------


def sleep_with_progress(seconds: float) -> dict[str, Any]:
    """The demo's sleep, which reports progress at once: a sign that it runs."""
    return {"name": "sleep", "arguments": {"seconds": seconds}, "_meta": {"progressToken": 1}}


async def test_sigterm_when_idle_exits_0_at_once(log: Path) -> None:
    async with stdio_server(log, *DEMO) as peer:
        await peer.initialize()
        peer.process.send_signal(signal.SIGTERM)
        status = await peer.exit_status(timeout=2)
        assert await peer.read_line() is None
    assert status == 0
    assert "SIGTERM: shutting down" in peer.stderr


async def test_sigterm_lets_a_running_call_finish_and_refuses_new_ones(log: Path) -> None:
    async with stdio_server(log, *DEMO, "--shutdown-timeout", "10") as peer:
        await peer.initialize()
        call = await peer.send_request("tools/call", sleep_with_progress(1))
        assert (await peer.receive())["method"] == "notifications/progress"  # it runs
        signalled = trio.current_time()
        peer.process.send_signal(signal.SIGTERM)
        await peer.wait_for_stderr("SIGTERM: shutting down")
        refused = await peer.call("tools/call", {"name": "echo", "arguments": {"text": "late"}})
        finished = await peer.reply_to(call)
        status = await peer.exit_status(timeout=5)
        took = trio.current_time() - signalled
    assert refused["error"]["code"] == SERVER_BUSY
    assert finished["result"]["content"][0]["text"] == "slept 1 s"
    assert status == 0
    assert took < 5, took  # the call's second, not the 10 s allowed


async def test_sigterm_stops_a_call_that_outlasts_the_shutdown_timeout(log: Path) -> None:
    async with stdio_server(log, *DEMO, "--shutdown-timeout", "0.5") as peer:
        await peer.initialize()
        await peer.send_request("tools/call", sleep_with_progress(60))
        assert (await peer.receive())["method"] == "notifications/progress"
        signalled = trio.current_time()
        peer.process.send_signal(signal.SIGTERM)
        status = await peer.exit_status(timeout=5)
        took = trio.current_time() - signalled
    assert status == 0
    assert 0.5 <= took < 2.5, took


async def test_a_second_signal_stops_at_once(log: Path) -> None:
    async with stdio_server(log, *DEMO, "--shutdown-timeout", "60") as peer:
        await peer.initialize()
        await peer.send_request("tools/call", sleep_with_progress(60))
        assert (await peer.receive())["method"] == "notifications/progress"
        peer.process.send_signal(signal.SIGTERM)
        await peer.wait_for_stderr("SIGTERM: shutting down")
        peer.process.send_signal(signal.SIGINT)
        status = await peer.exit_status(timeout=3)
    assert status == 0
    assert "SIGINT again: stopping now" in peer.stderr


# -- framing, sans-io ---------------------------------------------------------------------


def test_lines_are_reassembled_across_reads() -> None:
    framer = LineFramer(100)
    assert framer.feed(b'{"a"') == []
    assert framer.feed(b":1}\n{") == [b'{"a":1}']
    assert framer.feed(b"}\n\n") == [b"{}", b""]


def test_a_long_line_is_reported_once_and_skipped_to_its_newline() -> None:
    framer = LineFramer(10)
    assert framer.feed(b"x" * 8) == []
    assert framer.feed(b"x" * 8) == [LineTooLong(10)]
    assert framer.feed(b"x" * 1000) == []
    assert framer.feed(b"xx\nok\n") == [b"ok"]
    assert framer.feed(b"y" * 11 + b"\nok\n") == [LineTooLong(10), b"ok"]


def test_a_last_line_without_a_newline_still_counts() -> None:
    framer = LineFramer(10)
    assert framer.feed(b"{}\n[]") == [b"{}"]
    assert framer.end() == [b"[]"]
    skipping = LineFramer(2)
    assert skipping.feed(b"xxxx") == [LineTooLong(2)]
    assert skipping.end() == []
