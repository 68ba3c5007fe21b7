"""A METADATA Google Calendar channel never downloads what it may not keep."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import attrs
import pytest
from gapi_support import OWNER
from google.oauth2.credentials import Credentials

from commlink.model import Channel, ChannelKind, ChannelSettings, Visibility
from commlink.providers.google.calendar import GoogleCalendarProvider
from commlink.providers.registry import connect
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.fields import apply_fields, parse_fields

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "gc",
    "u-owner",
    ChannelKind.CALENDAR,
    "google-calendar",
    ChannelSettings(
        owner=OWNER, org_domains=frozenset({"home.example"}), visibility=Visibility.METADATA
    ),
)
WINDOW = Window(
    datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 12, 31, tzinfo=timezone.utc)
)
SECRET_TEXT = "passcode 991-224 for the board call"


def _event(title: str, day: int, **extra: object) -> dict[str, object]:
    return {
        "summary": title,
        "description": SECRET_TEXT,
        "location": "Room 12, " + SECRET_TEXT,
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "conferenceData": {
            "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc"}]
        },
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
def server_with_events(server: GoogleApiServer) -> GoogleApiServer:
    server.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True, time_zone="Europe/Paris")
    server.calendar.add_event(OWNER, _event("Single", 3))
    master = server.calendar.add_event(
        OWNER, _event("Weekly", 5, recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"])
    )
    server.calendar.add_exception(
        OWNER, master, "2026-03-12T10:00:00+01:00", {"summary": "Weekly (moved)"}
    )
    return server


def _sync(provider: GoogleCalendarProvider) -> MemoryStore:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    report = SyncEngine(store, directory).run(CHANNEL, provider)
    assert report.errors == []
    return store


def test_metadata_channel_asks_only_for_what_it_keeps(
    server_with_events: GoogleApiServer,
) -> None:
    server = server_with_events
    provider = connect(CHANNEL, {"token": server.token, "api_endpoint": server.calendar_url})
    assert isinstance(provider, GoogleCalendarProvider)
    server.record_answers = True
    store = _sync(provider)
    provider.close()
    answers = [a for a in server.answers if '"items"' in a or '"iCalUID"' in a]
    event_calls = [c for c in server.calls("/events") if "/watch" not in c]
    assert event_calls
    assert all("fields=" in c for c in event_calls)
    assert answers, "no answers seen"
    assert all(SECRET_TEXT not in body and "meet.google.com" not in body for body in answers)
    found = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), WINDOW).items
    titles = {e.title for e in found}
    assert titles == {"Single", "Weekly", "Weekly (moved)"}
    assert all(not e.description and not e.location and not e.conference_url for e in found)


def test_full_channel_still_reads_everything(server_with_events: GoogleApiServer) -> None:
    server = server_with_events
    full = attrs.evolve(
        CHANNEL, settings=attrs.evolve(CHANNEL.settings, visibility=Visibility.FULL)
    )
    provider = GoogleCalendarProvider(
        Credentials(token=server.token), api_endpoint=server.calendar_url, base_delay=0.01
    )
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    assert SyncEngine(store, directory).run(full, provider).errors == []
    provider.close()
    assert not any("fields=" in c for c in server.calls("/events"))
    found = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), WINDOW).items
    single = next(e for e in found if e.title == "Single")
    assert single.description == SECRET_TEXT
    assert single.conference_url == "https://meet.google.com/abc"


def test_partial_response_grammar() -> None:
    value = {
        "items": [{"id": "1", "start": {"dateTime": "x", "timeZone": "z"}, "description": "d"}],
        "nextPageToken": "t",
        "kind": "calendar#events",
    }
    assert apply_fields(value, parse_fields("items(id,start/dateTime),nextPageToken")) == {
        "items": [{"id": "1", "start": {"dateTime": "x"}}],
        "nextPageToken": "t",
    }
    assert apply_fields(value, parse_fields("kind")) == {"kind": "calendar#events"}
    assert apply_fields(value, parse_fields("*")) == value
    assert json.dumps(apply_fields(value, parse_fields("items/id"))) == '{"items": [{"id": "1"}]}'
