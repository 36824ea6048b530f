"""Bare HTTP/1.1 over trio sockets, for tests that open many connections cheaply."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import trio


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def open_sse_stream(url: str) -> tuple[trio.SocketStream, str]:
    """Open GET /sse; returns the stream and the endpoint path from its first event."""
    host, port = host_port(url)
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    received = b""
    while (match := re.search(rb"data: (\S+)\r?\n\r?\n", received)) is None:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError(f"stream closed before the endpoint event: {received!r}")
        received += chunk
    return stream, match.group(1).decode()


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
