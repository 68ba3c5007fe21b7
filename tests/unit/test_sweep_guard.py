"""No silent mass deletion: an empty folder or calendar listing, a sweep or a
drop of vanished folders that would remove more than ``max_sweep_share`` of a
channel is refused, recorded, and deletes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

from commlink.errors import ConfigError, SweepRefused
from commlink.mime.parse import parse_message
from commlink.model import (
    Address,
    Attendee,
    Channel,
    ChannelKind,
    ChannelSettings,
    Direction,
    Event,
    Folder,
    FolderKind,
    FolderSelection,
)
from commlink.ports import AssociationCounter
from commlink.records import ChannelStatus, EventRecord, MessageRecord, SyncBatch
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import MAX_SWEEP_SHARE, SWEEP_ALLOWANCE, SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider, FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

MAIL = Channel(
    "ch",
    "u-owner",
    ChannelKind.MAIL,
    "fake",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)
CALENDAR = attrs.evolve(MAIL, id="cal", kind=ChannelKind.CALENDAR)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore | SqlStore:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'guard.sqlite'}")


def _engine(store: MemoryStore | SqlStore, **options: object) -> SyncEngine:
    return SyncEngine(store, InMemoryDirectory(), **options)  # type: ignore[arg-type]


def _mailbox(counts: dict[str, int]) -> FakeMailProvider:
    provider = FakeMailProvider()
    n = 0
    for folder, count in counts.items():
        if folder not in provider.box.folders:
            provider.box.add_folder(Folder(folder, folder, FolderKind.CUSTOM))
        for _ in range(count):
            n += 1
            provider.box.add(folder, sample_message(n))
    return provider


def _held(store: MemoryStore | SqlStore, scope: str | None = None) -> int:
    return store.count_associations(MAIL.id, scope, kind=ChannelKind.MAIL)


def _synced(store: MemoryStore | SqlStore, counts: dict[str, int]) -> FakeMailProvider:
    provider = _mailbox(counts)
    report = _engine(store).run(MAIL, provider)
    assert report.errors == []
    assert _held(store) == sum(counts.values())
    return provider


def _drop(provider: FakeMailProvider, folder: str, count: int) -> None:
    """Delete ``count`` messages behind the engine's back and expire the cursors,
    so that the next step reconciles by a full pass and a sweep."""
    for item_id in sorted(provider.box.items[folder])[:count]:
        provider.box.delete(folder, item_id)
    provider.box.expire_cursors()


def test_the_built_in_stores_count(store: MemoryStore | SqlStore) -> None:
    assert isinstance(store, AssociationCounter)
    store.save_channel(MAIL)
    start = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    event = Event("inv-1", "uid-1", start, start + timedelta(hours=1), "Review")
    message = parse_message(sample_message(1), provider_id="m-1")
    store.commit(
        SyncBatch(
            MAIL.id,
            "INBOX",
            messages=(MessageRecord(message, "t-1", Direction.INCOMING),),
            events=(EventRecord(event),),
            generation=1,
        )
    )
    assert store.count_associations(MAIL.id) == 2
    assert store.count_associations(MAIL.id, "INBOX", kind=ChannelKind.MAIL) == 1
    assert store.count_associations(MAIL.id, kind=ChannelKind.CALENDAR) == 1
    assert store.count_associations(MAIL.id, "Other") == 0
    assert store.count_associations("another") == 0


def test_a_listing_of_no_folders_is_refused(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 3})
    provider.box.folders.clear()
    report = _engine(store).run(MAIL, provider)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("SweepRefused: the provider listed no folders at all")
    assert report.deleted == 0
    state = store.channel_state(MAIL.id)
    assert state is not None
    assert state.last_error.startswith("SweepRefused")
    assert state.failures == 1
    assert _held(store) == 3
    assert store.scope_ids(MAIL.id)


def test_a_listing_of_no_calendars_is_refused(store: MemoryStore | SqlStore) -> None:
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    start = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    ann = Attendee(Address("ann@client.example", "ann@client.example", "Ann"))
    for n in range(2):
        end = start + timedelta(hours=1)
        calendar.put("work", (Event("", f"e{n}", start, end, "Meeting", attendees=(ann,)),))
    provider = FakeCalendarProvider(calendar)
    engine = _engine(store)
    assert engine.run(CALENDAR, provider).errors == []
    assert store.count_associations(CALENDAR.id) == 2
    calendar.box.folders.clear()
    report = engine.run(CALENDAR, provider)
    assert report.errors[0].startswith("SweepRefused: the provider listed no calendars at all")
    assert store.count_associations(CALENDAR.id) == 2


def test_a_sweep_of_more_than_the_share_is_refused_until_accepted(
    store: MemoryStore | SqlStore,
) -> None:
    provider = _synced(store, {"INBOX": 30})
    _drop(provider, "INBOX", 25)
    for _ in range(2):  # the listing stays short: refused every time
        report = _engine(store).run(MAIL, provider)
        assert len(report.errors) == 1
        assert "SweepRefused" in report.errors[0]
        assert "would remove 25 of the 30 ids" in report.errors[0]
        assert _held(store) == 30
    state = store.channel_state(MAIL.id)
    assert state is not None
    assert state.failures == 2
    accepted = _engine(store, max_sweep_share=None).run(MAIL, provider)
    assert accepted.errors == []
    assert accepted.deleted == 25
    assert _held(store) == 5
    assert _engine(store).run(MAIL, provider).errors == []


def test_a_sweep_within_the_share_goes_ahead(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 40})
    _drop(provider, "INBOX", 20)  # exactly half: allowed
    report = _engine(store).run(MAIL, provider)
    assert report.errors == []
    assert report.deleted == 20
    assert _held(store) == 20


def test_small_sweeps_are_always_allowed(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": SWEEP_ALLOWANCE + 1})
    _drop(provider, "INBOX", SWEEP_ALLOWANCE)
    report = _engine(store).run(MAIL, provider)
    assert report.errors == []
    assert _held(store) == 1


def test_the_share_and_allowance_are_settings(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 12})
    _drop(provider, "INBOX", 4)
    refused = _engine(store, max_sweep_share=0.2, sweep_allowance=0).run(MAIL, provider)
    assert "SweepRefused" in refused.errors[0]
    assert _held(store) == 12
    assert _engine(store, max_sweep_share=0.4, sweep_allowance=0).run(MAIL, provider).errors == []
    assert _held(store) == 8


def test_folders_gone_with_most_of_the_channel_are_kept(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 2, "Projects": 30})
    del provider.box.folders["Projects"]  # no longer listed: deleted, or a listing glitch
    provider.box.add("INBOX", sample_message(99))
    report = _engine(store).run(MAIL, provider)
    assert "SweepRefused: dropping 1 scope(s) no longer listed (Projects)" in report.errors[0]
    assert _held(store, "Projects") == 30
    assert _held(store, "INBOX") == 3  # the rest of the channel synced all the same


def test_a_renamed_folder_is_dropped_once_its_new_name_is_in(
    store: MemoryStore | SqlStore,
) -> None:
    provider = _synced(store, {"INBOX": 2, "Projects": 30})
    provider.box.add_folder(Folder("Clients", "Clients", FolderKind.CUSTOM))
    for item_id in sorted(provider.box.items["Projects"]):
        provider.box.move(item_id, "Projects", "Clients")
    provider.box.remove_folder("Projects")
    report = _engine(store).run(MAIL, provider)
    assert report.errors == []
    assert report.deleted == 30
    assert "Projects" not in store.scope_ids(MAIL.id)
    assert _held(store, "Clients") == 30


def test_deselected_folders_are_dropped_at_once(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 2, "Projects": 30})
    only_inbox = attrs.evolve(
        MAIL,
        settings=attrs.evolve(MAIL.settings, folders=FolderSelection(include=frozenset({"inbox"}))),
    )
    report = _engine(store).run(only_inbox, provider)
    assert report.errors == []
    assert report.deleted == 30
    assert store.scope_ids(MAIL.id) == ["INBOX"]


def test_refused_steps_end_failed_after_max_failures(store: MemoryStore | SqlStore) -> None:
    provider = _synced(store, {"INBOX": 3})
    provider.box.folders.clear()
    engine = _engine(store, max_failures=2)
    engine.run(MAIL, provider)
    engine.run(MAIL, provider)
    state = store.channel_state(MAIL.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED
    assert _held(store) == 3


def test_settings_are_checked() -> None:
    store = MemoryStore()
    assert MAX_SWEEP_SHARE == 0.5
    with pytest.raises(ConfigError, match="max_sweep_share"):
        _engine(store, max_sweep_share=1.5)
    with pytest.raises(ConfigError, match="sweep_allowance"):
        _engine(store, sweep_allowance=-1)


def test_the_error_carries_the_counts() -> None:
    error = SweepRefused("too much", would_remove=7, held=9)
    assert (error.would_remove, error.held) == (7, 9)
