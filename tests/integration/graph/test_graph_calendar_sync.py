"""Graph calendar sync through the engine: responses, cancelled meetings,
online-meeting links, all-day events, the window and bad attendees."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from graph_support import OWNER, calendar_channel, engine, graph_event

from commlink.errors import CursorExpired
from commlink.model import EventStatus, ResponseStatus
from commlink.ports import Store
from commlink.providers.microsoft.graph import GraphCalendarProvider, map_event
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
WINDOW = Window(NOW - timedelta(days=400), NOW + timedelta(days=400))


def _events(store: Store, person: str = "p-ann") -> list[str]:
    target = Target(TargetKind.PERSON, person)
    return [e.title or "" for e in store.events(target, Viewer("u-owner"), WINDOW).items]


def test_responses_organizer_and_meeting_link(
    server: GraphServer, calendar: GraphCalendarProvider
) -> None:
    server.calendar.add_event(
        server.calendar.default,
        graph_event(
            "Kick-off",
            NOW + timedelta(days=2),
            attendees=(
                ("ann@client.example", "accepted"),
                ("bob@partner.example", "tentativelyAccepted"),
                ("cy@client.example", "declined"),
                ("dee@client.example", "none"),
            ),
            onlineMeeting={"joinUrl": "https://teams.microsoft.com/l/meetup-join/abc"},
            originalStartTimeZone="W. Europe Standard Time",
        ),
    )
    [scope] = calendar.scopes([c for c in calendar.calendars() if c.id == server.calendar.default])
    calendar.snapshot(scope)
    [item] = list(calendar.fetch(scope, calendar.list_page(scope, None).ids))
    [event] = item.events
    statuses = {a.address.key: a.status for a in event.attendees}
    assert statuses == {
        "ann@client.example": ResponseStatus.ACCEPTED,
        "bob@partner.example": ResponseStatus.TENTATIVE,
        "cy@client.example": ResponseStatus.DECLINED,
        "dee@client.example": ResponseStatus.NEEDS_ACTION,
    }
    assert event.organizer is not None
    assert event.organizer.address.key == OWNER
    assert event.conference_url == "https://teams.microsoft.com/l/meetup-join/abc"
    assert event.start == NOW + timedelta(days=2)
    assert event.timezone == "Europe/Berlin"


def test_a_cancelled_meeting_is_removed(
    server: GraphServer, calendar: GraphCalendarProvider
) -> None:
    cal = server.calendar.default
    kept = server.calendar.add_event(cal, graph_event("Review", NOW + timedelta(days=1)))
    cancelled = server.calendar.add_event(cal, graph_event("Pitch", NOW + timedelta(days=3)))
    sync, store = engine()
    assert sync.run(calendar_channel(), calendar).imported == 2
    assert sorted(_events(store)) == ["Pitch", "Review"]
    server.calendar.cancel_event(cal, cancelled)
    report = sync.run(calendar_channel(), calendar)
    assert report.errors == []
    assert _events(store) == ["Review"]
    assert store.known_ids("gr-cal", cal, [kept, cancelled]) == {kept}
    server.calendar.delete_event(cal, kept)
    assert sync.run(calendar_channel(), calendar).errors == []
    assert _events(store) == []


def test_events_outside_the_window_are_left_out(
    server: GraphServer, calendar: GraphCalendarProvider
) -> None:
    cal = server.calendar.default
    server.calendar.add_event(cal, graph_event("Soon", NOW + timedelta(days=10)))
    server.calendar.add_event(cal, graph_event("Long ago", NOW - timedelta(days=800)))
    sync, store = engine()
    assert sync.run(calendar_channel(), calendar).imported == 1
    assert _events(store) == ["Soon"]


def test_expired_delta_resyncs_the_calendar(
    server: GraphServer, calendar: GraphCalendarProvider
) -> None:
    cal = server.calendar.default
    first = server.calendar.add_event(cal, graph_event("One", NOW + timedelta(days=1)))
    sync, store = engine()
    assert sync.run(calendar_channel(), calendar).imported == 1
    server.calendar.delete_event(cal, first)
    server.calendar.add_event(cal, graph_event("Two", NOW + timedelta(days=2)))
    server.expire_delta_tokens()
    scope = calendar.scopes(calendar.calendars())[0]
    with pytest.raises(CursorExpired):
        calendar.changes(
            scope, f"{server.base_url}/me/calendars/{cal}/calendarView/delta?$deltatoken=x"
        )
    report = sync.run(calendar_channel(), calendar)
    assert report.errors == []
    assert report.resyncs >= 1
    assert _events(store) == ["Two"]


def test_an_attendee_without_an_address_is_dropped_with_a_warning(
    server: GraphServer, calendar: GraphCalendarProvider
) -> None:
    item = graph_event("Board", NOW + timedelta(days=4))
    item["attendees"].append(
        {"type": "required", "status": {"response": "none"}, "emailAddress": {"name": "Room 4"}}
    )
    item["attendees"].append(
        {"type": "resource", "emailAddress": {"name": "Beamer", "address": "beamer@home.example"}}
    )
    server.calendar.add_event(server.calendar.default, item)
    [scope] = calendar.scopes([c for c in calendar.calendars() if c.id == server.calendar.default])
    calendar.snapshot(scope)
    [fetched] = list(calendar.fetch(scope, calendar.list_page(scope, None).ids))
    [event] = fetched.events
    assert [a.address.key for a in event.attendees] == ["ann@client.example"]
    assert "attendee-without-address:Room 4" in event.warnings
    sync, store = engine()
    assert sync.run(calendar_channel(), calendar).errors == []
    assert _events(store) == ["Board"]


def test_mapping_all_day_html_body_and_links() -> None:
    item = {
        "id": "e1",
        "iCalUId": "uid-1",
        "subject": "Offsite",
        "isAllDay": True,
        "start": {"dateTime": "2026-05-04T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-05-06T00:00:00.0000000", "timeZone": "UTC"},
        "body": {
            "contentType": "html",
            "content": "<p>Join: https://acme.zoom.us/j/123456 today</p>",
        },
        "location": {"displayName": "Lisbon"},
        "lastModifiedDateTime": "2026-04-01T10:00:00.1234567Z",
    }
    event = map_event(item, "e1", "cal")
    assert event.all_day
    assert event.start == datetime(2026, 5, 4, tzinfo=timezone.utc)
    assert event.end == datetime(2026, 5, 6, tzinfo=timezone.utc)
    assert event.description.startswith("Join:")
    assert event.conference_url == "https://acme.zoom.us/j/123456"
    assert event.location == "Lisbon"
    assert event.updated == datetime(2026, 4, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert event.status is EventStatus.CONFIRMED


def test_mapping_time_zones_and_bad_times() -> None:
    zoned = {
        "start": {"dateTime": "2026-05-04T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2026-05-04T08:00:00.0000000", "timeZone": "Pacific Standard Time"},
        "isCancelled": True,
    }
    event = map_event(zoned, "e2", "cal")
    assert event.start == datetime(2026, 5, 4, 16, 0, tzinfo=timezone.utc)
    assert event.end == event.start
    assert "end-before-start" in event.warnings
    assert event.status is EventStatus.CANCELLED
    assert event.uid == "e2@graph.microsoft.com"
    with pytest.raises(ValueError, match="no time"):
        map_event({"subject": "x"}, "e3", "cal")
    odd = map_event(
        {"start": {"dateTime": "2026-05-04T09:00:00", "timeZone": "Mars/Base"}}, "e4", "c"
    )
    assert "unknown-timezone:Mars/Base" in odd.warnings
    assert "missing-end" in odd.warnings


@pytest.mark.parametrize(
    ("meeting", "expected"),
    [
        ({"onlineMeeting": {"joinUrl": "javascript:alert(1)"}}, ""),
        ({"onlineMeeting": {"joinUrl": "http://teams.microsoft.com/l/meetup-join/a"}}, ""),
        ({"onlineMeeting": {"joinUrl": "data:text/html,<script>x</script>"}}, ""),
        (
            {
                "onlineMeeting": {"joinUrl": "javascript:alert(1)"},
                "onlineMeetingUrl": "https://teams.microsoft.com/l/meetup-join/b",
            },
            "https://teams.microsoft.com/l/meetup-join/b",
        ),
        ({"onlineMeeting": {"joinUrl": " https://x.example/j/1 "}}, "https://x.example/j/1"),
    ],
)
def test_only_https_conference_links_are_kept(meeting: dict[str, object], expected: str) -> None:
    item = {
        "id": "e1",
        "subject": "Call",
        "start": {"dateTime": "2026-05-04T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-05-04T11:00:00.0000000", "timeZone": "UTC"},
        **meeting,
    }
    assert map_event(item, "e1", "cal").conference_url == expected


def test_a_metadata_channel_reads_single_events_without_their_content(
    server: GraphServer,
) -> None:
    from graph_support import client

    event_id = server.calendar.add_event(
        server.calendar.default,
        graph_event(
            "Board call",
            NOW + timedelta(days=3),
            attendees=(("ann@client.example", "accepted"),),
            body={"contentType": "text", "content": "passcode 991-224"},
            location={"displayName": "Room 12"},
            onlineMeeting={"joinUrl": "https://teams.microsoft.com/l/meetup-join/abc"},
        ),
    )
    provider = GraphCalendarProvider(client(server), user=OWNER, metadata_only=True)
    [scope] = provider.scopes([c for c in provider.calendars() if c.id == server.calendar.default])
    # an id the delta has not listed is read on its own, with $select
    [item] = list(provider.fetch(scope, [event_id]))
    provider.close()
    [event] = item.events
    assert event.title == "Board call"
    assert (event.description, event.location, event.conference_url) == ("", "", "")
    gets = [t for m, t in server.request_log if "/events/" in t]
    assert gets
    assert all("$select=" in t or "%24select=" in t for t in gets)
