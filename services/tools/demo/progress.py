"""The progress shown while `mandat run` feeds and waits."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """A one-line progress bar, `\\r`-updated on a terminal (one line per step otherwise)."""

    WIDTH = 30

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.live = bool(out is not None and out.isatty())
        self.last = 0.0

    def update(
        self, label: str, done: int, total: int, note: str = "", *, force: bool = False
    ) -> None:
        """Redraw the bar (on a terminal only, and at most every 0.1 s unless `force`)."""
        if self.out is None or not self.live:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self.out.write("\r" + self._line(label, done, total, note))
        self.out.flush()

    def finish(self, label: str, done: int, total: int, note: str = "") -> None:
        """The final state of a step, on a line of its own."""
        if self.out is None:
            return
        self.out.write(("\r" if self.live else "") + self._line(label, done, total, note) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        """A line of text."""
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def _line(self, label: str, done: int, total: int, note: str) -> str:
        share = done / total if total else 1.0
        filled = min(self.WIDTH, int(share * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{label:<26} [{bar}] {done:>7,}/{total:<7,} {share:4.0%} {note}".rstrip() + "  "
