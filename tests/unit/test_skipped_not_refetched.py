"""A reconciling full pass does not fetch skipped mail again while the reason
it was skipped for still holds (``commlink.sync.settled``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

from commlink.model import Address, Attendee, Channel, ChannelKind, ChannelSettings, Event
from commlink.records import Reason, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider, FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

Store = MemoryStore | SqlStore
SETTINGS = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))


def channel(**settings: object) -> Channel:
    return Channel("ch", "u-owner", ChannelKind.MAIL, "fake", attrs.evolve(SETTINGS, **settings))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'skips.sqlite'}")


def newsletter(n: int) -> bytes:
    return (
        f"From: News <news@list.example>\r\nTo: {OWNER}\r\nSubject: News {n}\r\n"
        f"List-Id: <weekly.list.example>\r\nMessage-ID: <news-{n}@list.example>\r\n"
        "Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nnews\r\n"
    ).encode()


def sync(
    store: Store, provider: object, ch: Channel | None = None, **options: object
) -> SyncReport:
    directory = InMemoryDirectory()
    directory.add_person("ann", "Ann Client", ["ann@client.example"])
    engine = SyncEngine(store, directory, **options)  # type: ignore[arg-type]
    report = engine.run(ch or channel(), provider)  # type: ignore[arg-type]
    assert report.errors == []
    return report


def stored_subjects(store: Store) -> list[str]:
    page = store.timeline(Target(TargetKind.PERSON, "ann"), Viewer("u-owner"))
    return sorted(t.subject or "" for t in page.items)


def test_a_reconcile_does_not_fetch_skipped_mail_again(store: Store) -> None:
    provider = FakeMailProvider(page_size=7)
    kept = [provider.box.add("INBOX", sample_message(n)) for n in range(5)]
    for n in range(19):
        provider.box.add("INBOX", newsletter(n))
    assert sync(store, provider).skipped == {Reason.GROUP: 19}
    for item in kept[:2]:
        provider.box.delete("INBOX", item)
    provider.box.expire_cursors()  # as an IMAP server without CONDSTORE after an expunge
    provider.calls.clear()
    report = sync(store, provider, batch_size=7)
    assert report.resyncs >= 1
    assert (report.fetched, provider.calls.count("fetch")) == (0, 0)
    assert (report.deleted, report.unchanged) == (2, 22)
    assert len(store.skips("ch", Viewer("u-owner"))) == 19


def test_a_reconcile_still_fetches_new_mail(store: Store) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    provider.box.add("INBOX", newsletter(1))
    sync(store, provider)
    provider.box.add("INBOX", newsletter(2))
    provider.box.add("INBOX", sample_message(2))
    provider.box.expire_cursors()
    report = sync(store, provider)
    assert (report.fetched, report.imported) == (2, 1)
    assert report.skipped == {Reason.GROUP: 1}


def test_a_resync_after_a_blocklist_entry_is_removed_imports_what_it_blocked(
    store: Store,
) -> None:
    provider = FakeMailProvider()
    for n in range(3):
        provider.box.add("INBOX", sample_message(n))
    provider.box.add("INBOX", newsletter(1))
    blocking = channel(blocklist=frozenset({"@client.example"}))
    assert sync(store, provider, blocking).skipped[Reason.BLOCKED] == 3
    engine = SyncEngine(store, InMemoryDirectory())
    engine.request_resync("ch")  # no refetch: skipped mail is judged again all the same
    report = sync(store, provider)
    assert (report.fetched, report.imported) == (4, 3)
    assert stored_subjects(store) == ["Proposal 0", "Proposal 1", "Proposal 2"]
    provider.box.expire_cursors()  # judged under the new settings: trusted again
    assert sync(store, provider).fetched == 0


def test_refetch_judges_every_message_again(store: Store) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    provider.box.add("INBOX", newsletter(1))
    sync(store, provider)
    SyncEngine(store, InMemoryDirectory()).request_resync("ch", refetch=True)
    report = sync(store, provider)
    assert (report.fetched, report.updated, report.imported) == (2, 1, 0)
    assert report.skipped == {Reason.GROUP: 1}


def test_settings_changed_and_changed_back_are_not_trusted(store: Store) -> None:
    """Mail skipped while a blocklist entry briefly existed is judged again
    once it is gone, even though the settings are as before."""
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    sync(store, provider)
    blocking = channel(blocklist=frozenset({"@client.example"}))
    provider.box.add("INBOX", sample_message(2))
    assert sync(store, provider, blocking).skipped == {Reason.BLOCKED: 1}
    provider.box.expire_cursors()
    report = sync(store, provider)  # the blocklist had removed Proposal 1: both come back
    assert (report.fetched, report.imported) == (2, 2)
    assert stored_subjects(store) == ["Proposal 1", "Proposal 2"]


def test_an_id_new_to_a_folder_is_fetched_though_another_folder_skipped_it(
    store: Store,
) -> None:
    """Skip records are per channel and provider id: an IMAP server may give
    two folders the same UIDVALIDITY, so one folder's new id can name a
    message another folder skipped. A reconcile fetches such an id."""
    provider = FakeMailProvider()
    box = provider.box
    stored = box.add("Archive", sample_message(1))
    shared = box.add("INBOX", newsletter(1))  # skipped in INBOX
    sync(store, provider)
    box.items["Archive"][shared] = sample_message(2)  # the same id, new in Archive
    box.touch("Archive", shared)
    box.delete("Archive", stored)
    box.expire_cursors()
    report = sync(store, provider)
    assert report.imported == 1
    assert stored_subjects(store) == ["Proposal 2"]


def test_skipped_events_are_judged_again(store: Store) -> None:
    """An event keeps its id when it changes: a reconcile fetches it."""
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    start = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    colleague = Attendee(Address("col@home.example", "col@home.example"))
    internal = Event("", "internal", start, start + timedelta(hours=1), attendees=(colleague,))
    item = calendar.put("work", (internal,))
    provider = FakeCalendarProvider(calendar)
    cal = Channel("cal", "u-owner", ChannelKind.CALENDAR, "fake", SETTINGS)
    assert sync(store, provider, cal).skipped == {Reason.INTERNAL: 1}
    client = Attendee(Address("ann@client.example", "ann@client.example"))
    calendar.put("work", (attrs.evolve(internal, attendees=(colleague, client)),), item_id=item)
    calendar.box.expire_cursors()
    assert sync(store, provider, cal).imported == 1
