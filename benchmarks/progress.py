"""A progress bar on stderr for long runs; one line per step when stderr is not a TTY.

A full sweep takes the better part of an hour, so it says where it is. The report itself
goes to stdout, so redirecting it to a file keeps it clean of the bar.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_steps: int, enabled: bool = True) -> None:
        self.total = total_steps
        self.step = 0
        self.label = ""
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def begin(self, label: str) -> None:
        self.step += 1
        self.label = label
        if self.enabled and not self.tty:
            elapsed = time.monotonic() - self._started
            print(
                f"[{self.step}/{self.total} {elapsed:6.0f}s] {label}", file=sys.stderr, flush=True
            )
        self.update(0, 0)

    def update(self, done: int, total: int, note: str = "") -> None:
        if not (self.enabled and self.tty):
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != total:
            return
        self._last = now
        width = 30
        filled = int(width * done / total) if total else 0
        bar = "#" * filled + "." * (width - filled)
        count = f" {done:,}/{total:,}" if total else ""
        line = f"\r[{self.step}/{self.total}] {self.label} [{bar}]{count} {note}"
        sys.stderr.write(line[:160].ljust(120))
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
