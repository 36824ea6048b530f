"""The process's stdin and stdout, claimed for the stdio transport (POSIX).

Under stdio, stdout belongs to the protocol: a single stray byte (a ``print`` in a tool,
a library's warning, a child process's output) corrupts the host's stream. So while
the server runs, the protocol reads and writes private descriptors of its own, and
descriptors 0 and 1 point elsewhere: fd 1 at stderr, where anything written by mistake
lands among the logs, and fd 0 at the null device, so that nothing else (``input()``,
a child process) consumes the host's messages. Both are put back on the way out.

The private descriptors are opened anew for a terminal rather than duplicated. trio
drives them in non-blocking mode, a flag of the open file description that every
duplicate shares; on a terminal stdin, stdout and stderr are usually one description,
and making it non-blocking would make the logs' writes to stderr fail. (Under a host the
streams are pipes, each with a description of its own.)
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


class StdoutClosed(RuntimeError):
    """The process was started with stdout closed: there is nowhere to serve to."""


@contextmanager
def claimed_standard_streams() -> Iterator[tuple[int, int]]:
    """Divert fds 0 and 1 for the duration; yields private descriptors of stdin and
    stdout (owned here: duplicate them to hand them over).

    Raises :class:`StdoutClosed` when stdout is not open. A closed stdin reads as empty,
    so the session ends at once.
    """
    _flush_stdout()
    with ExitStack() as undo:
        try:
            wire_in = _private(0, os.O_RDONLY)
        except OSError:
            wire_in = _devnull(os.O_RDONLY)
        undo.callback(os.close, wire_in)
        try:
            wire_out = _private(1, os.O_WRONLY)
        except OSError:
            raise StdoutClosed("stdout is not open: there is nowhere to serve MCP to") from None
        undo.callback(os.close, wire_out)
        _divert(0, _devnull(os.O_RDONLY), undo)
        try:
            stderr = _above_standard(2)
        except OSError:
            stderr = _devnull(os.O_WRONLY)
        _divert(1, stderr, undo)
        # Flushed before fd 1 points back at the wire, so that late prints reach stderr.
        undo.callback(_flush_stdout)
        yield wire_in, wire_out


def _flush_stdout() -> None:
    # None when the process started without a stdout.
    if sys.stdout is not None:
        sys.stdout.flush()


def _private(fd: int, flags: int) -> int:
    """A descriptor of ``fd``'s file above the standard three, closed on exec."""
    if os.isatty(fd):
        try:
            return _lifted(os.open(os.ttyname(fd), flags | os.O_NOCTTY | os.O_CLOEXEC))
        except OSError:
            pass  # a terminal that cannot be opened by name: share its description
    return _above_standard(fd)


def _devnull(flags: int) -> int:
    return _lifted(os.open(os.devnull, flags | os.O_CLOEXEC))


def _above_standard(fd: int) -> int:
    """A copy of ``fd`` above the standard three, closed on exec. (Not os.dup: with a
    standard descriptor closed, the copy would land on it, and later be taken for it.)"""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _lifted(fd: int) -> int:
    """``fd``, moved above the standard three if it was opened on a closed one."""
    if fd > 2:
        return fd
    try:
        return _above_standard(fd)
    finally:
        os.close(fd)


def _divert(fd: int, replacement: int, undo: ExitStack) -> None:
    """Point ``fd`` at ``replacement`` (closing it) until ``undo`` unwinds."""
    try:
        saved: int | None = _above_standard(fd)
    except OSError:
        saved = None  # closed before: closed again after
    try:
        os.dup2(replacement, fd)
    finally:
        os.close(replacement)
    if saved is None:
        undo.callback(os.close, fd)
        return
    undo.callback(os.close, saved)
    undo.callback(os.dup2, saved, fd)
