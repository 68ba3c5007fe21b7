"""The icalendar library's zone lookups read a TZID that zoneinfo cannot open
as unknown, and a host's own choice of provider is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import tzinfo

import pytest
from icalendar.timezone import tzp
from icalendar.timezone.zoneinfo import ZONEINFO

from commlink.calendar import lines
from commlink.calendar.ical import parse_calendar
from commlink.calendar.library_zones import guard_zone_lookups

# The VTODO sends the calendar to the library (the quick reader declines it).
CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe:20260302T090000\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=Europe/Berlin:20260302T090000\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


@pytest.fixture(autouse=True)
def _default_provider() -> Iterator[None]:
    tzp.use_zoneinfo()
    yield
    tzp.use_zoneinfo()


def test_a_host_resetting_the_provider_is_guarded_again() -> None:
    assert [e.uid for e in parse_calendar(CALENDAR, quick=False).events] == ["a", "b"]
    tzp.use_zoneinfo()  # the host resets icalendar's provider
    with pytest.raises(OSError, match="too long"):
        tzp.timezone("x" * 256)
    result = parse_calendar(CALENDAR, quick=False)
    assert [e.uid for e in result.events] == ["a", "b"]
    assert "unknown-tzid:Europe" in result.warnings
    assert str(result.events[1].start) == "2026-03-02 08:00:00+00:00"  # Berlin still known


def test_known_zones_resolve_as_before() -> None:
    guard_zone_lookups()
    zone = tzp.timezone("America/New_York")
    assert zone is not None
    assert str(zone) == "America/New_York"
    assert tzp.timezone("Mars/Olympus") is None
    assert tzp.timezone("Europe") is None


class _HostProvider(ZONEINFO):
    name = "host"

    def timezone(self, name: str) -> tzinfo | None:
        return super().timezone(name)


def test_a_provider_the_host_chose_is_left_alone() -> None:
    tzp.use(_HostProvider())
    guard_zone_lookups()
    assert tzp.name == "host"


# A custom VTIMEZONE whose STANDARD part has no DTSTART: it cannot be built.
BROKEN_ZONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{extra}"
    "BEGIN:VTIMEZONE\r\nTZID:Head Office\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Head Office:20260302T090000\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260302T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize("extra", ["", "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"])
def test_a_vtimezone_that_cannot_be_built_is_an_unknown_zone(extra: str) -> None:
    text = BROKEN_ZONE.format(extra=extra)
    library = parse_calendar(text, quick=False)
    assert [e.uid for e in library.events] == ["a", "b"]
    assert "unknown-tzid:Head Office" in library.warnings
    if not extra:  # the quick reader reads it too, and agrees
        lines.read(text)
        assert parse_calendar(text) == library
