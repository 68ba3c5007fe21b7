"""Mapping exchangelib calendar items to events: all-day dates, HTML
bodies, time zones, links and recurrence patterns."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

pytest.importorskip("exchangelib")

from exchangelib import EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.items import CalendarItem
from exchangelib.properties import Attendee, HTMLBody, Mailbox
from exchangelib.recurrence import (
    DailyRegeneration,
    NoEndPattern,
    Recurrence,
    RelativeYearlyPattern,
)

from commlink.model import EventStatus, ResponseStatus
from commlink.providers.microsoft.exchange.events import map_calendar_item

BERLIN = EWSTimeZone("Europe/Berlin")


def _item(**fields: object) -> CalendarItem:
    base: dict[str, object] = {
        "subject": "Planning",
        "start": EWSDateTime(2026, 3, 2, 9, 0, tzinfo=BERLIN),
        "end": EWSDateTime(2026, 3, 2, 10, 0, tzinfo=BERLIN),
        "uid": "uid-1",
        "_start_timezone": BERLIN,
    }
    base.update(fields)
    return CalendarItem(**base)


def test_times_are_utc_and_the_zone_is_kept() -> None:
    (event,) = map_calendar_item(_item(), "id-1", "cal")
    assert event.start == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    assert event.end - event.start == timedelta(hours=1)
    assert event.timezone == "Europe/Berlin"
    assert event.status is EventStatus.CONFIRMED


def test_all_day_event_ends_the_day_after_its_last_day() -> None:
    item = _item(start=EWSDate(2026, 3, 5), end=EWSDate(2026, 3, 5), is_all_day=True)
    (event,) = map_calendar_item(item, "id-1", "cal")
    assert event.all_day
    assert (event.start.date(), event.end.date()) == (date(2026, 3, 5), date(2026, 3, 6))


def test_html_body_becomes_text_and_gives_the_meeting_link() -> None:
    body = HTMLBody(
        "<html><body><p>Agenda &amp; notes</p>"
        '<a href="https://acme.zoom.us/j/123456">Join</a> https://acme.zoom.us/j/123456</body></html>'
    )
    (event,) = map_calendar_item(_item(body=body), "id-1", "cal")
    assert "Agenda & notes" in event.description
    assert "<p>" not in event.description
    assert event.conference_url == "https://acme.zoom.us/j/123456"


def test_organizer_answers_and_missing_addresses() -> None:
    item = _item(
        organizer=Mailbox(name="Owner", email_address="owner@home.example"),
        required_attendees=[
            Attendee(
                mailbox=Mailbox(email_address="ann@client.example"), response_type="Organizer"
            ),
            Attendee(mailbox=Mailbox(name="Room 4"), response_type="Unknown"),
        ],
        is_cancelled=True,
    )
    (event,) = map_calendar_item(item, "id-1", "cal")
    assert event.organizer is not None
    assert event.organizer.organizer
    assert [(a.address.key, a.status) for a in event.attendees] == [
        ("ann@client.example", ResponseStatus.ACCEPTED)
    ]
    assert event.warnings == ("attendee-without-address",)
    assert event.status is EventStatus.CANCELLED


def test_relative_yearly_and_unmapped_patterns() -> None:
    yearly = Recurrence(
        pattern=RelativeYearlyPattern(weekday=4, week_number=5, month=11),
        boundary=NoEndPattern(start=EWSDate(2026, 11, 26)),
    )
    (event,) = map_calendar_item(_item(recurrence=yearly), "id-1", "cal")
    assert event.recurrence == ("RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=-1TH",)
    task_like = Recurrence(
        pattern=DailyRegeneration(interval=2), boundary=NoEndPattern(start=EWSDate(2026, 3, 2))
    )
    (event,) = map_calendar_item(_item(recurrence=task_like), "id-2", "cal")
    assert event.recurrence == ()
    assert event.warnings[0].startswith("recurrence-not-mapped:")
