"""A live progress line for long imports on a terminal.

One line per run, rewritten in place and cleared before it is redrawn:
``alice-mail INBOX: 12,400 listed, 11,950 imported, 830/s, 0:15``. A step
that reports nothing new (a stage change, a quiet scope) does not move the
counters back; ``finish()`` ends the line so the summary starts on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ..sync.report import Progress
from .output import terminal_safe

__all__ = ["ProgressLine"]

_CLEAR = "\r\x1b[K"


class ProgressLine:
    """Call it with each ``Progress``; ``finish()`` once the run is over."""

    def __init__(
        self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic, every: float = 0.1
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.every = every
        self._started: float | None = None
        self._shown_at = 0.0
        self._best: dict[tuple[str, str], tuple[int, int]] = {}
        self._drawn = False

    def __call__(self, event: Progress) -> None:
        now = self.clock()
        if self._started is None:
            self._started = now
        key = (event.channel_id, event.scope_id)
        done, imported = self._best.get(key, (0, 0))
        done, imported = max(done, event.done), max(imported, event.imported)
        self._best[key] = (done, imported)
        if now - self._shown_at < self.every:
            return
        self._shown_at = now
        elapsed = max(now - self._started, 1e-9)
        minutes, seconds = divmod(int(elapsed), 60)
        rate = f", {imported / elapsed:,.0f}/s" if elapsed >= 1 else ""
        line = (
            f"{event.channel_id} {event.scope_id}: {done:,} listed, {imported:,} imported"
            f"{rate}, {minutes}:{seconds:02d}"
        )
        self.stream.write(_CLEAR + terminal_safe(line))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Clear the line (the summary that follows says it all)."""
        if self._drawn:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._drawn = False
