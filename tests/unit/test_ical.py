from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.calendar.ical import DESCRIPTION_LIMIT, CalendarParse, parse_calendar, skipped_uids
from commlink.calendar.recurrence import expand
from commlink.model import Event, EventStatus, ResponseStatus
from commlink.records import Window

DATA = Path(__file__).parent.parent / "data" / "ics"
UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def load(name: str, **kwargs: str) -> CalendarParse:
    return parse_calendar((DATA / name).read_bytes(), **kwargs)


def by_uid(parse: CalendarParse) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = {}
    for event in parse.events:
        found.setdefault(event.uid, []).append(event)
    return found


def vcalendar(*lines: str, header: tuple[str, ...] = ()) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *header, *lines, "END:VCALENDAR", ""])


def vevent(*lines: str) -> list[str]:
    return ["BEGIN:VEVENT", *lines, "END:VEVENT"]


# -- series, overrides, exceptions -------------------------------------------


def test_series_master_keeps_rules_in_utc_and_its_zone() -> None:
    parse = load("series.ics", provider_id="p1", calendar_id="cal")
    series = by_uid(parse)["weekly-sync@example.com"]
    master = next(e for e in series if e.recurrence_id is None)
    assert master.start == datetime(2024, 1, 8, 10, tzinfo=BERLIN).astimezone(UTC)
    assert master.end - master.start == timedelta(hours=1)
    assert master.start.tzinfo is UTC
    assert master.timezone == "Europe/Berlin"
    rule = master.recurrence[0]
    assert rule.startswith("RRULE:")
    assert set(rule[6:].split(";")) == {"FREQ=WEEKLY", "BYDAY=MO", "UNTIL=20240401T000000Z"}
    exdates = [datetime(2024, 1, d, 10, tzinfo=BERLIN).astimezone(UTC) for d in (15, 22)]
    assert master.recurrence[1] == "EXDATE:" + ",".join(
        d.strftime("%Y%m%dT%H%M%SZ") for d in exdates
    )
    assert (master.provider_id, master.calendar_id) == ("p1", "cal")
    assert master.sequence == 2
    assert master.updated == datetime(2024, 1, 2, 8, tzinfo=UTC)  # LAST-MODIFIED wins
    assert master.title == "Weekly pipeline sync"
    assert master.location == "Room 4.12"


def test_overrides_carry_their_recurrence_id() -> None:
    series = by_uid(load("series.ics"))["weekly-sync@example.com"]
    overrides = {e.recurrence_id: e for e in series if e.recurrence_id is not None}
    moved_slot = datetime(2024, 1, 29, 10, tzinfo=BERLIN).astimezone(UTC)
    cancelled_slot = datetime(2024, 2, 5, 10, tzinfo=BERLIN).astimezone(UTC)
    assert set(overrides) == {moved_slot, cancelled_slot}
    moved = overrides[moved_slot]
    assert moved.start == datetime(2024, 1, 29, 14, tzinfo=BERLIN).astimezone(UTC)
    assert moved.recurrence == ()
    assert moved.sequence == 3
    assert overrides[cancelled_slot].status is EventStatus.CANCELLED


def test_series_expands_with_exdates_and_overrides() -> None:
    series = by_uid(load("series.ics"))["weekly-sync@example.com"]
    window = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 13, tzinfo=UTC))
    starts = [e.start for e in expand(series, window)]
    expected = [
        datetime(2024, 1, 8, 10, tzinfo=BERLIN),  # 15th and 22nd are EXDATEs
        datetime(2024, 1, 29, 14, tzinfo=BERLIN),  # moved
        datetime(2024, 2, 12, 10, tzinfo=BERLIN),  # 5th is cancelled
    ]
    assert starts == [d.astimezone(UTC) for d in expected]


def test_duration_and_status() -> None:
    review = by_uid(load("series.ics"))["summer-review@example.com"][0]
    assert review.start == datetime(2024, 7, 10, 10, tzinfo=BERLIN).astimezone(UTC)
    assert review.start.hour == 8  # CEST
    assert review.end - review.start == timedelta(minutes=45)
    assert review.status is EventStatus.TENTATIVE


# -- people --------------------------------------------------------------------


