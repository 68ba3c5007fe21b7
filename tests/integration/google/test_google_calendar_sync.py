"""Google Calendar sync against the local Google API server: expired sync
tokens, series with exceptions, bad time zones, and the registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from gapi_support import OWNER
from google.oauth2.credentials import Credentials

from commlink.errors import ConfigError, CursorExpired
from commlink.model import Channel, ChannelKind, ChannelSettings, EventStatus, ResponseStatus
from commlink.providers.google.calendar import GoogleCalendarProvider
from commlink.providers.google.gmail import GmailProvider
from commlink.providers.registry import PROVIDER_KINDS, connect
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "gc",
    "u-owner",
    ChannelKind.CALENDAR,
    "google-calendar",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)
WINDOW = Window(
    datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 12, 31, tzinfo=timezone.utc)
)


def _event(title: str, day: int, **extra: object) -> dict[str, object]:
    return {
        "summary": title,
        "start": {"dateTime": f"2026-03-{day:02d}T10:00:00+01:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": f"2026-03-{day:02d}T11:00:00+01:00", "timeZone": "Europe/Paris"},
        "organizer": {"email": OWNER, "self": True},
        "attendees": [
            {"email": OWNER, "responseStatus": "accepted", "organizer": True},
            {"email": "ann@client.example", "displayName": "Ann", "responseStatus": "tentative"},
        ],
        **extra,
    }


@pytest.fixture
def calendar(server: GoogleApiServer) -> Iterator[GoogleCalendarProvider]:
    server.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True, time_zone="Europe/Paris")
    provider = GoogleCalendarProvider(
        Credentials(token=server.token), api_endpoint=server.calendar_url, base_delay=0.01
    )
    yield provider
    provider.close()


def _engine() -> tuple[SyncEngine, MemoryStore]:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    return SyncEngine(store, directory), store


def _titles(store: MemoryStore) -> list[str]:
    items = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), WINDOW).items
    return sorted(e.title for e in items)


def test_expired_sync_token_reconciles(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    first = server.calendar.add_event(OWNER, _event("One", 3))
    server.calendar.add_event(OWNER, _event("Two", 4))
    engine, store = _engine()
    assert engine.run(CHANNEL, calendar).imported == 2
    server.calendar.delete_event(OWNER, first)
    server.calendar.add_event(OWNER, _event("Three", 5))
    server.calendar.invalidate_sync_tokens()
    report = engine.run(CHANNEL, calendar)
    assert report.errors == []
    assert report.resyncs == 1
    assert _titles(store) == ["Three", "Two"]


def test_410_is_cursor_expired(server: GoogleApiServer, calendar: GoogleCalendarProvider) -> None:
    scope = calendar.scopes(calendar.calendars())[0]
    token = calendar.snapshot(scope)
    server.calendar.invalidate_sync_tokens()
    with pytest.raises(CursorExpired):
        calendar.changes(scope, token)


def test_series_with_exceptions_is_one_object(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    master = server.calendar.add_event(
        OWNER, _event("Weekly", 2, recurrence=["RRULE:FREQ=WEEKLY;COUNT=5"])
    )
    moved = server.calendar.add_exception(
        OWNER, master, "2026-03-09T09:00:00Z", {"summary": "Weekly (moved)"}
    )
    scope = calendar.scopes(calendar.calendars())[0]
    calendar.snapshot(scope)
    assert calendar.list_page(scope, None).ids == (master,)
    [fetched] = list(calendar.fetch(scope, [master]))
    assert [e.recurrence_id for e in fetched.events] == [
        None,
        datetime(2026, 3, 9, 9, tzinfo=timezone.utc),
    ]
    series, override = fetched.events
    assert series.recurrence == ("RRULE:FREQ=WEEKLY;COUNT=5",)
    assert series.start == datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    assert series.timezone == "Europe/Paris"
    assert override.title == "Weekly (moved)"
    assert {a.address.key: a.status for a in series.attendees}["ann@client.example"] is (
        ResponseStatus.TENTATIVE
    )
    assert series.organizer is not None
    assert series.organizer.organizer
    # a changed exception is reported under the master's id, with the whole series
    token = calendar.snapshot(scope)
    server.calendar.update_event(OWNER, moved, {"summary": "Weekly (moved again)"})
    fresh = GoogleCalendarProvider(
        Credentials(token=server.token), api_endpoint=server.calendar_url
    )
    try:
        changes = fresh.changes(scope, token)
        assert changes.upserted == (master,)
        [again] = list(fresh.fetch(scope, [master]))
    finally:
        fresh.close()
    assert sorted(e.title for e in again.events) == ["Weekly", "Weekly (moved again)"]


def test_cancelled_instance_and_deleted_series(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    master = server.calendar.add_event(
        OWNER, _event("Daily", 2, recurrence=["RRULE:FREQ=DAILY;COUNT=3"])
    )
    skipped = server.calendar.add_exception(OWNER, master, "2026-03-03T09:00:00Z", {})
    engine, store = _engine()
    assert engine.run(CHANNEL, calendar).errors == []
    server.calendar.delete_event(OWNER, skipped)
    scope = calendar.scopes(calendar.calendars())[0]
    [fetched] = list(calendar.fetch(scope, [master]))
    cancelled = [e for e in fetched.events if e.status is EventStatus.CANCELLED]
    assert cancelled == []  # not yet seen: the listing cache is from before
    report = engine.run(CHANNEL, calendar)
    assert report.errors == []
    [fetched] = list(calendar.fetch(scope, [master]))
    assert [e.status for e in fetched.events if e.recurrence_id] == [EventStatus.CANCELLED]
    server.calendar.delete_event(OWNER, master)
    report = engine.run(CHANNEL, calendar)
    assert report.errors == []
    assert _titles(store) == []


def test_invalid_time_zone_is_repaired_with_a_warning(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    server.calendar.add_event(
        OWNER,
        {
            "summary": "Mars",
            "start": {"dateTime": "2026-03-03T10:00:00", "timeZone": "Mars/Olympus"},
            "end": {"dateTime": "2026-03-03T11:00:00", "timeZone": "Mars/Olympus"},
            "attendees": [{"email": "ann@client.example"}],
        },
    )
    server.calendar.add_event(OWNER, {"summary": "Broken", "start": {}, "attendees": []})
    server.calendar.add_event(OWNER, _event("Fine", 4))
    scope = calendar.scopes(calendar.calendars())[0]
    calendar.snapshot(scope)
    ids = calendar.list_page(scope, None).ids
    fetched = {f.events[0].title if f.events else f.error: f for f in calendar.fetch(scope, ids)}
    mars = fetched["Mars"].events[0]
    assert "unknown-timezone:Mars/Olympus" in mars.warnings
    # the calendar's own zone is used: 10:00 in Paris
    assert mars.start == datetime(2026, 3, 3, 9, tzinfo=timezone.utc)
    assert any(key and "no time" in key for key in fetched)
    engine, store = _engine()
    report = engine.run(CHANNEL, calendar)
    assert report.errors == []
    assert _titles(store) == ["Fine", "Mars"]


def test_conference_links(server: GoogleApiServer, calendar: GoogleCalendarProvider) -> None:
    video = {"entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc"}]}
    server.calendar.add_event(OWNER, _event("A", 3, conferenceData=video))
    server.calendar.add_event(OWNER, _event("B", 4, hangoutLink="https://meet.google.com/xyz"))
    server.calendar.add_event(OWNER, _event("C", 5, location="https://zoom.us/j/123"))
    scope = calendar.scopes(calendar.calendars())[0]
    calendar.snapshot(scope)
    ids = calendar.list_page(scope, None).ids
    links = {f.events[0].title: f.events[0].conference_url for f in calendar.fetch(scope, ids)}
    assert links == {
        "A": "https://meet.google.com/abc",
        "B": "https://meet.google.com/xyz",
        "C": "https://zoom.us/j/123",
    }


def test_registry_builds_google_providers(server: GoogleApiServer) -> None:
    assert PROVIDER_KINDS["gmail"] is ChannelKind.MAIL
    assert PROVIDER_KINDS["google-calendar"] is ChannelKind.CALENDAR
    mail_channel = Channel("m", "u", ChannelKind.MAIL, "gmail", CHANNEL.settings)
    gmail = connect(mail_channel, {"token": server.token, "api_endpoint": server.base_url})
    assert isinstance(gmail, GmailProvider)
    try:
        assert any(f.id == "INBOX" for f in gmail.folders())
    finally:
        gmail.close()
    cal = connect(CHANNEL, {"token": server.token, "api_endpoint": server.calendar_url})
    assert isinstance(cal, GoogleCalendarProvider)
    cal.close()
    with pytest.raises(ConfigError):
        connect(mail_channel, {})
    with pytest.raises(ConfigError):
        connect(mail_channel, {"service_account_info": {"type": "service_account"}})


def test_only_https_conference_links_are_kept(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    hostile = {
        "entryPoints": [
            {"entryPointType": "video", "uri": "javascript:alert(document.cookie)"},
            {"entryPointType": "video", "uri": "https://meet.google.com/ok"},
        ]
    }
    only_bad = {"entryPoints": [{"entryPointType": "video", "uri": "javascript:alert(1)"}]}
    server.calendar.add_event(OWNER, _event("A", 3, conferenceData=hostile))
    server.calendar.add_event(
        OWNER, _event("B", 4, conferenceData=only_bad, hangoutLink="data:text/html,x")
    )
    server.calendar.add_event(OWNER, _event("C", 5, hangoutLink="http://meet.google.com/plain"))
    scope = calendar.scopes(calendar.calendars())[0]
    calendar.snapshot(scope)
    ids = calendar.list_page(scope, None).ids
    links = {f.events[0].title: f.events[0].conference_url for f in calendar.fetch(scope, ids)}
    assert links == {"A": "https://meet.google.com/ok", "B": "", "C": ""}


def test_html_descriptions_become_capped_text(
    server: GoogleApiServer, calendar: GoogleCalendarProvider
) -> None:
    from commlink.calendar.ical import DESCRIPTION_LIMIT

    html = "<p>Agenda</p><script>alert(1)</script><p>&lt;script&gt;x&lt;/script&gt;</p>"
    server.calendar.add_event(OWNER, _event("Html", 3, description=html))
    server.calendar.add_event(OWNER, _event("Plain", 4, description="line 1\nline 2"))
    server.calendar.add_event(OWNER, _event("Huge", 5, description="é" * DESCRIPTION_LIMIT))
    scope = calendar.scopes(calendar.calendars())[0]
    calendar.snapshot(scope)
    ids = calendar.list_page(scope, None).ids
    found = {f.events[0].title: f.events[0].description for f in calendar.fetch(scope, ids)}
    assert "Agenda" in found["Html"]
    assert "<p>" not in found["Html"]
    assert "alert(1)" not in found["Html"]
    # entity-encoded markup decodes to literal text: the host must escape it
    assert "<script>x</script>" in found["Html"]
    assert found["Plain"] == "line 1\nline 2"
    assert len(found["Huge"].encode()) <= DESCRIPTION_LIMIT
    assert found["Huge"] == "é" * (DESCRIPTION_LIMIT // 2)
