"""Properties of recurrence expansion over generated rules.

``recurrence.expand`` agrees with recurring-ical-events on which
occurrences fall in a window, and no rule text, however broken, makes
parsing or expansion raise.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.calendar.ical import parse_calendar
from commlink.calendar.recurrence import expand
from commlink.records import Window

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
ZONES = ("UTC", "Europe/Berlin", "America/New_York")
WINDOW = Window(
    datetime(2026, 2, 1, tzinfo=timezone.utc), datetime(2026, 11, 1, tzinfo=timezone.utc)
)


def _calendar(start_line: str, rule: str, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        "UID:series@test\r\nDTSTAMP:20260101T000000Z\r\n"
        f"{start_line}\r\nDURATION:PT1H\r\nSUMMARY:Series\r\nRRULE:{rule}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@st.composite
def series(draw: st.DrawFn) -> tuple[str, str]:
    """An iCalendar series (text) and a description of it for failure reports."""
    zone = draw(st.sampled_from(ZONES))
    start = datetime(2026, 1, 1, 9, 0) + timedelta(
        days=draw(st.integers(0, 120)), hours=draw(st.integers(0, 10))
    )
    freq = draw(st.sampled_from(("DAILY", "WEEKLY", "MONTHLY")))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 3))
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    else:
        until = start + timedelta(days=draw(st.integers(0, 300)))
        utc = until.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
        parts.append(f"UNTIL={utc.strftime('%Y%m%dT%H%M%SZ')}")
    days = draw(st.lists(st.sampled_from(DAYS), unique=True, max_size=3))
    if days:
        parts.append("BYDAY=" + ",".join(days))
    if zone == "UTC":
        start_line = f"DTSTART:{start.strftime('%Y%m%dT%H%M%SZ')}"
    else:
        start_line = f"DTSTART;TZID={zone}:{start.strftime('%Y%m%dT%H%M%S')}"
    # EXDATEs on candidate occurrence days (some may not be occurrences)
    offsets = draw(st.lists(st.integers(0, 200), unique=True, max_size=4))
    extra = ""
    if offsets:
        stamps = [(start + timedelta(days=o)).strftime("%Y%m%dT%H%M%S") for o in offsets]
        if zone == "UTC":
            extra = "EXDATE:" + ",".join(s + "Z" for s in stamps) + "\r\n"
        else:
            extra = f"EXDATE;TZID={zone}:" + ",".join(stamps) + "\r\n"
    return _calendar(start_line, ";".join(parts), extra), ";".join(parts)


@settings(max_examples=100, deadline=None)
@given(series())
def test_expand_agrees_with_recurring_ical_events(case: tuple[str, str]) -> None:
    text, _rule = case
    parsed = parse_calendar(text)
    assert len(parsed.events) == 1
    assert parsed.events[0].recurrence, parsed.warnings
    ours = {e.start for e in expand(parsed.events, WINDOW)}
    reference = recurring_ical_events.of(icalendar.Calendar.from_ical(text)).between(
        WINDOW.start, WINDOW.end
    )
    theirs = {e["DTSTART"].dt.astimezone(timezone.utc) for e in reference}
    assert ours == theirs


RULE_PARTS = st.sampled_from(
    (
        "FREQ=DAILY",
        "FREQ=WEEKLY",
        "FREQ=MONTHLY",
        "FREQ=YEARLY",
        "FREQ=SECONDLY",
        "FREQ=MINUTELY",
        "FREQ=HOURLY",
        "FREQ=NEVER",
        "FREQ=",
        "INTERVAL=0",
        "INTERVAL=-1",
        "INTERVAL=2",
        "INTERVAL=x",
        "COUNT=0",
        "COUNT=5",
        "COUNT=-3",
        "UNTIL=20260101",
        "UNTIL=20300101T000000Z",
        "UNTIL=garbage",
        "BYDAY=MO,WE",
        "BYDAY=1MO",
        "BYDAY=-1FR",
        "BYDAY=9XX",
        "BYMONTHDAY=31",
        "BYMONTHDAY=0",
        "BYMONTHDAY=-1",
        "BYMONTH=2",
        "BYMONTH=13",
        "BYSETPOS=1",
        "BYSETPOS=-1",
        "BYWEEKNO=53",
        "BYYEARDAY=366",
        "BYHOUR=25",
        "BYMINUTE=61",
        "WKST=SU",
        "WKST=XX",
        ";",
        "=",
        "",
    )
)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.lists(RULE_PARTS, max_size=6).map(";".join),
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=60),
    ),
    st.booleans(),
)
def test_no_rule_text_makes_parsing_or_expansion_raise(rule: str, zoned: bool) -> None:
    start = "DTSTART;TZID=Europe/Berlin:20260302T090000" if zoned else "DTSTART:20260302T090000Z"
    parsed = parse_calendar(_calendar(start, rule), provider_id="p", calendar_id="c")
    occurrences = expand(parsed.events, WINDOW)
    assert all(WINDOW.start - timedelta(hours=1) < e.start < WINDOW.end for e in occurrences)
    # the event itself always survives a broken rule
    assert parsed.events
    assert any(e.uid == "series@test" for e in parsed.events)