def test_attendees_partstat_roles_and_organizer() -> None:
    master = by_uid(load("series.ics"))["weekly-sync@example.com"][0]
    assert master.organizer is not None
    assert master.organizer.organizer
    assert master.organizer.status is ResponseStatus.ACCEPTED
    assert master.organizer.address.key == "alice@northwind.example"
    assert master.organizer.address.name == "Alice Martin"
    people = {a.address.key: a for a in master.attendees if a.address.valid}
    assert people["bob@globex.example"].status is ResponseStatus.ACCEPTED
    assert not people["bob@globex.example"].optional
    assert people["carol@initech.example"].status is ResponseStatus.DECLINED
    assert people["carol@initech.example"].optional
    assert people["dan@globex.example"].status is ResponseStatus.TENTATIVE
    assert people["erin@globex.example"].status is ResponseStatus.NEEDS_ACTION
    assert people["bob@globex.example"].address.name == "Bob Stone"
    room = [a for a in master.attendees if not a.address.valid]
    assert len(room) == 1
    assert room[0].address.name == "Big Room"
    assert room[0].address.key == ""
    assert "alice@northwind.example" in {a.key for a in master.addresses()}


def test_attendee_email_parameter_and_duplicates() -> None:
    text = vcalendar(
        *vevent(
            "UID:x",
            "DTSTART:20240101T100000Z",
            "ATTENDEE;CN=Room;EMAIL=room@example.com:urn:uuid:1234",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@example.com",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:A@EXAMPLE.COM",
            "ATTENDEE:",
        )
    )
    event = parse_calendar(text).events[0]
    keys = [a.address.key for a in event.attendees]
    assert keys == ["room@example.com", "a@example.com", ""]
    assert event.attendees[1].status is ResponseStatus.ACCEPTED


def test_cancel_method_cancels_events() -> None:
    parse = load("cancel.ics")
    assert parse.method == "CANCEL"
    (event,) = parse.events
    assert event.status is EventStatus.CANCELLED
    assert event.sequence == 1
    assert event.organizer is not None
    assert event.organizer.address.key == "peter@initech.example"


@pytest.mark.parametrize("method", ["REQUEST", "REPLY", "PUBLISH"])
def test_other_methods_leave_status(method: str) -> None:
    text = vcalendar(*vevent("UID:x", "DTSTART:20240101T100000Z"), header=(f"METHOD:{method}",))
    parse = parse_calendar(text)
    assert parse.method == method
    assert parse.events[0].status is EventStatus.CONFIRMED


# -- dates and zones -------------------------------------------------------------


def test_all_day_events() -> None:
    events = {e.uid: e for e in load("allday.ics").events}
    fair = events["trade-fair@example.com"]
    assert fair.all_day
    assert (fair.start, fair.end) == (
        datetime(2024, 3, 1, tzinfo=UTC),
        datetime(2024, 3, 3, tzinfo=UTC),
    )
    assert fair.timezone == ""
    offsite = events["offsite@example.com"]
    assert offsite.end - offsite.start == timedelta(days=1)
    roadshow = events["roadshow@example.com"]
    assert roadshow.end == datetime(2024, 3, 23, tzinfo=UTC)
    founders = events["founders-day@example.com"]
    assert founders.recurrence == ("RRULE:FREQ=YEARLY", "EXDATE;VALUE=DATE:20210515")
    window = Window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC))
    years = [e.start.year for e in expand([founders], window)]
    assert years == [2020, 2022]


def test_time_zones() -> None:
    parse = load("timezones.ics")
    events = {e.uid: e for e in parse.events}
    ten = datetime(2024, 6, 1, 10)

    custom = events["custom-zone@example.com"]
    assert custom.start == ten.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert custom.timezone == ""
    windows = events["windows-zone@example.com"]
    assert windows.start == ten.replace(tzinfo=BERLIN)
    assert windows.timezone == "Europe/Berlin"
    outlook = events["lic-location@example.com"]
    assert outlook.start == ten.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert outlook.timezone == "Europe/Amsterdam"
    new_york = ZoneInfo("America/New_York")
    unknown = events["unknown-zone@example.com"]
    assert unknown.start == ten.replace(tzinfo=new_york)
    assert unknown.timezone == "America/New_York"
    assert "unknown-tzid:Mars/Olympus_Mons" in unknown.warnings
    assert "unknown-tzid:Mars/Olympus_Mons" in parse.warnings
    floating = events["floating@example.com"]
    assert floating.start == ten.replace(tzinfo=new_york)
    utc = events["utc@example.com"]
    assert utc.start == ten.replace(tzinfo=UTC)
    assert utc.timezone == "America/New_York"  # the calendar's zone names it
    vendor = events["vendor-prefix@example.com"]
    assert vendor.start == ten.replace(tzinfo=ZoneInfo("Europe/London"))
    for event in parse.events:
        assert event.start.tzinfo is UTC
        assert event.end.tzinfo is UTC


def test_unknown_tzid_without_calendar_zone_is_utc() -> None:
    text = vcalendar(*vevent("UID:x", "DTSTART;TZID=Nowhere/Land:20240101T100000"))
    event = parse_calendar(text).events[0]
    assert event.start == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert "unknown-tzid:Nowhere/Land" in event.warnings


