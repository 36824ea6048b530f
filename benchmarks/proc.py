"""The operating system's side of a run: cores, file descriptors, and a process's costs.

Everything here reads or sets Linux process state directly (``sched_setaffinity``,
``RLIMIT_NOFILE``, ``/proc/<pid>``), so that measuring a server costs it nothing: no
thread inside it, no library that could itself allocate per connection.
"""

from __future__ import annotations

import os
import resource

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pin_to_core(core: int | None) -> None:
    """Run this process on one core only (None: leave it where it is)."""
    if core is not None and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status``."""
    return _status_kb(pid, "VmRSS:")


def reset_peak_rss(pid: int) -> None:
    """Start a process's peak RSS afresh from its RSS now (Linux 4.0 and later).

    The kernel keeps the peak itself (``VmHWM``), so no spike between two samples of a
    poller is missed; writing 5 to ``clear_refs`` sets it back to the current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def peak_rss_bytes(pid: int) -> int:
    """The largest RSS a process has had since it started or :func:`reset_peak_rss`."""
    return _status_kb(pid, "VmHWM:")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name may contain spaces; the fields after its ')' do not.
        fields = stat.read().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


#: TCP states (``/proc/net/tcp``) in which the server's process still holds a connection:
#: ESTABLISHED, and CLOSE_WAIT (the client has closed, the server not yet).
_HELD_STATES = {0x01, 0x08}


def held_connections(port: int) -> int:
    """Connections to a server on ``port`` that it still holds (Linux, IPv4 and IPv6):
    established ones, and ones whose client closed and the server has not yet."""
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    local, state = fields[1], int(fields[3], 16)
                    if state in _HELD_STATES and int(local.rpartition(":")[2], 16) == port:
                        held += 1
        except FileNotFoundError:
            continue
    return held
