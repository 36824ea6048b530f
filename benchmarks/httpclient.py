"""A minimal HTTP/1.1 client on raw trio sockets: the load generator's only HTTP code.

Why not httpx or h11: the load generator must hold about 19,000 streams and drive
thousands of calls a second from one core without becoming the bottleneck it measures.
A connection here is one socket and one ``bytearray``; a response head is parsed with
one ``split``. It speaks exactly what the benchmark needs: requests with a body or none,
responses framed by ``Content-Length`` or chunked, and a chunked body read one chunk at
a time for event streams held open.
"""

from __future__ import annotations

import socket
import sys
from typing import Final

import trio

#: Linux: bind() to a source address without picking a port until connect(), so that
#: many source addresses each get the whole ephemeral port range.
IP_BIND_ADDRESS_NO_PORT: Final = 24

_RECV_SIZE: Final = 65536

#: TCP states as Linux's ``struct tcp_info`` gives them (its first byte).
TCP_ESTABLISHED: Final = 1
#: Where ``tcpi_total_retrans`` sits in ``struct tcp_info`` (Linux).
_TOTAL_RETRANS: Final = 100


class ConnectionClosed(Exception):
    """The peer closed the connection (or reset it) before a full message arrived."""


class ProtocolError(Exception):
    """The peer sent something that is not the HTTP/1.1 this client understands."""


class Head:
    """A response's status line and headers (names in lower case)."""

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status = status
        self.headers = headers

    @property
    def chunked(self) -> bool:
        return b"chunked" in self.headers.get(b"transfer-encoding", b"").lower()

    @property
    def content_type(self) -> bytes:
        return self.headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()


def request_bytes(
    method: str,
    target: str,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request, ready to send; a body always goes with a Content-Length."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


class Connection:
    """One client connection; not safe for two tasks at once."""

    __slots__ = ("_buf", "_sock")

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self._buf = bytearray()

    @classmethod
    async def open(
        cls, host: str, port: int, source: str | None = None, receive_buffer: int | None = None
    ) -> Connection:
        """Connect from ``source`` (any port). ``receive_buffer`` sets SO_RCVBUF before
        connecting, which bounds the window offered: small, a client that stops reading
        shuts its window after a few KB (the attack section's clients do)."""
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if receive_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            if source is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                await sock.bind((source, 0))
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        self._sock.close()

    def tcp_state(self) -> int:
        """The connection's TCP state (Linux), read without reading any data: a client
        that must not read learns this way that the server reset or closed it."""
        if self._sock.fileno() < 0:
            return -1
        return self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]

    def retransmissions(self) -> int:
        """Segments sent more than once, SYNs included (Linux): a handshake the server's
        kernel dropped shows here even when it got through later."""
        info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TOTAL_RETRANS + 4)
        return int.from_bytes(info[_TOTAL_RETRANS : _TOTAL_RETRANS + 4], sys.byteorder)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = await self._sock.send(view)
            except OSError as exc:
                raise ConnectionClosed(str(exc)) from None
            view = view[sent:]

    async def _fill(self) -> None:
        try:
            data = await self._sock.recv(_RECV_SIZE)
        except OSError as exc:
            raise ConnectionClosed(str(exc)) from None
        if not data:
            raise ConnectionClosed("the peer closed the connection")
        self._buf += data

    async def read_head(self) -> Head:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            await self._fill()
        raw = bytes(self._buf[:end])
        del self._buf[: end + 4]
        lines = raw.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0]!r}")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return Head(int(parts[1]), headers)

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            await self._fill()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    async def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            await self._fill()

    async def read_chunk(self) -> bytes | None:
        """The next chunk of a chunked body; None after the last one (and its trailer)."""
        size_line = await self._read_line()
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line: {size_line!r}") from None
        if size == 0:
            while await self._read_line():
                pass  # trailer fields, if any, end with an empty line
            return None
        data = await self._read_exactly(size)
        if await self._read_exactly(2) != b"\r\n":
            raise ProtocolError("a chunk did not end with CRLF")
        return data

    async def read_body(self, head: Head) -> bytes:
        """The whole body of a response whose end the client can wait for."""
        if head.chunked:
            parts = []
            while (chunk := await self.read_chunk()) is not None:
                parts.append(chunk)
            return b"".join(parts)
        length = head.headers.get(b"content-length")
        if length is None:
            raise ProtocolError("a response with neither Content-Length nor chunking")
        return await self._read_exactly(int(length))