def test_floating_time_without_calendar_zone_is_utc_with_warning() -> None:
    event = parse_calendar(vcalendar(*vevent("UID:f", "DTSTART:20240101T100000"))).events[0]
    assert event.start == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert "floating-time:f" in event.warnings


def test_custom_zones_are_per_calendar() -> None:
    def calendar(offset: str) -> str:
        return vcalendar(
            "BEGIN:VTIMEZONE",
            "TZID:Office Time",
            "BEGIN:STANDARD",
            "DTSTART:19700101T000000",
            f"TZOFFSETFROM:{offset}",
            f"TZOFFSETTO:{offset}",
            "END:STANDARD",
            "END:VTIMEZONE",
            *vevent("UID:o", "DTSTART;TZID=Office Time:20240101T100000"),
        )

    east = parse_calendar(calendar("+0500")).events[0]
    west = parse_calendar(calendar("-0300")).events[0]
    assert east.start == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert west.start == datetime(2024, 1, 1, 13, tzinfo=UTC)
    # and a calendar that uses the TZID without defining it does not inherit one
    bare = parse_calendar(vcalendar(*vevent("UID:o", "DTSTART;TZID=Office Time:20240101T100000")))
    assert bare.events[0].start == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert "unknown-tzid:Office Time" in bare.warnings


# -- damage ----------------------------------------------------------------------


def test_broken_events_are_skipped_or_defaulted() -> None:
    parse = load("broken.ics")
    events = {e.uid: e for e in parse.events}
    bad_rule = events["bad-rule@example.com"]
    assert bad_rule.recurrence == ()
    assert "invalid-rrule:bad-rule@example.com" in bad_rule.warnings
    assert bad_rule.sequence == 0
    assert "no-start@example.com" not in events
    assert "missing-dtstart:no-start@example.com" in parse.warnings
    assert skipped_uids(parse) == {"no-start@example.com": "missing-dtstart"}
    synthetic = [e for e in parse.events if e.uid.startswith("synthetic-")]
    assert len(synthetic) == 1
    assert f"missing-uid:{synthetic[0].uid}" in parse.warnings
    assert load("broken.ics").events[1].uid == synthetic[0].uid  # stable
    backwards = events["backwards@example.com"]
    assert backwards.end == backwards.start + timedelta(hours=1)
    assert events["fine@example.com"].end - events["fine@example.com"].start == timedelta(
        minutes=30
    )


def test_synthetic_uid_depends_on_start_summary_and_organizer() -> None:
    def uid(*lines: str) -> str:
        return parse_calendar(vcalendar(*vevent(*lines))).events[0].uid

    base = ("DTSTART:20240101T100000Z", "SUMMARY:A", "ORGANIZER:mailto:o@example.com")
    assert uid(*base) == uid(*base)
    assert uid(*base) != uid("DTSTART:20240101T110000Z", *base[1:])
    assert uid(*base) != uid(base[0], "SUMMARY:B", base[2])
    assert uid(*base) != uid(*base[:2], "ORGANIZER:mailto:p@example.com")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=FOO",
        "BYDAY=MO",
        "FREQ=WEEKLY;COUNT=x",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=WEEKLY;BYDAY=XX",
    ],
)
def test_invalid_rrules_are_dropped(rule: str) -> None:
    text = vcalendar(
        *vevent("UID:r", "DTSTART:20240101T100000Z", f"RRULE:{rule}", "EXDATE:20240108T100000Z")
    )
    event = parse_calendar(text).events[0]
    assert event.recurrence == ()
    assert "invalid-rrule:r" in event.warnings


def test_rdate_alone_makes_a_series() -> None:
    text = vcalendar(
        *vevent(
            "UID:r",
            "DTSTART;TZID=Europe/Berlin:20240101T100000",
            "RDATE;TZID=Europe/Berlin:20240301T100000,20240701T100000",
        )
    )
    event = parse_calendar(text).events[0]
    assert event.recurrence == ("RDATE:20240301T090000Z,20240701T080000Z",)


