"""Where live sessions are found by id: the seam for sharing sessions across workers.

The in-memory store is all one process needs. A store shared through Redis would keep
the same operations, with ``get`` returning a handle that forwards to the worker holding
the session's stream. Sessions are found by id (the POST URL or ``Mcp-Session-Id``) and,
for HTTP+SSE resumption, by the key of their main stream (carried in event ids).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._session import Session


def new_session_id() -> str:
    """128 random bits as 32 hex digits: unguessable, and safe in a URL and a header."""
    return secrets.token_hex(16)


class SessionStore(Protocol):
    def add(self, session: Session) -> None: ...

    def get(self, session_id: str) -> Session | None: ...

    def remove(self, session_id: str) -> None: ...

    def by_stream_key(self, key: str) -> Session | None: ...

    def __len__(self) -> int: ...


class InMemorySessionStore:
    """Sessions of this process, by id."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._by_stream_key: dict[str, Session] = {}

    def add(self, session: Session) -> None:
        if session.id in self._sessions:
            raise KeyError(f"session id collision: {session.id}")
        self._sessions[session.id] = session
        self._by_stream_key[session.main.key] = session

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def remove(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._by_stream_key.pop(session.main.key, None)

    def by_stream_key(self, key: str) -> Session | None:
        return self._by_stream_key.get(key)

    def __len__(self) -> int:
        return len(self._sessions)
