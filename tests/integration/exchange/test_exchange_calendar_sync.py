"""Exchange calendar sync through the engine: attendees and their answers,
cancelled meetings, recurring series, deletions and sub-calendars."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ews_support import OWNER, calendar_channel, directory

from commlink.model import EventStatus, ResponseStatus
from commlink.providers.microsoft.exchange import ExchangeCalendarProvider
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.microsoft import EwsServer
from commlink.testing.microsoft.ews import Person

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WINDOW = Window(START - timedelta(days=1), START + timedelta(days=60))
ANN = Target(TargetKind.PERSON, "p-ann")
WEEKLY = {
    "pattern": (
        "WeeklyRecurrence",
        [("Interval", 1), ("DaysOfWeek", "Monday"), ("FirstDayOfWeek", "Monday")],
    ),
    "boundary": ("NumberedRecurrence", [("StartDate", "2026-03-02"), ("NumberOfOccurrences", 4)]),
}


def _meeting(server: EwsServer, uid: str, title: str, **fields: object) -> str:
    return server.put_event(
        "calendar",
        uid,
        title,
        START,
        START + timedelta(hours=1),
        organizer=Person(OWNER, "Owner"),
        required=(Person("ann@client.example", "Ann", "Accept"),),
        **fields,
    )


def _events(store: MemoryStore) -> list[tuple[str, datetime]]:
    items = store.events(ANN, Viewer("u-owner"), WINDOW).items
    return sorted((e.title, e.start) for e in items)


def test_attendees_and_their_answers(server: EwsServer, calendar: ExchangeCalendarProvider) -> None:
    server.put_event(
        "calendar",
        "uid-1",
        "Review",
        START,
        organizer=Person(OWNER, "Owner"),
        required=(
            Person("ann@client.example", "Ann", "Accept"),
            Person("bo@client.example", "Bo", "Decline"),
        ),
        optional=(
            Person("cy@client.example", "Cy", "Tentative"),
            Person("di@client.example", "Di", "NoResponseReceived"),
        ),
        location="Room 1 https://teams.microsoft.com/l/meetup-join/19%3ameeting",
    )
    scope = calendar.scopes(calendar.calendars())[0]
    (item,) = calendar.fetch(scope, calendar.list_page(scope, None).ids)
    (event,) = item.events
    statuses = {a.address.key: (a.status, a.optional) for a in event.attendees}
    assert statuses == {
        "ann@client.example": (ResponseStatus.ACCEPTED, False),
        "bo@client.example": (ResponseStatus.DECLINED, False),
        "cy@client.example": (ResponseStatus.TENTATIVE, True),
        "di@client.example": (ResponseStatus.NEEDS_ACTION, True),
    }
    assert event.organizer is not None
    assert event.organizer.address.key == OWNER
    assert event.conference_url == "https://teams.microsoft.com/l/meetup-join/19%3ameeting"
    assert event.uid == "uid-1"


def test_cancelled_meeting_is_stored_cancelled(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:
    _meeting(server, "uid-1", "Kick-off")
    store = MemoryStore()
    engine = SyncEngine(store, directory())
    assert engine.run(calendar_channel(), calendar).imported == 1
    _meeting(server, "uid-1", "Kick-off", cancelled=True, sequence=1)
    report = engine.run(calendar_channel(), calendar)
    assert report.errors == []
    scope = calendar.scopes(calendar.calendars())[0]
    ids = calendar.list_page(scope, None).ids
    (item,) = calendar.fetch(scope, ids)
    assert item.events[0].status is EventStatus.CANCELLED
    assert _events(store) == []  # a cancelled meeting is not shown


def test_recurring_series_with_a_moved_and_a_deleted_occurrence(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:
    week = timedelta(days=7)
    _meeting(
        server,
        "uid-weekly",
        "Weekly sync",
        recurrence=WEEKLY,
        deleted=(START + 2 * week,),
        modified=(("occ-2", START + week + timedelta(hours=2), START + week + timedelta(hours=3),
                   START + week),),
    )  # fmt: skip
    store = MemoryStore()
    report = SyncEngine(store, directory()).run(calendar_channel(), calendar)
    assert report.errors == []
    assert _events(store) == [
        ("Weekly sync", START),
        ("Weekly sync", START + week + timedelta(hours=2)),
        ("Weekly sync", START + 3 * week),
    ]


def test_deleted_event_and_sub_calendar(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:
    team = server.add_folder("Team", parent="calendar", calendar=True)
    gone = _meeting(server, "uid-1", "First")
    server.put_event(
        team,
        "uid-2",
        "Team day",
        START + timedelta(days=1),
        required=(Person("ann@client.example", "Ann", "Accept"),),
    )
    store = MemoryStore()
    engine = SyncEngine(store, directory())
    assert engine.run(calendar_channel(), calendar).imported == 2
    server.delete(gone)
    report = engine.run(calendar_channel(), calendar)
    assert (report.errors, report.deleted) == ([], 1)
    assert _events(store) == [("Team day", START + timedelta(days=1))]


def test_recurrence_patterns_map_to_rrules(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:
    patterns = {
        "daily": (("DailyRecurrence", [("Interval", 2)]), "FREQ=DAILY;INTERVAL=2"),
        "monthly": (
            ("AbsoluteMonthlyRecurrence", [("Interval", 1), ("DayOfMonth", 15)]),
            "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=15",
        ),
        "relative": (
            (
                "RelativeMonthlyRecurrence",
                [("Interval", 1), ("DaysOfWeek", "Tuesday"), ("DayOfWeekIndex", "Last")],
            ),
            "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1TU",
        ),
        "yearly": (
            ("AbsoluteYearlyRecurrence", [("DayOfMonth", 2), ("Month", "March")]),
            "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=2",
        ),
        "workdays": (
            (
                "RelativeMonthlyRecurrence",
                [("Interval", 1), ("DaysOfWeek", "Weekday"), ("DayOfWeekIndex", "First")],
            ),
            "FREQ=MONTHLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
        ),
    }
    for uid, (pattern, _) in patterns.items():
        boundary = ("EndDateRecurrence", [("StartDate", "2026-03-02"), ("EndDate", "2026-12-31")])
        server.put_event(
            "calendar", uid, uid, START, recurrence={"pattern": pattern, "boundary": boundary}
        )
    scope = calendar.scopes(calendar.calendars())[0]
    found = {
        e.uid: e.recurrence
        for item in calendar.fetch(scope, calendar.list_page(scope, None).ids)
        for e in item.events
    }
    assert found == {
        uid: (f"RRULE:{rule};UNTIL=20261231T235959Z",) for uid, (_, rule) in patterns.items()
    }


def test_invalid_sync_state_of_a_calendar_resyncs(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:

    people = (Person("ann@client.example", "Ann", "Accept"),)
    server.put_event("calendar", "uid-1", "One", START, required=people)
    server.put_event("calendar", "uid-2", "Two", START + timedelta(days=1), required=people)
    store = MemoryStore()
    sync = SyncEngine(store, directory())
    assert sync.run(calendar_channel(), calendar).imported == 2
    server.delete(server.find("uid-1"))
    server.invalidate_sync_states("calendar")
    report = sync.run(calendar_channel(), calendar)
    assert (report.errors, report.resyncs) == ([], 1)
    window = Window(START - timedelta(days=1), START + timedelta(days=7))
    shown = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), window).items
    assert [e.title for e in shown] == ["Two"]  # the sweep removed the deleted one
