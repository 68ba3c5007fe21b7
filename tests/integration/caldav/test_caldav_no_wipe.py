"""No silent wipe. Cyrus (and Xandikos) answer an anonymous PROPFIND with 207
and an ``unauthenticated`` principal instead of a 401: a client that sends
credentials only when challenged then finds no calendars, and an engine that
trusts that listing drops every stored calendar. Credentials now go with
the first request, an anonymous answer is an ``AuthError``, and an empty
listing is never a reason to sweep."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.caldav.provider import CalDavProvider
from commlink.records import ChannelStatus, Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.dav_account import DavAccount
from commlink.testing.directory import InMemoryDirectory

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
CHANNEL = Channel(
    "no-wipe",
    "u-owner",
    ChannelKind.CALENDAR,
    "caldav",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)
WINDOW = Window(
    datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
)
EVENTS = 12


def _event(n: int) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:wipe-{n}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202603{n + 1:02d}T090000Z\r\n"
        f"DURATION:PT1H\r\nSUMMARY:Meeting {n}\r\nORGANIZER:mailto:{OWNER}\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@client.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class Env:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.directory = InMemoryDirectory()
        self.directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
        self.engine = SyncEngine(self.store, self.directory)
        self.opened: list[CalDavProvider] = []

    def provider(self, url: str, **options: str) -> CalDavProvider:
        provider = CalDavProvider(url, **options)  # type: ignore[arg-type]
        self.opened.append(provider)
        return provider

    def events(self) -> int:
        target = Target(TargetKind.PERSON, "p-ann")
        return len(self.store.events(target, Viewer("u-owner"), WINDOW).items)


@pytest.fixture
def env() -> Env:
    return Env()


def test_an_anonymous_answer_never_wipes_the_calendars(account: DavAccount, env: Env) -> None:
    account.make_calendar("work", "Work")
    for n in range(EVENTS):
        account.put("work", f"{n}.ics", _event(n))
    credentials = {"username": account.username, "password": account.password}
    # the calendar home itself: the server asks for credentials there
    first = env.provider(account.base + account.home(), **credentials)
    assert env.engine.run(CHANNEL, first).errors == []
    assert env.events() == EVENTS

    # discovery from the server root, as a user would configure it
    report = env.engine.run(CHANNEL, env.provider(account.url, **credentials))
    assert report.errors == []
    assert report.deleted == 0
    assert env.events() == EVENTS

    # no credentials at all: an authentication failure, never an empty account
    report = env.engine.run(CHANNEL, env.provider(account.url))
    assert report.status is ChannelStatus.FAILED_AUTH
    assert "AuthError" in report.errors[0]
    assert env.events() == EVENTS
    for provider in env.opened:
        provider.close()


def test_a_calendar_listing_that_comes_back_empty_is_refused(account: DavAccount, env: Env) -> None:
    account.make_calendar("work", "Work")
    for n in range(3):
        account.put("work", f"{n}.ics", _event(n))
    provider = env.provider(account.url, username=account.username, password=account.password)
    assert env.engine.run(CHANNEL, provider).errors == []
    assert env.events() == 3
    account.delete_calendar("work")  # the account now really lists no calendar at all
    report = env.engine.run(CHANNEL, provider)
    assert report.errors
    assert report.errors[0].startswith("SweepRefused: the provider listed no calendars at all")
    assert env.events() == 3
    accepted = SyncEngine(env.store, env.directory, max_sweep_share=None)
    assert accepted.run(CHANNEL, provider).errors == []
    assert env.events() == 0
    provider.close()
