"""SyncEngine behaviour: passes, errors by kind, state, leases, progress."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest

from commlink.errors import AuthError, ConfigError, RateLimited, TransientError
from commlink.model import (
    Address,
    Attendee,
    Channel,
    ChannelKind,
    ChannelSettings,
    Event,
    EventStatus,
    Folder,
    FolderKind,
    FolderSelection,
    Visibility,
)
from commlink.records import (
    ChannelStatus,
    PageRequest,
    Reason,
    SyncStage,
    Target,
    TargetKind,
    Viewer,
    Window,
)
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Backoff, Progress
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider, FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def mail_channel(**settings: object) -> Channel:
    base = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel("ch", "u-owner", ChannelKind.MAIL, "fake", attrs.evolve(base, **settings))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def directory() -> InMemoryDirectory:
    d = InMemoryDirectory()
    d.add_company("co", "Client", ["client.example"])
    d.add_person("ann", "Ann Client", ["ann@client.example"], company_id="co")
    return d


def engine_for(store: MemoryStore, directory: InMemoryDirectory, **kw: object) -> SyncEngine:
    kw.setdefault("backoff", Backoff(base=10, cap=100, jitter=False))
    kw.setdefault("clock", lambda: NOW)
    return SyncEngine(store, directory, **kw)  # type: ignore[arg-type]


def company_subjects(store: MemoryStore) -> list[str]:
    page = store.timeline(
        Target(TargetKind.COMPANY, "co"), Viewer("u-owner"), PageRequest(limit=500)
    )
    return sorted(t.subject or "" for t in page.items)


def test_a_batch_size_below_one_is_a_config_error(store, directory) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        SyncEngine(store, directory, batch_size=0)


def test_first_sync_imports_and_marks_active(store, directory) -> None:
    provider = FakeMailProvider()
    for n in range(5):
        provider.box.add("INBOX", sample_message(n))
    report = engine_for(store, directory, batch_size=2).run(mail_channel(), provider)
    assert report.imported == 5
    assert report.complete
    state = store.channel_state("ch")
    assert state is not None
    assert state.status is ChannelStatus.ACTIVE
    assert state.stage is SyncStage.INCREMENTAL
    assert state.last_success == NOW
    assert len(company_subjects(store)) == 5


def test_quiet_pass_costs_one_changes_call_per_scope(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    engine = engine_for(store, directory)
    engine.run(mail_channel(), provider)
    provider.calls.clear()
    report = engine.run(mail_channel(), provider)
    assert report.imported == 0
    scopes = len(
        [f for f in provider.box.folders.values() if mail_channel().settings.folders.selects(f)]
    )
    assert provider.calls.count("changes") == scopes
    assert "fetch" not in provider.calls
    assert "list_page" not in provider.calls


def test_batch_budget_resumes_where_it_stopped(store, directory) -> None:
    provider = FakeMailProvider(page_size=2)
    for n in range(9):
        provider.box.add("INBOX", sample_message(n))
    engine = engine_for(store, directory, max_batches=2)
    first = engine.run(
        mail_channel(folders=FolderSelection(include=frozenset({"inbox"}))), provider
    )
    assert not first.complete
    assert store.channel_state("ch").status is ChannelStatus.ONGOING  # type: ignore[union-attr]
    fetched_before = provider.calls.count("fetch")
    engine.max_batches = None
    second = engine.run(
        mail_channel(folders=FolderSelection(include=frozenset({"inbox"}))), provider
    )
    assert second.complete
    assert first.imported + second.imported == 9
    # nothing fetched twice: the second run continued from the page token
    assert fetched_before == 2
    assert provider.calls.count("fetch") == 5  # 9 messages in pages of 2


def test_quiet_checks_do_not_use_up_the_batch_budget(store, directory) -> None:
    provider = FakeMailProvider()
    for n in range(6):
        provider.box.add_folder(Folder(f"Custom{n}", f"Custom {n}", FolderKind.CUSTOM))
        provider.box.add(f"Custom{n}", sample_message(n))
    engine = engine_for(store, directory)
    assert engine.run(mail_channel(), provider).complete
    engine.max_batches = 2  # fewer than the channel's scopes
    quiet = engine.run(mail_channel(), provider)
    assert quiet.complete
    assert quiet.imported == 0
    provider.box.add("Custom5", sample_message(9))
    assert engine.run(mail_channel(), provider).imported == 1


def test_progress_is_reported_per_batch(store, directory) -> None:
    provider = FakeMailProvider(page_size=2)
    for n in range(5):
        provider.box.add("INBOX", sample_message(n))
    seen: list[Progress] = []
    engine_for(store, directory, progress=seen.append).run(mail_channel(), provider)
    inbox = [p for p in seen if p.scope_id == "INBOX" and p.stage == "full"]
    assert [p.done for p in inbox] == [2, 4, 5]
    assert inbox[-1].imported == 5


def test_auth_error_needs_the_user(store, directory) -> None:
    provider = FakeMailProvider()
    provider.faults.fail("folders", AuthError("token revoked"))
    report = engine_for(store, directory).run(mail_channel(), provider)
    assert report.status is ChannelStatus.FAILED_AUTH
    state = store.channel_state("ch")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "token revoked" in state.last_error
    assert state.next_attempt is None


def test_rate_limit_backs_off_at_least_retry_after(store, directory) -> None:
    provider = FakeMailProvider()
    provider.faults.fail("folders", RateLimited("slow down", retry_after=500))
    engine_for(store, directory).run(mail_channel(), provider)
    state = store.channel_state("ch")
    assert state is not None
    assert state.status is ChannelStatus.THROTTLED
    assert state.failures == 0  # the provider's pace is not a failure
    assert state.next_attempt == NOW + timedelta(seconds=500)


def test_transient_failures_back_off_then_fail(store, directory) -> None:
    provider = FakeMailProvider()
    provider.faults.fail("folders", TransientError("down"), times=3)
    engine = engine_for(store, directory, max_failures=3)
    delays = []
    for _ in range(3):
        engine.run(mail_channel(), provider)
        state = store.channel_state("ch")
        assert state is not None
        delays.append(state.next_attempt - NOW)  # type: ignore[operator]
    assert delays == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
    assert state.status is ChannelStatus.FAILED
    assert state.last_error == "TransientError: down"
    engine.run(mail_channel(), provider)
    recovered = store.channel_state("ch")
    assert recovered is not None
    assert recovered.status is ChannelStatus.ACTIVE
    assert recovered.failures == 0


def test_expired_cursor_resync_reconciles(store, directory) -> None:
    provider = FakeMailProvider()
    ids = [provider.box.add("INBOX", sample_message(n)) for n in range(4)]
    engine = engine_for(store, directory)
    engine.run(mail_channel(), provider)
    provider.box.expire_cursors()
    provider.box.delete("INBOX", ids[0])
    provider.box.add("INBOX", sample_message(10))
    report = engine.run(mail_channel(), provider)
    assert report.resyncs == 3  # every folder's cursor expired
    assert report.errors == []
    assert company_subjects(store) == ["Proposal 1", "Proposal 10", "Proposal 2", "Proposal 3"]
    # already-stored messages were not fetched again
    assert report.fetched == 1


def test_deselected_folder_is_removed_and_reselected_is_imported(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    provider.box.add("Archive", sample_message(2))
    engine = engine_for(store, directory)
    engine.run(mail_channel(), provider)
    assert company_subjects(store) == ["Proposal 1", "Proposal 2"]
    engine.run(mail_channel(folders=FolderSelection(exclude=frozenset({"archive"}))), provider)
    assert company_subjects(store) == ["Proposal 1"]
    engine.run(mail_channel(), provider)
    assert company_subjects(store) == ["Proposal 1", "Proposal 2"]


def test_lease_held_elsewhere_skips_the_step(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    store.save_channel(mail_channel())
    assert store.acquire_lease("ch", "other-worker", timedelta(minutes=5))
    report = engine_for(store, directory).run(mail_channel(), provider)
    assert not report.leased
    assert provider.calls == []


def test_metadata_channel_never_downloads_bodies(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    engine_for(store, directory).run(mail_channel(visibility=Visibility.METADATA), provider)
    thread = store.timeline(Target(TargetKind.PERSON, "ann"), Viewer("u-owner")).items[0]
    view = store.thread(thread.thread_id, Viewer("u-owner"))
    assert view is not None
    assert view.messages[0].subject == "Proposal 1"
    assert view.messages[0].body is None


def test_unparseable_and_unfetchable_messages_are_skipped_with_reasons(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", b"\x00\xff garbage without headers")
    provider.box.add("INBOX", sample_message(2))
    report = engine_for(store, directory).run(mail_channel(), provider)
    assert report.errors == []
    assert company_subjects(store) == ["Proposal 2"]
    reasons = {s.reason for s in store.skips("ch", Viewer("u-owner"))}
    assert reasons <= {Reason.INVALID, Reason.ERROR}
    assert reasons


def test_calendar_sync_removes_cancelled_series(store, directory) -> None:
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    start = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    ann = Attendee(Address("ann@client.example", "ann@client.example", "Ann"))
    event = Event("", "uid-1", start, start + timedelta(hours=1), title="Review", attendees=(ann,))
    item = calendar.put("work", (event,))
    provider = FakeCalendarProvider(calendar)
    channel = Channel("cal", "u-owner", ChannelKind.CALENDAR, "fake", mail_channel().settings)
    engine = engine_for(store, directory)
    assert engine.run(channel, provider).imported == 1
    window = Window(start - timedelta(days=1), start + timedelta(days=1))
    target = Target(TargetKind.COMPANY, "co")
    assert [e.title for e in store.events(target, Viewer("u-owner"), window).items] == ["Review"]
    calendar.put("work", (attrs.evolve(event, status=EventStatus.CANCELLED),), item_id=item)
    engine.run(channel, provider)
    assert store.events(target, Viewer("u-owner"), window).items == ()


def test_folder_list_is_reused_within_its_ttl(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    engine = engine_for(store, directory, folder_ttl=timedelta(minutes=5))
    engine.run(mail_channel(), provider)
    provider.calls.clear()
    engine.run(mail_channel(), provider)
    assert "folders" not in provider.calls
    provider.box.expire_cursors()  # a resync lists the folders afresh next time
    engine.run(mail_channel(), provider)
    provider.calls.clear()
    engine.run(mail_channel(), provider)
    assert provider.calls.count("folders") == 1
