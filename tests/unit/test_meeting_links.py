"""Meeting links found in event text are shown as links: https only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from commlink.calendar import parse_calendar
from commlink.calendar.links import find_meeting_link, first_http_url, https_url


def test_known_meeting_links_are_upgraded_to_https() -> None:
    assert find_meeting_link(["join http://zoom.us/j/123?pwd=x."]) == "https://zoom.us/j/123?pwd=x"
    assert find_meeting_link(["", "https://meet.google.com/abc-defg-hij"]) == (
        "https://meet.google.com/abc-defg-hij"
    )
    assert find_meeting_link(["javascript:alert(1) meet.google.com/abc"]) == ""


def test_plain_http_urls_are_not_links() -> None:
    assert first_http_url("see http://intranet.example.com/x") == ""
    assert first_http_url("http://a.example then https://b.example/y)") == "https://b.example/y"
    assert first_http_url("https:///nohost") == ""


def test_ical_url_property_over_http_is_dropped() -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:u1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
        "DTEND:20260102T110000Z\r\nSUMMARY:Call\r\nURL:http://evil.example/join\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events = parse_calendar(ics.encode()).events
    assert [e.conference_url for e in events] == [""]


@given(st.text(max_size=200))
def test_whatever_is_returned_is_an_https_url(text: str) -> None:
    for found in (find_meeting_link([text]), first_http_url(text)):
        assert found == "" or (found.startswith("https://") and https_url(found) == found)
