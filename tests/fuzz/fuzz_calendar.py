"""Fuzz target: iCalendar data to events.

``parse_calendar`` never raises, answers within ``SECONDS``, and the quick
reader maps everything it accepts exactly as the icalendar library does
(its own warnings aside, and ``parse-error``, which says the library read
the data part by part).

    python tests/fuzz/fuzz_calendar.py CORPUS_DIR tests/data/ics -max_len=4096
"""

from __future__ import annotations

import time

from commlink.calendar.ical import CalendarParse, parse_calendar

SECONDS = 2.0
_UNCOMPARED = ("library-warning:", "parse-error:")


def _comparable(result: CalendarParse) -> CalendarParse:
    kept = tuple(w for w in result.warnings if not w.startswith(_UNCOMPARED))
    return CalendarParse(result.events, kept, result.method)


def check(data: bytes) -> None:
    started = time.perf_counter()
    quick = parse_calendar(data, provider_id="p", calendar_id="c")
    library = parse_calendar(data, provider_id="p", calendar_id="c", quick=False)
    took = time.perf_counter() - started
    assert took < SECONDS, f"{took:.2f} s for {len(data)} bytes"
    assert "parse-error:Unusual" not in library.warnings
    assert _comparable(quick) == _comparable(library), f"quick={quick!r}\nlibrary={library!r}"


if __name__ == "__main__":
    from atheris_run import fuzz

    fuzz(check)
