"""Request counts of CalDAV sync on each server (Radicale, Xandikos, Cyrus):
a full sync is discovery plus one REPORT per calendar, a no-change pass one
PROPFIND for the whole channel, in both sync modes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings, Limits
from commlink.providers.caldav.provider import CalDavProvider
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.dav_account import DavAccount
from commlink.testing.directory import InMemoryDirectory

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
CHANNEL = Channel(
    "req",
    "u-owner",
    ChannelKind.CALENDAR,
    "caldav",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)
CALENDARS = ("a", "b", "c", "d")
PER_CALENDAR = 6
DISCOVERY = 3  # principal, calendar home, calendar listing


def _ics(uid: str, day: int, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202603{day:02d}T090000Z\r\n"
        f"DURATION:PT1H\r\nSUMMARY:Meeting {uid}\r\nORGANIZER:mailto:{OWNER}\r\n"
        f"ATTENDEE;CN=Ann;PARTSTAT=ACCEPTED:mailto:ann@client.example\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _fill(account: DavAccount) -> None:
    for cal in CALENDARS:
        account.make_calendar(cal, cal.upper())
        for n in range(PER_CALENDAR):
            rule = "RRULE:FREQ=WEEKLY;COUNT=3\r\n" if n == 0 else ""
            account.put(cal, f"{n}.ics", _ics(f"{cal}{n}", n + 1, rule))
    # a to-do is no event: not listed by the calendar query, nothing to fetch
    account.put(
        "a",
        "todo.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Do it\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
    )


def _events(store: MemoryStore) -> int:
    """Occurrences shown for Ann in 2026."""
    span = Window(
        datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
    )
    person = Target(TargetKind.PERSON, "p-ann")
    return len(store.events(person, Viewer("u-owner"), span).items)


@pytest.mark.parametrize("sync_collection", [None, False], ids=["sync-collection", "ctag"])
def test_full_sync_is_one_report_per_calendar(
    account: DavAccount, connect: Callable[..., CalDavProvider], sync_collection: bool | None
) -> None:
    _fill(account)
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    engine = SyncEngine(store, directory)
    provider = connect(use_sync_collection=sync_collection)
    report = engine.run(CHANNEL, provider)
    assert report.errors == []
    assert report.imported == len(CALENDARS) * PER_CALENDAR
    assert provider.requests == DISCOVERY + len(CALENDARS)
    assert _events(store) == len(CALENDARS) * (PER_CALENDAR + 2)  # series of 3
    # a no-change pass in a new process: discovery alone
    quiet = connect(use_sync_collection=sync_collection)
    report = engine.run(CHANNEL, quiet)
    assert report.errors == []
    assert quiet.requests == DISCOVERY
    assert report.imported == 0


def test_data_over_the_budget_is_fetched_with_multigets(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    _fill(account)
    store = MemoryStore()
    directory = InMemoryDirectory()
    engine = SyncEngine(store, directory)
    # room for about two objects' data: the rest comes with calendar-multiget
    provider = connect(limits=Limits(fetch_batch_bytes=900), multiget_size=100)
    report = engine.run(CHANNEL, provider)
    assert report.errors == []
    assert report.imported == len(CALENDARS) * PER_CALENDAR
    assert provider.requests == DISCOVERY + 2 * len(CALENDARS)


def test_objects_over_max_message_bytes_are_skipped(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    account.make_calendar("work")
    account.put("work", "small.ics", _ics("small", 2))
    account.put("work", "big.ics", _ics("big", 3, "DESCRIPTION:" + "x" * 5000 + "\r\n"))
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    provider = connect(limits=Limits(max_message_bytes=4000))
    report = engine.run(CHANNEL, provider)
    assert report.imported == 1
    skips = store.skips(CHANNEL.id, Viewer("u-owner"))
    assert [s.provider_id.rsplit("/", 1)[-1] for s in skips] == ["big.ics"]
    assert "over max_message_bytes" in skips[0].detail
