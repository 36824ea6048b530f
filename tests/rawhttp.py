"""Bare HTTP/1.1 over trio sockets, for tests that open many connections cheaply."""

from __future__ import annotations

import json
import re
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import trio
import trio.testing


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def open_sse_stream(
    url: str, *, receive_buffer: int | None = None
) -> tuple[trio.SocketStream, str]:
    """Open GET /sse; returns the stream and the endpoint path from its first event.

    ``receive_buffer`` sets the socket's SO_RCVBUF before it connects (the window the
    client offers): small, a client that stops reading shuts its window soon."""
    host, port = host_port(url)
    if receive_buffer is None:
        stream = await trio.open_tcp_stream(host, port)
    else:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await sock.connect((host, port))
        stream = trio.SocketStream(sock)
    await stream.send_all(f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    received = b""
    while (match := re.search(rb"data: (\S+)\r?\n\r?\n", received)) is None:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError(f"stream closed before the endpoint event: {received!r}")
        received += chunk
    return stream, match.group(1).decode()


async def receive_until(stream: trio.SocketStream, marker: bytes) -> bytes:
    """Read from ``stream`` until ``marker`` has come; returns all that was read."""
    received = b""
    while marker not in received:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r} came: {received[-500:]!r}")
        received += chunk
    return received


#: TCP states in /proc/net/tcp: TIME_WAIT (06) holds no buffers and no descriptor.
_TIME_WAIT = 0x06


def server_holds(server_port: int, client_port: int) -> bool:
    """Whether the kernel still holds the server's side of a loopback connection, in
    any state but TIME_WAIT (Linux, IPv4): a dropped connection is gone from the table,
    whoever dropped it (the app's host or the kernel)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], int(fields[3], 16)
            if (
                int(local.rpartition(":")[2], 16) == server_port
                and int(remote.rpartition(":")[2], 16) == client_port
                and state != _TIME_WAIT
            ):
                return True
    return False


async def post(url: str, path: str, payload: Any) -> int:
    """POST JSON on a fresh connection; returns the status code."""
    host, port = host_port(url)
    body = json.dumps(payload).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(request)
        response = b""
        while chunk := await stream.receive_some(65536):
            response += chunk
    return int(response.split(b" ", 2)[1])


async def trickle_post(
    url: str,
    path: str,
    body: bytes,
    *,
    interval: float,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes, float, float]:
    """POST ``body`` on a fresh connection a byte every ``interval`` seconds, reading the
    answer meanwhile, until the server closes the connection.

    Returns (status, headers, body, seconds until the answer had all arrived, seconds
    until the server closed), both counted from the request's headers being sent."""
    host, port = host_port(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(head)
        start = trio.current_time()

        async def drip() -> None:
            for byte in body:
                await trio.sleep(interval)
                try:
                    await stream.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    return  # the server gave up on us

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drip)
            received = b""
            answered = None
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    chunk = b""  # reset: closed all the same
                if not chunk:
                    break
                received += chunk
                if answered is None and _complete(received):
                    answered = trio.current_time() - start
            closed = trio.current_time() - start
            nursery.cancel_scope.cancel()
    status, response_headers, response_body = _parse(received)
    return status, response_headers, response_body, answered or closed, closed


def _complete(response: bytes) -> bool:
    head, sep, rest = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = _parse(head + sep)[1].get("content-length")
    return length is not None and len(rest) >= int(length)


def _parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return (
        int(lines[0].split(" ", 2)[1]),
        {name.strip().lower(): value.strip() for name, value in fields.items()},
        rest,
    )


#: Where ``tcpi_total_retrans`` sits in Linux's ``struct tcp_info``.
_TOTAL_RETRANS = 100


def retransmissions(sock: trio.socket.SocketType) -> int:
    """Segments this connection sent more than once, SYNs included (Linux): a handshake
    or a request the server's kernel dropped shows here, even when it got through later."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TOTAL_RETRANS + 4)
    return int(struct.unpack_from("I", info, _TOTAL_RETRANS)[0])


async def burst(url: str, connections: int, path: str) -> list[tuple[int | str, int]]:
    """Connect ``connections`` times at once, each sending ``GET path`` and reading the
    answer to its end; returns (status or error, retransmissions) per connection."""
    host, port = host_port(url)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    go = trio.Event()
    outcomes: list[tuple[int | str, int]] = []

    async def one() -> None:
        with trio.socket.socket() as sock:
            await go.wait()
            try:
                await sock.connect((host, port))
                await sock.send(request.encode())
                response = b""
                while chunk := await sock.recv(65536):
                    response += chunk
            except OSError as exc:
                outcomes.append((repr(exc), retransmissions(sock)))
            else:
                outcomes.append((int(response.split(b" ", 2)[1]), retransmissions(sock)))

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    return outcomes
