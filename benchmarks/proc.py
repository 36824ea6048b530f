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


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name may contain spaces; the fields after its ')' do not.
        fields = stat.read().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
