"""A calendar the icalendar library refuses as a whole is read part by part:
one broken component costs only itself, within a bounded amount of reading."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.calendar.ical import parse_calendar
from commlink.calendar.isolation import READ_FACTOR, isolated_calendars, split_parts

DATA = Path(__file__).resolve().parents[1] / "data" / "ics"

# The VTODO sends a calendar to the library (the quick reader declines it).
TODO = "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"
# Two TZID lines: the library fails as it caches this zone (a list has no strip).
BROKEN_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Head Office\r\nTZID:Head Office\r\nBEGIN:STANDARD\r\n"
    "DTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
)
GOOD_ZONE = BROKEN_ZONE.replace("TZID:Head Office\r\nTZID:Head Office", "TZID:Branch")


def event(uid: str, tzid: str = "", inner: str = "") -> str:
    start = f"DTSTART;TZID={tzid}:20260302T090000" if tzid else "DTSTART:20260302T090000Z"
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\n{start}\r\nSUMMARY:{uid}\r\n{inner}END:VEVENT\r\n"


def calendar(*parts: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "".join(parts) + "END:VCALENDAR\r\n"


def read(data: str) -> list[Any]:
    with warnings.catch_warnings():  # e.g. a guessed TZID: parse_calendar records these
        warnings.simplefilter("ignore")
        return list(icalendar.Calendar.from_ical(data, multiple=True))


def read_counting(text: str, notes: list[str]) -> tuple[list[tuple[Any, list[Any]]], int]:
    """``isolated_calendars`` of ``text``, and how many characters it read."""
    sizes: list[int] = []

    def counting(data: str) -> list[Any]:
        sizes.append(len(data))
        return read(data)

    return isolated_calendars(text, counting, notes), sum(sizes)


def test_a_broken_vtimezone_costs_only_its_zone() -> None:
    events = [event(f"e{i}", "Head Office" if i % 2 else "Branch") for i in range(40)]
    text = calendar(TODO, BROKEN_ZONE, GOOD_ZONE, *events)
    with pytest.raises(AttributeError):
        read(text)
    for quick in (True, False):
        result = parse_calendar(text, quick=quick)
        assert [e.uid for e in result.events] == [f"e{i}" for i in range(40)]
        assert "unknown-tzid:Head Office" in result.warnings
        assert result.events[0].start.hour == 8  # Branch: +01:00, still read
    assert "parse-error:AttributeError" in parse_calendar(text).warnings


def test_a_broken_event_costs_only_itself() -> None:
    # A VTIMEZONE inside an event breaks the library the same way.
    events = [event(f"e{i}") for i in range(30)]
    events[17] = event("bad", inner=BROKEN_ZONE)
    result = parse_calendar(calendar(TODO, *events))
    assert [e.uid for e in result.events] == [f"e{i}" for i in range(30) if i != 17]
    assert "invalid-event:bad" in result.warnings


def test_bare_events_are_read_one_by_one() -> None:
    text = event("a") + event("bad", inner=BROKEN_ZONE) + event("b")
    notes: list[str] = []
    found = isolated_calendars(text, read, notes)
    assert [[str(v.get("UID")) for v in vevents] for _, vevents in found] == [["a"], ["b"]]
    assert notes == ["invalid-event:bad"]


def test_the_reading_is_bounded_when_every_event_is_broken() -> None:
    events = [event(f"bad{i}", inner=BROKEN_ZONE) for i in range(64)]
    text = calendar(*events)
    notes: list[str] = []
    found, read_chars = read_counting(text, notes)
    assert found[0][1] == []
    assert sorted(notes) == sorted(f"invalid-event:bad{i}" for i in range(64))
    assert read_chars <= (READ_FACTOR + 1) * len(text)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.ics")), ids=lambda p: p.name)
def test_reading_part_by_part_agrees_with_reading_whole(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        whole = [str(v.get("UID")) for c in read(text) for v in c.walk("VEVENT")]
    except Exception as exc:
        pytest.skip(f"the library refuses this file as a whole: {exc!r}")
    parts = isolated_calendars(text, read, [])
    assert [str(v.get("UID")) for _, vevents in parts for v in vevents] == whole


_LINES = st.sampled_from(
    ["BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "END:VCALENDAR", "begin:valarm",
     "END:VALARM", "UID:x", " folded", "\tEND:VEVENT", "SUMMARY:s", "END:VTIMEZONE", ""]
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(_LINES, max_size=40))
def test_splitting_keeps_every_line_of_a_complete_component(lines: list[str]) -> None:
    text = "\r\n".join(lines)
    for name, props, children in split_parts(text):
        assert name
        for child_name, child in children:
            assert child[0].upper() == f"BEGIN:{child_name}"
            assert child[-1].upper() == f"END:{child_name}"
        assert not any(line.upper().startswith("BEGIN:") for line in props)
        rebuilt = [f"BEGIN:{name}", *props, *(line for _, c in children for line in c)]
        assert split_parts("\r\n".join([*rebuilt, f"END:{name}"])) == [(name, props, children)]


def test_the_reading_is_bounded_with_many_zones_and_large_properties() -> None:
    props = "".join(f"X-NOTE-{i}:{'n' * 70}\r\n" for i in range(300))
    zones = [GOOD_ZONE.replace("TZID:Branch", f"TZID:Z{i}") for i in range(300)]
    text = calendar(props, *zones, event("bad", inner=BROKEN_ZONE), event("ok"))
    notes: list[str] = []
    found, read_chars = read_counting(text, notes)
    assert read_chars <= (READ_FACTOR + 1) * len(text)
    assert [str(v.get("UID")) for v in found[0][1]] == ["ok"]  # the properties cost once
    assert notes == ["invalid-event:bad"]
    assert len(found[0][0].walk("VTIMEZONE")) == 300


def test_dense_failures_keep_every_good_event() -> None:
    events = [event(f"e{i}", inner=BROKEN_ZONE if i % 10 == 0 else "") for i in range(300)]
    result = parse_calendar(calendar(TODO, *events))
    assert [e.uid for e in result.events] == [f"e{i}" for i in range(300) if i % 10]
    assert sum(w.startswith("invalid-event:") for w in result.warnings) == 30
