"""Google Calendar push end to end: channels opened through the real
google-api-python-client, messages POSTed by the local Calendar to a real
HTTP endpoint running ``CalendarPushEndpoint``, and the engine syncing
what changed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from gapi_support import OWNER
from google.oauth2.credentials import Credentials
from push_support import EndpointServer, Wakes, post, wait_for

from commlink.errors import ConfigError
from commlink.model import Channel, ChannelKind, ChannelSettings, Folder, FolderKind
from commlink.ports import Scope
from commlink.providers.google.calendar import GoogleCalendarProvider
from commlink.providers.google.gmail import GmailProvider
from commlink.providers.google.push import CalendarPushEndpoint
from commlink.providers.registry import connect
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.stores.push_memory import MemorySubscriptionStore
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


def _event(title: str, day: int) -> dict[str, object]:
    return {
        "summary": title,
        "start": {"dateTime": f"2026-03-{day:02d}T10:00:00Z"},
        "end": {"dateTime": f"2026-03-{day:02d}T11:00:00Z"},
        "organizer": {"email": OWNER, "self": True},
        "attendees": [{"email": "ann@client.example", "responseStatus": "accepted"}],
    }


class Rig:
    def __init__(self, server: GoogleApiServer, http: EndpointServer) -> None:
        self.server = server
        self.http = http
        self.subs = MemorySubscriptionStore()
        self.wakes = Wakes()
        self.unknown: list[tuple[str, str]] = []
        self.endpoint = CalendarPushEndpoint(
            self.subs,
            self.wakes,
            on_unknown=lambda c, r: self.unknown.append((c, r)),
            unknown_grace_seconds=0.0,
        )
        http.handle = self.endpoint.handle
        server.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True)
        self.providers: list[GoogleCalendarProvider] = []

    def provider(self, **kwargs: object) -> GoogleCalendarProvider:
        made = GoogleCalendarProvider(
            Credentials(token=self.server.token),
            api_endpoint=self.server.calendar_url,
            base_delay=0.01,
            push_url=self.http.url,
            **kwargs,  # type: ignore[arg-type]
        )
        self.providers.append(made)
        return made

    def statuses(self) -> list[int]:
        assert self.server.wait_for_pushes()
        return list(self.http.statuses)

    def headers(self) -> list[dict[str, str]]:
        return [dict(a.headers) for a in self.server.sender.attempts_to(self.http.url)]


@pytest.fixture
def rig(server: GoogleApiServer) -> Iterator[Rig]:
    with EndpointServer(lambda headers, body: (500, b"")) as http:
        made = Rig(server, http)
        yield made
        server.wait_for_pushes()
        for provider in made.providers:
            provider.close()


def _subscribe(rig: Rig, provider: GoogleCalendarProvider, current: object = None) -> str:
    [resource] = provider.push_resources(
        provider.scopes([Folder(OWNER, "Owner", FolderKind.CALENDAR)])
    )
    sub = provider.subscribe(CHANNEL.id, resource, current)  # type: ignore[arg-type]
    rig.subs.save_subscription(sub)
    return sub.id


def test_changes_are_pushed_woken_and_synced(rig: Rig) -> None:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    engine = SyncEngine(store, directory)
    calendar = rig.provider()
    rig.server.calendar.add_event(OWNER, _event("Kick-off", 2))
    assert engine.run(CHANNEL, calendar).imported == 1
    channel_id = _subscribe(rig, calendar)
    assert rig.statuses() == [200]  # the sync message: acknowledged, nobody woken
    assert rig.wakes.take() == []
    assert rig.headers()[0]["X-Goog-Resource-State"] == "sync"

    started = time.monotonic()
    event_id = rig.server.calendar.add_event(OWNER, _event("Review", 3))
    assert wait_for(lambda: rig.wakes.channels == [CHANNEL.id])
    latency = time.monotonic() - started
    assert rig.wakes.take() == [CHANNEL.id]
    assert engine.run(CHANNEL, calendar).imported == 1
    rig.server.calendar.update_event(OWNER, event_id, {"summary": "Review (moved)"})
    rig.server.calendar.delete_event(OWNER, event_id)
    assert rig.statuses() == [200, 200, 200, 200]
    assert rig.wakes.take() == [CHANNEL.id, CHANNEL.id]
    engine.run(CHANNEL, calendar)
    events = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), WINDOW).items
    assert [e.title for e in events] == ["Kick-off"]

    sent = rig.headers()
    assert [h["X-Goog-Resource-State"] for h in sent] == ["sync", "exists", "exists", "exists"]
    numbers = [int(h["X-Goog-Message-Number"]) for h in sent]
    assert numbers[0] == 1
    assert numbers == sorted(set(numbers))
    assert {h["X-Goog-Channel-ID"] for h in sent} == {channel_id}
    assert sent[0]["X-Goog-Resource-URI"].startswith("https://www.googleapis.com/calendar/v3/")
    assert sent[0]["X-Goog-Channel-Expiration"].endswith("GMT")
    print(f"event added -> channel woken: {latency * 1000:.0f} ms")


def test_subscription_holds_a_secret_token(rig: Rig) -> None:
    calendar = rig.provider(channel_ttl=timedelta(hours=2))
    channel_id = _subscribe(rig, calendar)
    sub = rig.subs.subscription(channel_id)
    assert sub is not None
    assert (sub.provider, sub.resource, sub.channel_id) == ("google-calendar", OWNER, "gc")
    assert sub.secret is not None
    assert len(sub.secret.reveal()) >= 40
    assert sub.secret.reveal() not in repr(sub)
    assert sub.data["calendarId"] == OWNER
    [channel] = rig.server.channels.open_channels()
    assert channel.token == sub.secret.reveal()
    assert sub.data["resourceId"] == channel.resource_id
    soon = datetime.now(timezone.utc) + timedelta(hours=2)
    assert abs((sub.expires_at - soon).total_seconds()) < 60


def test_wrong_token_and_unknown_channel_wake_nothing(rig: Rig) -> None:
    calendar = rig.provider()
    channel_id = _subscribe(rig, calendar)
    rig.statuses()
    [channel] = rig.server.channels.open_channels()
    genuine = {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": str(channel.token),
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-URI": channel.resource_uri,
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "7",
    }
    assert post(rig.http.url, {**genuine, "X-Goog-Channel-Token": "guess"}) == 403
    no_token = {k: v for k, v in genuine.items() if k != "X-Goog-Channel-Token"}
    assert post(rig.http.url, no_token) == 403
    assert post(rig.http.url, {**genuine, "X-Goog-Resource-ID": "other"}) == 403
    assert post(rig.http.url, {**genuine, "X-Goog-Resource-State": "weird"}) == 400
    stray = {**genuine, "X-Goog-Channel-ID": "stray-channel"}
    assert post(rig.http.url, stray) == 404
    assert post(rig.http.url, stray) == 404
    assert rig.wakes.take() == []
    assert rig.unknown == [("stray-channel", channel.resource_id)]  # handed over once
    assert post(rig.http.url, genuine) == 200
    assert rig.wakes.take() == [CHANNEL.id]


def test_renewal_replaces_the_channel(rig: Rig) -> None:
    calendar = rig.provider()
    first = _subscribe(rig, calendar)
    old = rig.subs.subscription(first)
    second = _subscribe(rig, calendar, old)
    assert second != first
    assert [c.id for c in rig.server.channels.open_channels()] == [second]
    assert rig.server.calls(r"channels/stop") == ["/calendar/v3/channels/stop"]
    rig.subs.delete_subscription(first)
    assert rig.statuses() == [200, 200]  # two sync messages
    rig.server.calendar.add_event(OWNER, _event("After renewal", 4))
    assert rig.statuses()[-1] == 200
    assert rig.wakes.take() == [CHANNEL.id]
    assert [h["X-Goog-Channel-ID"] for h in rig.headers()][-1] == second

    new = rig.subs.subscription(second)
    assert new is not None
    calendar.unsubscribe(new)
    calendar.unsubscribe(new)  # already stopped: 404 is fine
    assert rig.server.channels.open_channels() == []
    rig.server.calendar.add_event(OWNER, _event("Unwatched", 5))
    assert len(rig.statuses()) == 3


def test_an_expired_channel_sends_nothing(rig: Rig) -> None:
    calendar = rig.provider(channel_ttl=timedelta(seconds=1))
    _subscribe(rig, calendar)
    assert rig.statuses() == [200]
    time.sleep(1.1)
    rig.server.calendar.add_event(OWNER, _event("Too late", 6))
    assert rig.statuses() == [200]
    assert rig.server.channels.open_channels() == []


def test_failed_wake_is_retried(rig: Rig) -> None:
    calendar = rig.provider()
    _subscribe(rig, calendar)
    rig.statuses()
    rig.wakes.failures = 1
    rig.server.calendar.add_event(OWNER, _event("Retried", 7))
    assert rig.statuses() == [200, 503, 200]
    assert rig.wakes.take() == [CHANNEL.id]


def test_push_settings(rig: Rig) -> None:
    bare = GoogleCalendarProvider(
        Credentials(token=rig.server.token), api_endpoint=rig.server.calendar_url
    )
    rig.providers.append(bare)
    with pytest.raises(ConfigError):
        bare.subscribe("gc", OWNER, None)
    with pytest.raises(ConfigError):
        GoogleCalendarProvider(Credentials(token="t"), push_url="http://push.example/hook")
    assert bare.push_resources([Scope("a"), Scope("b")]) == ["a", "b"]
    options = {
        "token": rig.server.token,
        "api_endpoint": rig.server.calendar_url,
        "push_url": rig.http.url,
        "channel_ttl_seconds": 3600,
    }
    provider = connect(CHANNEL, options)
    assert isinstance(provider, GoogleCalendarProvider)
    assert (provider.push_url, provider.channel_ttl) == (rig.http.url, timedelta(hours=1))
    provider.close()
    mail_channel = Channel("gm", "u-owner", ChannelKind.MAIL, "gmail", CHANNEL.settings)
    options = {"token": "t", "api_endpoint": rig.server.base_url, "pubsub_topic": "projects/p/t"}
    gmail = connect(mail_channel, options)
    assert isinstance(gmail, GmailProvider)
    assert gmail.pubsub_topic == "projects/p/t"
    gmail.close()


def test_push_keeper_replaces_channels_and_stops_them(rig: Rig) -> None:
    from commlink.sync.push import PushKeeper

    store = MemoryStore()
    store.save_channel(CHANNEL)
    now = [datetime.now(timezone.utc)]
    keeper = PushKeeper(store, rig.subs, lambda c: rig.provider(), clock=lambda: now[0])
    assert keeper.keep().created == 1
    [first] = rig.subs.subscriptions(channel_id=CHANNEL.id)
    now[0] += timedelta(days=6)
    report = keeper.keep()
    assert report.channels[0].replaced == 1
    [second] = rig.subs.subscriptions(channel_id=CHANNEL.id)
    assert second.id != first.id
    assert [c.id for c in rig.server.channels.open_channels()] == [second.id]
    rig.server.calendar.add_event(OWNER, _event("Pushed", 8))
    assert rig.statuses() == [200, 200, 200]  # two syncs, one change
    assert rig.wakes.take() == [CHANNEL.id]
    assert keeper.forget_channel(CHANNEL.id).removed == 1
    assert rig.server.channels.open_channels() == []
