"""The quick iCalendar reader (``commlink.calendar.lines``) maps every
calendar exactly as the icalendar library does (``parse_calendar(...,
quick=False)`` is the oracle), and reads ordinary calendars without the
library.

The library's own ``library-warning`` notes are left out of the comparison:
it warns about a guessed TZID once per process (its zone cache decides),
so they are not a function of the input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.calendar import lines
from commlink.calendar.ical import CalendarParse, parse_calendar
from commlink.calendar.zones import iana_zone

DATA = Path(__file__).resolve().parents[1] / "data" / "ics"


def _comparable(result: CalendarParse) -> CalendarParse:
    kept = tuple(w for w in result.warnings if not w.startswith("library-warning:"))
    return CalendarParse(result.events, kept, result.method)


def assert_same(text: str | bytes) -> None:
    quick = parse_calendar(text, provider_id="p", calendar_id="c")
    library = parse_calendar(text, provider_id="p", calendar_id="c", quick=False)
    assert "parse-error:Unusual" not in library.warnings
    assert _comparable(quick) == _comparable(library)


# -- generated calendars ------------------------------------------------------------

_TEXT_CHARS = st.sampled_from(
    [*"abcXYZ 019:;,.-_/@'\"<>=é日", "\\n", "\\N", "\\,", "\\;", "\\\\", "\\", "\t", "^"]
)
_TEXT = st.lists(_TEXT_CHARS, max_size=12).map("".join)
_URLS = st.sampled_from(
    [
        "https://meet.google.com/abc-defg-hij",
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting",
        "https://example.zoom.us/j/123?pwd=x",
        "http://example.com/x",
        "see https://acme.webex.com/meet/bob, thanks",
        "",
    ]
)
_ZONES = st.sampled_from(
    [
        "Europe/Berlin",
        "America/New_York",
        "UTC",
        "W. Europe Standard Time",
        "Custom Zone",
        "Europe",  # a folder of the zone database
        "Zone" * 70,  # too long for a file name
        "Mars/Olympus",
        "/freeassociation.sourceforge.net/Europe/London",
        "Etc/GMT+5",
    ]
)
_DATES = st.sampled_from(["20260302", "20261231", "20240229", "20230229", "20261340", "2026030"])
_GOOD_DATES = st.sampled_from(["20260302", "20261231", "20240229"])
_TIMES = st.sampled_from(["T090000", "T235959", "T000000", "T250000", "T0900", ""])
_UTC = st.sampled_from(["Z", "", "", "z"])


@st.composite
def moments(draw: st.DrawFn, valid: bool = False) -> str:
    if valid:
        return draw(_GOOD_DATES) + draw(st.sampled_from(["T090000", "T090000Z", ""]))
    return draw(_DATES) + draw(_TIMES) + draw(_UTC)


@st.composite
def params(draw: st.DrawFn, names: list[str]) -> str:
    found = ""
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):
        value = draw(
            st.one_of(
                st.sampled_from(
                    ["ACCEPTED", "John Doe", "x", "", "OPT-PARTICIPANT", "a,b", " x", "x "]
                ),
                _TEXT.map(lambda t: f'"{t}"'),
                _TEXT,
            )
        )
        found += f";{draw(st.sampled_from([name, name.lower()]))}={value}"
    return found


_DURATIONS = st.sampled_from(
    ["PT1H", "P1D", "-PT15M", "+P1W", "P1DT2H3M4S", "PT", "P", "pt1h", "P1W2D", "PT1.5H", "1H"]
)
_RULE_PARTS = st.sampled_from(
    [
        "FREQ=WEEKLY", "FREQ=daily", "freq=MONTHLY", "FREQ=SOMETIMES", "COUNT=3", "COUNT=0",
        "COUNT=x", "INTERVAL=2", "INTERVAL=+02", "BYDAY=MO,WE", "BYDAY=1mo,-1FR", "BYDAY=XX",
        "BYMONTH=01,12", "BYMONTH=13", "UNTIL=20261231T235959Z", "UNTIL=20261231",
        "UNTIL=20261231t235959z", "WKST=SU", "BYSETPOS=-1", "BYMONTHDAY=31", "X-NAME=1", "",
    ]
)  # fmt: skip


@st.composite
def rrules(draw: st.DrawFn) -> str:
    return ";".join(draw(st.lists(_RULE_PARTS, min_size=1, max_size=5)))


@st.composite
def event_lines(draw: st.DrawFn, level: int) -> list[str]:
    """Level 0: ordinary data; 1: unusual forms the quick reader takes;
    2: anything, broken data included."""
    ordinary = level == 0
    hostile = level == 2
    tz = draw(_ZONES)
    if ordinary and tz.startswith("/"):
        tz = "Europe/Berlin"
    dates = _DATES if hostile else _GOOD_DATES
    kinds = [";VALUE=INTEGER"] if hostile else []
    found = []
    if not hostile or draw(st.integers(0, 9)):
        uid = draw(st.sampled_from(["u1@x", "u2@x"])) if ordinary else draw(_TEXT) or "u"
        found.append(f"UID:{uid}")
    start_forms = [f"DTSTART:{draw(dates)}T090000Z", f"DTSTART;TZID={tz}:{draw(dates)}T090000"]
    start_forms.append(f"DTSTART;VALUE=DATE:{draw(dates)}")
    if hostile:
        start_forms += [
            f"DTSTART{draw(params(['TZID', 'VALUE']))}:{draw(moments())}",
            f'DTSTART;TZID="{tz}":{draw(moments())}',
            f"dtstart:{draw(moments())}",
            "DTSTART:PT1H",
        ]
    found.append(draw(st.sampled_from(start_forms)))
    optional = {
        "end": f"DTEND;TZID={tz}:20260302T100000",
        "end2": f"DTEND:{draw(moments(not hostile))}" if not ordinary else "DTEND:20260302T100000Z",
        "duration": f"DURATION:{draw(_DURATIONS) if hostile else 'PT1H'}",
        "summary": f"SUMMARY:{draw(_TEXT)}",
        "summary2": f"SUMMARY;LANGUAGE=en:{draw(_TEXT)}",
        "description": f"DESCRIPTION:{draw(_TEXT)} {draw(_URLS)}",
        "location": f"LOCATION:{draw(_TEXT)}",
        "status": f"STATUS:{draw(st.sampled_from(['CONFIRMED', 'cancelled', 'TENTATIVE', 'x']))}",
        "rrule": f"RRULE:{draw(rrules()) if hostile else 'FREQ=WEEKLY;COUNT=4'}",
        "exdate": f"EXDATE;TZID={tz}:20260309T090000,20260316T090000",
        "exdate2": f"EXDATE{draw(params(['VALUE', 'TZID']))}:{draw(moments(not hostile))}"
        f",{draw(moments(not hostile))}",
        "rdate": f"RDATE;VALUE=DATE:{draw(dates)}",
        "rdate2": "RDATE;VALUE=PERIOD:20260302T090000Z/PT1H",
        "rid": f"RECURRENCE-ID;TZID={tz}:20260309T090000",
        "sequence": f"SEQUENCE:{draw(st.sampled_from(['1', '0', '12']))}",
        "sequence2": f"SEQUENCE:{draw(st.sampled_from(['+2', '-1', 'x', ' 3', '1_0']))}",
        "organizer": f"ORGANIZER;CN={draw(st.sampled_from(['Ann', 'Ann Lee']))}"
        ":mailto:ann@x.example",
        "attendee": 'ATTENDEE;CN="Doe, John";PARTSTAT=ACCEPTED;ROLE=OPT-PARTICIPANT'
        ":mailto:john@y.example",
        "attendee2": f"ATTENDEE{draw(params(['CN', 'PARTSTAT', 'ROLE', 'EMAIL']))}"
        f":{draw(st.sampled_from(['mailto:bo@z.example', 'MAILTO:Bo@Z.example', 'urn:x', '']))}",
        "modified": f"LAST-MODIFIED:{draw(moments(not hostile))}",
        "stamp": "DTSTAMP:20260101T000000Z",
        "conference": f"X-GOOGLE-CONFERENCE:{draw(_URLS)}",
        "conference2": f"CONFERENCE;VALUE=URI;FEATURE=VIDEO:{draw(_URLS)}",
        "xprop": f"X-FOO{draw(st.sampled_from(['', ';VALUE=TEXT', *kinds]))}"
        f":{draw(_TEXT)} {draw(_URLS)}",
        "url": f"URL:{draw(_URLS)}",
        "unread": "CATEGORIES:a,b\\,c",
        "geo": f"GEO:{draw(st.sampled_from(['1.5;2.5', 'x']))}",
        "garbage": draw(st.sampled_from(["garbage", "NAME;:x", "NA ME:x", "X-A;B:c", "X-=x"])),
        "alarm": "BEGIN:VALARM\r\nACTION:DISPLAY\r\n"
        f"TRIGGER:{draw(_DURATIONS) if hostile else '-PT15M'}\r\nEND:VALARM",
    }
    names = sorted(optional)
    if not hostile:
        names = [n for n in names if n not in ("garbage", "geo")]
    if ordinary:
        names = [n for n in names if not n.endswith("2")]
    for name in draw(st.lists(st.sampled_from(names), max_size=8)):
        found.append(optional[name])
    return found


CUSTOM_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Custom Zone\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
    "TZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE"
)
LOCATED_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Mars/Olympus\r\nX-LIC-LOCATION:Europe/Paris\r\n"
    "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE"
)


@st.composite
def calendars(draw: st.DrawFn, level: int = 2) -> str:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    extra = [
        f"METHOD:{draw(st.sampled_from(['REQUEST', 'cancel', 'PUBLISH']))}",
        f"X-WR-TIMEZONE:{draw(st.sampled_from(['Europe/Berlin', 'Nowhere/Else', '']))}",
        CUSTOM_ZONE,
        LOCATED_ZONE,
    ]
    if level == 2:
        extra += ["REFRESH-INTERVAL;VALUE=DURATION:P1W", "TZOFFSETTO:x", "X-X;VALUE=TEXT:a\\,b"]
    head += draw(st.lists(st.sampled_from(extra), max_size=3, unique=True))
    body = [
        "\r\n".join(["BEGIN:VEVENT", *draw(event_lines(level)), "END:VEVENT"])
        for _ in range(draw(st.integers(1, 3)))
    ]
    text = "\r\n".join([*head, *body, "END:VCALENDAR"]) + "\r\n"
    if level == 2 and draw(st.booleans()):
        text = draw(st.sampled_from(["", text])) + "\r\n".join(body) + "\r\n"  # bare VEVENTs
    return draw(serialised(text, level == 2))


@st.composite
def serialised(draw: st.DrawFn, text: str, hostile: bool) -> str:
    """Line endings and folding as different writers produce them."""
    if draw(st.booleans()):
        text = text.replace("\r\n", "\n")
    if draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=6)))
        pieces, last = [], 0
        for cut in cuts:
            if text[cut - 1] in "\r\n" or text[cut] in "\r\n":
                continue
            pieces.append(text[last:cut])
            last = cut
        pieces.append(text[last:])
        fold = draw(st.sampled_from(["\r\n ", "\n\t", "\r\n\r\n "]))
        text = fold.join(pieces)
    if hostile and draw(st.integers(0, 9)) == 0:
        text = text.replace("SUMMARY:", "SUMMARY:a\rb", 1)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars())
def test_quick_path_equals_the_library(text: str) -> None:
    assert_same(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(level=1))
def test_unusual_forms_are_mapped_the_same(text: str) -> None:
    assert_same(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(level=0))
def test_ordinary_calendars_need_no_library(text: str) -> None:
    lines.read(text)  # raises Unusual if the library were needed
    assert_same(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('BEGIN:VCALENDAREVT\r\n ;="\\,X-UID1')), max_size=99))
def test_noise_is_mapped_the_same(text: str) -> None:
    assert_same(text)


# -- real data ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DATA.glob("*.ics")), ids=lambda p: p.name)
def test_sample_files(path: Path) -> None:
    assert_same(path.read_bytes())


def test_caldav_server_forms() -> None:
    """Objects as Radicale, Xandikos and Cyrus serve them back: LF endings,
    properties reordered, lines folded at 75 octets."""
    served = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//bench//EN\nBEGIN:VEVENT\nUID:bench-1@example\n"
        "DTSTART:20260112T080000Z\nDTEND:20260112T084500Z\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:owner@home.example\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:guest817@client11.example\n"
        "DESCRIPTION:Agenda for meeting 2811 with a very long line that a server fol\n"
        " ds at seventy-five octets\nDTSTAMP:20260101T000000Z\nRRULE:FREQ=WEEKLY;COUNT=10\n"
        "ORGANIZER:mailto:owner@home.example\nSUMMARY:Meeting 2811\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    lines.read(served)
    assert_same(served)
    assert_same(served.replace("\n", "\r\n"))


def test_series_with_exceptions_and_zones() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + CUSTOM_ZONE + "\r\n"
        "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/Berlin:20260302T090000\r\n"
        "DTEND;TZID=Europe/Berlin:20260302T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6\r\n"
        "EXDATE;TZID=Europe/Berlin:20260316T090000\r\nRDATE;VALUE=DATE:20260401\r\n"
        "SUMMARY:Weekly\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260309T090000\r\n"
        "DTSTART;TZID=Custom Zone:20260309T150000\r\nDURATION:PT30M\r\nSTATUS:CANCELLED\r\n"
        "SEQUENCE:2\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    lines.read(text)
    assert_same(text)
    events = parse_calendar(text).events
    assert [e.recurrence for e in events] == [
        (
            "RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO",
            "RDATE;VALUE=DATE:20260401",
            "EXDATE:20260316T080000Z",
        ),
        (),
    ]


def test_only_utc_is_an_iana_name_the_windows_table_remaps() -> None:
    import zoneinfo

    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    names = zoneinfo.available_timezones()
    assert {k for k, v in WINDOWS_TO_OLSON.items() if k in names and v != k} == {"UTC"}
    zone = iana_zone("UTC")
    assert zone is not None
    assert zone.key == WINDOWS_TO_OLSON["UTC"]


@pytest.mark.parametrize(
    "text",
    [
        "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
        "BEGIN:VEVENT\r\nDTSTART:20260302T090000Z\r\nEND:VEVENT\r\n",  # no UID: hashed
        "BEGIN:VEVENT\r\nUID:a\r\nATTENDEE;CN=a\\,b:mailto:a@b.c\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe/Berlin:20260302\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:a\r\nRDATE;VALUE=PERIOD:20260302T090000Z/PT1H\r\nEND:VEVENT\r\n",
        "BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nSUMMARY:outside\r\n",
    ],
    ids=["todo", "no-uid", "escaped-param", "zoned-date", "period", "outside"],
)
def test_unusual_data_goes_to_the_library(text: str) -> None:
    with pytest.raises(lines.Unusual):
        lines.read(text)
    assert_same(text)


@pytest.mark.parametrize("tzid", ["Europe", "America", "Etc", "Zone" * 70, "A/" + "b" * 300])
def test_a_tzid_zoneinfo_cannot_open_loses_no_event(tzid: str) -> None:
    # zoneinfo raises OSError for these names (not ZoneInfoNotFoundError); the
    # VTODO sends the calendar to the library, which used to give up on all of it.
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"
        f"BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID={tzid}:20260302T090000\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260302T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(lines.Unusual):
        lines.read(text)
    assert_same(text)
    result = parse_calendar(text)
    assert [e.uid for e in result.events] == ["a", "b"]
    assert f"unknown-tzid:{tzid}" in result.warnings
