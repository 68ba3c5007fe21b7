"""SyncReport counts stored items, so they add up: what a channel holds after
a run less what it held before is ``imported - deleted``, on both built-in
stores, whatever happened at the source."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.model import (
    Address,
    Attendee,
    Channel,
    ChannelKind,
    ChannelSettings,
    Event,
    EventStatus,
    FolderSelection,
)
from commlink.records import Reason
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider, FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

Store = MemoryStore | SqlStore
SETTINGS = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
MAIL = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", SETTINGS)
CALENDAR = Channel("cal", "u-owner", ChannelKind.CALENDAR, "fake", SETTINGS)
START = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'reports.sqlite'}")


def newsletter(n: int) -> bytes:
    return (
        f"From: News <news@list.example>\r\nTo: {OWNER}\r\nSubject: News {n}\r\n"
        f"List-Id: <weekly.list.example>\r\nMessage-ID: <news-{n}@list.example>\r\n"
        "Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nnews\r\n"
    ).encode()


def held(store: Store, channel: Channel = MAIL) -> int:
    return store.count_associations(channel.id, None, kind=None)


def run(store: Store, provider: object, channel: Channel = MAIL, **options: object) -> SyncReport:
    """One step; the counts must add up to what the store holds."""
    before = held(store, channel)
    engine = SyncEngine(store, InMemoryDirectory(), **options)  # type: ignore[arg-type]
    report = engine.run(channel, provider)  # type: ignore[arg-type]
    assert report.errors == []
    assert held(store, channel) - before == report.imported - report.deleted, report.summary()
    return report


def test_a_skipped_message_deleted_at_the_source_is_no_deletion(store: Store) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    news = provider.box.add("INBOX", newsletter(1))
    assert run(store, provider).skipped == {Reason.GROUP: 1}
    provider.box.delete("INBOX", news)
    report = run(store, provider)
    assert (report.imported, report.deleted, sum(report.skipped.values())) == (0, 0, 0)


def test_a_stored_message_deleted_at_the_source_is_one_deletion(store: Store) -> None:
    provider = FakeMailProvider()
    kept = provider.box.add("INBOX", sample_message(1))
    provider.box.add("INBOX", sample_message(2))
    run(store, provider)
    provider.box.delete("INBOX", kept)
    assert run(store, provider).deleted == 1


def test_a_flag_change_is_an_update_not_an_import(store: Store) -> None:
    provider = FakeMailProvider()
    item = provider.box.add("INBOX", sample_message(1))
    assert run(store, provider).imported == 1
    provider.box.touch("INBOX", item)
    report = run(store, provider)
    assert (report.imported, report.updated, report.deleted) == (0, 1, 0)


def test_cancelled_events_on_a_first_import_are_no_deletions(store: Store) -> None:
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    ann = Attendee(Address("ann@client.example", "ann@client.example", "Ann"))
    for n in range(23):
        event = Event(
            "",
            f"gone-{n}",
            START,
            START + timedelta(hours=1),
            status=EventStatus.CANCELLED,
            attendees=(ann,),
        )
        calendar.put("work", (event,))
    calendar.put("work", (Event("", "kept", START, START + timedelta(hours=1), attendees=(ann,)),))
    report = run(store, FakeCalendarProvider(calendar), CALENDAR)
    assert (report.imported, report.deleted) == (1, 0)


def test_a_series_with_an_override_is_one_item(store: Store) -> None:
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    ann = Attendee(Address("ann@client.example", "ann@client.example", "Ann"))
    master = Event(
        "",
        "weekly",
        START,
        START + timedelta(hours=1),
        attendees=(ann,),
        recurrence=("RRULE:FREQ=WEEKLY",),
    )
    moved = attrs.evolve(master, recurrence=(), recurrence_id=START + timedelta(days=7))
    item = calendar.put("work", (master, moved))
    provider = FakeCalendarProvider(calendar)
    assert run(store, provider, CALENDAR).imported == 1
    calendar.delete("work", item)
    assert run(store, provider, CALENDAR).deleted == 1


def test_a_sweep_counts_what_it_removed(store: Store) -> None:
    """Every id replaced at once (an IMAP UIDVALIDITY change), over several
    steps of a budgeted reconciling pass."""
    provider = FakeMailProvider(page_size=10)
    old = [provider.box.add("INBOX", sample_message(n)) for n in range(44)]
    options = {"max_sweep_share": None, "batch_size": 10, "max_batches": 2}
    while not run(store, provider, **options).complete:
        pass
    for item in old:
        provider.box.delete("INBOX", item)
    for n in range(100, 144):
        provider.box.add("INBOX", sample_message(n))
    provider.box.expire_cursors()
    totals = [0, 0]
    while True:
        report = run(store, provider, **options)
        totals[0] += report.imported
        totals[1] += report.deleted
        if report.complete:
            break
    assert totals == [44, 44]


def test_a_deselected_folder_counts_as_deleted(store: Store) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    for n in range(2, 5):
        provider.box.add("Archive", sample_message(n))
    assert run(store, provider).imported == 4
    narrowed = attrs.evolve(
        MAIL,
        settings=attrs.evolve(SETTINGS, folders=FolderSelection(exclude=frozenset({"archive"}))),
    )
    assert run(store, provider, narrowed).deleted == 3


def test_summary_prints_every_count() -> None:
    report = SyncReport("ch", imported=3, updated=2, deleted=1, unchanged=40)
    report.skipped[Reason.GROUP] += 2
    text = report.summary()
    for part in ("3 imported", "2 updated", "1 deleted", "2 skipped (group 2)", "40 unchanged"):
        assert part in text


OPS = st.lists(
    st.sampled_from(["mail", "news", "delete", "touch", "move", "expire", "replace_all"]),
    max_size=14,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, seed=st.randoms(use_true_random=False))
def test_counts_add_up_whatever_the_mailbox_does(ops: list[str], seed: object) -> None:
    store = MemoryStore()
    provider = FakeMailProvider(page_size=4)
    n = 0
    for op in ops:
        items = sorted((f, i) for f, box in provider.box.items.items() for i in box)
        if op in ("mail", "news"):
            n += 1
            folder = seed.choice(["INBOX", "Archive", "Sent"])  # type: ignore[attr-defined]
            provider.box.add(folder, sample_message(n) if op == "mail" else newsletter(n))
        elif op == "delete" and items:
            provider.box.delete(*seed.choice(items))  # type: ignore[attr-defined]
        elif op == "touch" and items:
            provider.box.touch(*seed.choice(items))  # type: ignore[attr-defined]
        elif op == "move" and items:
            folder, item = seed.choice(items)  # type: ignore[attr-defined]
            provider.box.move(item, folder, "Archive" if folder != "Archive" else "INBOX")
        elif op == "expire":
            provider.box.expire_cursors()
        elif op == "replace_all":
            for folder, item in items:
                provider.box.delete(folder, item)
            provider.box.expire_cursors()
        run(store, provider, max_sweep_share=None, batch_size=3)
