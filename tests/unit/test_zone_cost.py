"""A VTIMEZONE whose rules would take the library seconds and hundreds of
megabytes to build is read as no zone, on both of ``parse_calendar``'s paths."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import icalendar
import pytest

from commlink.calendar.ical import parse_calendar
from commlink.calendar.library_zones import MAX_ZONE_STEPS, zone_too_costly
from commlink.calendar.rules import cost, parse_rule
from commlink.calendar.zones import MAX_CALENDAR_ZONE_STEPS


def calendar(standard: str, start: str = "20200101T000000") -> str:
    text = f"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTIMEZONE
TZID:Custom
BEGIN:STANDARD
DTSTART:{start}
{standard}
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
TZNAME:CST
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:{start}
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
TZNAME:CDT
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:e1@test
DTSTAMP:20260101T000000Z
DTSTART;TZID=Custom:20260801T090000
DTEND;TZID=Custom:20260801T100000
SUMMARY:Meeting
END:VEVENT
END:VCALENDAR
"""
    return text.replace("\n", "\r\n")


# the library lists every transition before the event beside the zone is
# read: 16 s and 200 MB for the MINUTELY rule, 60 times that for SECONDLY
COSTLY = (
    "RRULE:FREQ=MINUTELY",
    "RRULE:FREQ=SECONDLY",
    "RRULE:FREQ=DAILY;COUNT=5000000",
    "RRULE:FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYMONTHDAY=1,2,3,4,5,6,7,8,9,10,11,12,"
    "13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28;BYHOUR=0,6,12,18",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;BYSETPOS=1" + ",1" * 300,
    "RDATE:" + ",".join(f"{2000 + i // 300}{(i % 12) + 1:02}01T000000" for i in range(12_000)),
)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("standard", COSTLY)
def test_a_costly_zone_is_no_zone(standard: str, quick: bool) -> None:
    began = time.monotonic()
    parsed = parse_calendar(calendar(standard), quick=quick)
    assert time.monotonic() - began < 1
    assert "unknown-tzid:Custom" in parsed.warnings
    assert len(parsed.events) == 1


@pytest.mark.parametrize("quick", [True, False])
def test_an_outlook_zone_from_1601_is_built(quick: bool) -> None:
    text = calendar("RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", start="16010101T020000")
    parsed = parse_calendar(text, quick=quick)
    assert not [w for w in parsed.warnings if w.startswith("unknown-tzid")]
    event = parsed.events[0]
    assert event.start.utcoffset() is not None
    assert event.start.hour == 8  # 09:00 at +01:00 (summer) is 08:00 UTC


def test_rules_the_library_could_not_read_are_costly() -> None:
    zone = icalendar.Calendar.from_ical(calendar("RRULE:FREQ=YEARLY")).walk("VTIMEZONE")[0]
    assert not zone_too_costly(zone)
    assert zone_too_costly(object())


def test_a_rare_zone_rule_is_costed_to_the_year_9999() -> None:
    # a rule that never matches is walked past 2038 to the year 9999
    never = calendar("RRULE:FREQ=MONTHLY;BYDAY=TH,2FR")
    assert "unknown-tzid:Custom" in parse_calendar(never).warnings


def test_one_parse_builds_zones_of_a_million_steps_at_most() -> None:
    zone = calendar("RRULE:FREQ=DAILY;UNTIL=20400101T000000Z")
    begin = datetime(2020, 1, 1, tzinfo=timezone.utc)
    each = cost(
        parse_rule("FREQ=DAILY;UNTIL=20400101T000000Z"),
        begin,
        datetime(2040, 1, 1, tzinfo=timezone.utc),
        10**9,
    ) + cost(
        parse_rule("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU"),
        begin,
        datetime(2038, 12, 31, tzinfo=timezone.utc),
        10**9,
    )
    assert 100_000 < each <= MAX_ZONE_STEPS
    fitting = MAX_CALENDAR_ZONE_STEPS // each
    head, _, rest = zone.partition("BEGIN:VTIMEZONE")
    block, _, tail = rest.partition("END:VTIMEZONE\r\n")
    zones = "".join(
        "BEGIN:VTIMEZONE" + block.replace("TZID:Custom", f"TZID:Custom{i}") + "END:VTIMEZONE\r\n"
        for i in range(10)
    )
    events = "".join(
        tail.replace("TZID=Custom", f"TZID=Custom{i}").replace("UID:e1", f"UID:e{i}")
        for i in range(10)
    ).replace("END:VCALENDAR\r\n", "")
    text = head + zones + events + "END:VCALENDAR\r\n"
    for quick in (True, False):
        parsed = parse_calendar(text, quick=quick)
        assert len(parsed.events) == 10
        unknown = [w for w in parsed.warnings if w.startswith("unknown-tzid")]
        # the first zones fit in the parse's million steps, the rest do not
        assert "unknown-tzid:Custom0" not in unknown
        assert "unknown-tzid:Custom9" in unknown
        assert len(unknown) == 10 - fitting
