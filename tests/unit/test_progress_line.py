"""The live progress line: rate, elapsed time, cleared in place, never going back."""

from __future__ import annotations

import io

from commlink.cli.progress import ProgressLine
from commlink.sync.report import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_shows_rate_and_time_and_never_counts_backwards() -> None:
    out = io.StringIO()
    clock = Clock()
    line = ProgressLine(out, clock=clock, every=0.0)
    line(Progress("alice-mail", "INBOX", "full", 500, 450))
    clock.now += 2
    line(Progress("alice-mail", "INBOX", "full", 1500, 1400))
    clock.now += 1
    line(Progress("alice-mail", "INBOX", "incremental", 0, 0))  # a later stage: nothing new
    frames = out.getvalue().split("\r\x1b[K")[1:]
    assert frames[0] == "alice-mail INBOX: 500 listed, 450 imported, 0:00"
    assert frames[1] == "alice-mail INBOX: 1,500 listed, 1,400 imported, 700/s, 0:02"
    assert frames[2] == "alice-mail INBOX: 1,500 listed, 1,400 imported, 467/s, 0:03"
    line.finish()
    assert out.getvalue().endswith("\r\x1b[K")


def test_redraws_are_throttled_and_untrusted_names_escaped() -> None:
    out = io.StringIO()
    clock = Clock()
    line = ProgressLine(out, clock=clock, every=0.5)
    line(Progress("ch", "Inbox\x1b[2J", "full", 1, 1))
    line(Progress("ch", "Inbox\x1b[2J", "full", 2, 2))  # within 0.5 s: not drawn
    assert out.getvalue().count("\r\x1b[K") == 1
    assert "\x1b[2J" not in out.getvalue()
    ProgressLine(io.StringIO()).finish()  # nothing drawn: nothing to clear