def test_huge_description_is_truncated() -> None:
    words = "Quarterly numbers ünd details. " * (5 * 1024 * 1024 // 32)
    text = vcalendar(*vevent("UID:big", "DTSTART:20240101T100000Z", f"DESCRIPTION:{words}"))
    parse = parse_calendar(text)
    (event,) = parse.events
    assert len(text) > 5_000_000
    assert 0 < len(event.description.encode("utf-8")) <= DESCRIPTION_LIMIT
    assert len(event.description.encode("utf-8")) > DESCRIPTION_LIMIT - 4
    assert words.startswith(event.description)
    assert "truncated-description:big" in event.warnings


def test_several_calendars_and_bare_events() -> None:
    two = vcalendar(*vevent("UID:a", "DTSTART:20240101T100000Z")) + vcalendar(
        *vevent("UID:b", "DTSTART:20240102T100000Z"), header=("METHOD:REQUEST",)
    )
    assert [e.uid for e in parse_calendar(two).events] == ["a", "b"]
    assert parse_calendar(two).method == "REQUEST"
    bare = "\r\n".join(vevent("UID:c", "DTSTART:20240103T100000Z"))
    assert [e.uid for e in parse_calendar(bare).events] == ["c"]


def test_bytes_in_other_charsets_and_garbage() -> None:
    latin = vcalendar(*vevent("UID:l", "DTSTART:20240101T100000Z", "SUMMARY:Caf\xe9")).encode(
        "latin-1"
    )
    parse = parse_calendar(latin)
    assert parse.events[0].title == "Café"
    assert "charset-fallback:latin-1" in parse.warnings
    bom = b"\xef\xbb\xbf" + vcalendar(*vevent("UID:b", "DTSTART:20240101T100000Z")).encode()
    assert [e.uid for e in parse_calendar(bom).events] == ["b"]
    garbage = parse_calendar(b"\x00\x01 this is not a calendar")
    assert garbage.events == ()
    assert parse_calendar("").events == ()


# -- meeting links ---------------------------------------------------------------


def test_conference_links() -> None:
    links = {e.uid: e.conference_url for e in load("meetings.ics").events}
    assert links == {
        "zoom@example.com": "https://us02web.zoom.us/j/81234567890?pwd=abcDEF123",
        "meet@example.com": "https://meet.google.com/abc-defg-hij",
        "meet-description@example.com": "https://meet.google.com/xyz-abcd-efg",
        "webex@example.com": "https://acme.webex.com/acme/j.php?MTID=m0123456789abcdef",
        "teams-x@example.com": (
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"
        ),
        "url-only@example.com": "https://example.com/events/42",
        "no-link@example.com": "",
    }


def test_teams_link_in_folded_description() -> None:
    master = by_uid(load("series.ics"))["weekly-sync@example.com"][0]
    assert master.conference_url == (
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzQ5%40thread.v2/0"
        "?context=%7b%22Tid%22%3a%22abc%22%7d"
    )


# -- never raises ----------------------------------------------------------------

SAMPLES = [p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.ics"))]
NOISE = st.text(
    alphabet=st.sampled_from(list(':;=,"\\\r\n -TZ0123456789ABCDEFGHIJ/+')), max_size=12
)
PROPERTY_LINES = st.sampled_from(
    [
        "DTSTART:garbage",
        "DTSTART;TZID=:20240101T100000",
        "DTSTART;VALUE=DATE:20241340",
        "DTEND;TZID=Europe/Berlin:2024",
        "DURATION:-P1D",
        "DURATION:PXYZ",
        "RRULE:FREQ=SECONDLY;COUNT=-1",
        "RRULE:",
        "EXDATE;TZID=Nowhere:20240101T100000,bad",
        "RDATE;VALUE=PERIOD:20240101T100000Z/PT1H",
        "RECURRENCE-ID:x",
        'ATTENDEE;CN="unterminated:mailto:a@b.c',
        "ORGANIZER:mailto:",
        "SEQUENCE:-5",
        "STATUS:WHATEVER",
        "BEGIN:VEVENT",
        "END:VEVENT",
        "BEGIN:VTIMEZONE",
        "END:VCALENDAR",
        "UID:",
        "DTSTART:99991231T235959Z",
        "DTSTART:00010101T000000",
    ]
)


@st.composite
def mutated_calendars(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SAMPLES)).split("\n")
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "splice", "truncate"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete" and lines:
            del lines[at]
        elif op == "duplicate" and lines:
            lines.insert(at, lines[at])
        elif op == "insert":
            lines.insert(at, draw(PROPERTY_LINES))
        elif op == "splice" and lines:
            line = lines[at]
            cut = draw(st.integers(0, len(line)))
            lines[at] = line[:cut] + draw(NOISE) + line[cut:]
        elif op == "truncate":
            lines = lines[:at]
    return "\n".join(lines)


def check(parse: CalendarParse) -> None:
    assert isinstance(parse, CalendarParse)
    for event in parse.events:
        assert event.uid
        assert event.start.utcoffset() == timedelta(0)
        assert event.end >= event.start
        assert len(event.description.encode("utf-8")) <= DESCRIPTION_LIMIT
        if event.recurrence_id is not None:
            assert event.recurrence_id.utcoffset() == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(mutated_calendars())
def test_mutated_calendars_never_raise(text: str) -> None:
    check(parse_calendar(text))
    check(parse_calendar(text.encode("utf-8")))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    check(parse_calendar(b"BEGIN:VCALENDAR\r\n" + data))
