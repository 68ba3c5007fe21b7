"""Broken calendar data served over CalDAV is repaired or skipped with a
reason, and the rest of the calendar still syncs.

Radicale refuses (or hides) some broken objects, so those are stored valid
and broken on the way out by a rewriting proxy, as a careless server would
serve them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from commlink.calendar.ical import DESCRIPTION_LIMIT
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.caldav.provider import CalDavProvider
from commlink.records import Reason, Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.dav_account import DavAccount
from commlink.testing.directory import InMemoryDirectory

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
CHANNEL = Channel(
    "bad",
    "u-owner",
    ChannelKind.CALENDAR,
    "caldav",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)
WINDOW = Window(
    datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
)


def vevent(uid: str, title: str, start: str, *lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART{start}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{title}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@client.example\r\n{body}END:VEVENT\r\n"
    )


def vcalendar(*events: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + "".join(events)
        + ("END:VCALENDAR\r\n")
    )


# what the proxy turns valid lines into on the way to the client
BREAKAGE = {
    b"RRULE:FREQ=WEEKLY;COUNT=3": b"RRULE:FREQ=SOMETIMES;COUNT=x",
    b"DTSTART:20260310T090000Z": b"X-NO-START:1",
    b"X-SPLIT:here": (
        b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:second-of-two\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART:20260312T090000Z\r\nSUMMARY:Second of two\r\n"
        b"ATTENDEE:mailto:ann@client.example"
    ),
    b"X-MIXED:here": (
        b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:mixed-bad\r\nDTSTAMP:20260101T000000Z\r\n"
        b"SUMMARY:Lost\r\nATTENDEE:mailto:ann@client.example"
    ),
}


def _break(method: str, path: str, body: bytes) -> bytes:
    if method == "REPORT":
        for good, bad in BREAKAGE.items():
            body = body.replace(good, bad)
    return body


@pytest.mark.parametrize("sync_collection", [None, False])
def test_broken_objects_are_repaired_or_skipped(
    account: DavAccount,
    connect: Callable[..., CalDavProvider],
    proxy: Callable[..., object],
    sync_collection: bool | None,
) -> None:
    served = proxy(_break)
    path = account.make_calendar("work")
    objects = {
        "good.ics": vevent("good", "Good", ":20260302T090000Z"),
        "rrule.ics": vevent("rrule", "Bad rule", ":20260303T090000Z", "RRULE:FREQ=WEEKLY;COUNT=3"),
        "nostart.ics": vevent("nostart", "No start", ":20260310T090000Z"),
        "tzid.ics": vevent("tzid", "Mars time", ";TZID=Mars/Olympus:20260304T090000"),
        "two.ics": vevent("first-of-two", "First of two", ":20260311T090000Z", "X-SPLIT:here"),
        "big.ics": vevent("big", "Big", ":20260305T090000Z", "DESCRIPTION:" + "x" * 1_000_000),
        # two unrelated events in one object, one of them without a start
        "mixed.ics": vevent("mixed-good", "Kept", ":20260313T090000Z", "X-MIXED:here"),
    }
    for name, event in objects.items():
        account.put("work", name, vcalendar(event))
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
    provider = connect(served.url, use_sync_collection=sync_collection)  # type: ignore[attr-defined]
    report = SyncEngine(store, directory).run(CHANNEL, provider)
    assert report.errors == []
    events = store.events(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), WINDOW).items
    by_uid = {e.uid: e for e in events}
    assert sorted(by_uid) == [
        "big",
        "first-of-two",
        "good",
        "mixed-good",
        "rrule",
        "second-of-two",
        "tzid",
    ]
    # an unusable rule leaves the master as a single event
    assert [e.uid for e in events].count("rrule") == 1
    # an unknown zone: the wall-clock time is kept (read as UTC)
    assert by_uid["tzid"].start == datetime(2026, 3, 4, 9, tzinfo=timezone.utc)
    description = by_uid["big"].description or ""
    assert 0 < len(description.encode()) <= DESCRIPTION_LIMIT
    skips = store.skips(CHANNEL.id, Viewer("u-owner"))
    # in ctag mode, provider ids carry the ETag after the href
    assert [(s.provider_id.split("#")[0], s.reason) for s in skips] == [
        (path + "mixed.ics", Reason.INVALID),
        (path + "nostart.ics", Reason.ERROR),
    ]
    assert skips[0].provider_id.endswith("#mixed-bad")
    assert skips[0].detail == "missing-dtstart"
    assert skips[0].message_id == "mixed-bad"
    assert "missing-dtstart" in skips[1].detail
    assert report.skipped[Reason.ERROR] == 1
    assert report.skipped[Reason.INVALID] == 1


def test_event_warnings_record_the_repairs(
    account: DavAccount, connect: Callable[..., CalDavProvider], proxy: Callable[..., object]
) -> None:
    served = proxy(_break)
    account.make_calendar("work")
    account.put(
        "work",
        "rrule.ics",
        vcalendar(vevent("rrule", "Bad rule", ":20260303T090000Z", "RRULE:FREQ=WEEKLY;COUNT=3")),
    )
    account.put(
        "work", "tzid.ics", vcalendar(vevent("tzid", "Mars", ";TZID=Mars/Olympus:20260304T090000"))
    )
    provider = connect(served.url)  # type: ignore[attr-defined]
    scope = provider.scopes(provider.calendars())[0]
    items = list(provider.fetch(scope, provider.list_page(scope, None).ids))
    warnings = {e.uid: e.warnings for item in items for e in item.events}
    assert "invalid-rrule:rrule" in warnings["rrule"]
    assert "unknown-tzid:Mars/Olympus" in warnings["tzid"]
