"""The local runner (due channels, wake-ups, reconnect) and relinking after CRM edits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from commlink.errors import AuthError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.ports import Scope
from commlink.records import ChannelState, ChannelStatus, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.relink import Relinker
from commlink.sync.runner import Runner
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def channel(cid: str = "ch", **settings: object) -> Channel:
    base = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel(cid, "u-owner", ChannelKind.MAIL, "fake", attrs.evolve(base, **settings))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup() -> tuple[MemoryStore, InMemoryDirectory, Clock]:
    directory = InMemoryDirectory()
    directory.add_person("ann", "Ann Client", ["ann@client.example"])
    return MemoryStore(), directory, Clock()


def test_runner_syncs_due_channels_and_waits_for_the_interval(setup) -> None:
    store, directory, clock = setup
    providers = {cid: FakeMailProvider() for cid in ("a", "b")}
    for n, provider in enumerate(providers.values()):
        provider.box.add("INBOX", sample_message(n))
    engine = SyncEngine(store, directory, clock=clock)
    for cid in providers:
        store.save_channel(channel(cid))
    runner = Runner(engine, lambda c: providers[c.id], interval=timedelta(minutes=5), watch=False)
    reports = runner.run_once()
    assert sorted(r.channel_id for r in reports) == ["a", "b"]
    assert runner.due() == []
    clock.now += timedelta(minutes=5)
    assert sorted(c.id for c in runner.due()) == ["a", "b"]


def test_failed_auth_waits_for_reconnect(setup) -> None:
    store, directory, clock = setup
    provider = FakeMailProvider()
    provider.faults.fail("folders", AuthError("revoked"))
    engine = SyncEngine(store, directory, clock=clock)
    store.save_channel(channel())
    runner = Runner(engine, lambda c: provider, watch=False)
    runner.run_once()
    assert store.channel_state("ch").status is ChannelStatus.FAILED_AUTH  # type: ignore[union-attr]
    clock.now += timedelta(days=1)
    assert runner.due() == []
    runner.reconnected("ch")
    assert [c.id for c in runner.due()] == ["ch"]
    runner.run_once()
    assert store.channel_state("ch").status is ChannelStatus.ACTIVE  # type: ignore[union-attr]


@attrs.define
class WatchingProvider(FakeMailProvider):
    """A fake whose watch() yields once per event set by the test."""

    news: threading.Event = attrs.field(factory=threading.Event)
    closed: threading.Event = attrs.field(factory=threading.Event)

    def watch(self, scope: Scope):  # type: ignore[no-untyped-def]
        @contextmanager
        def watching() -> Iterator[Iterator[None]]:
            def events() -> Iterator[None]:
                while not self.closed.is_set():
                    if self.news.wait(0.05):
                        self.news.clear()
                        yield None

            yield events()

        return watching()


def test_watch_wakes_the_channel(setup) -> None:
    store, directory, clock = setup
    provider = WatchingProvider()
    engine = SyncEngine(store, directory, clock=clock)
    store.save_channel(channel())
    runner = Runner(engine, lambda c: provider, interval=timedelta(hours=1))
    runner.run_once()
    assert runner.hub.states() == {}  # a one-shot pass leaves no watcher behind
    runner.hub.ensure(channel())  # what serve() does for every channel
    assert runner.due() == []
    provider.box.add("INBOX", sample_message(1))
    provider.news.set()
    for _ in range(100):
        if runner.due():
            break
        threading.Event().wait(0.02)
    assert [c.id for c in runner.due()] == ["ch"]
    reports = runner.run_once()
    assert reports[0].imported == 1
    provider.closed.set()
    runner.stop()


def test_relink_after_person_changes_and_deletion(setup) -> None:
    store, directory, clock = setup
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1, sender="bea@newco.example"))
    engine = SyncEngine(store, directory, clock=clock)
    engine.run(channel(), provider)
    target = Target(TargetKind.PERSON, "ann")
    assert store.timeline(target, Viewer("u-owner")).items == ()
    # the CRM learns that Ann also writes from bea@newco.example
    directory.set_person_addresses("ann", ["ann@client.example", "bea@newco.example"])
    relinker = Relinker(store, directory)
    assert relinker.person_changed("ann", ["bea@newco.example"]) == 1
    assert len(store.timeline(target, Viewer("u-owner")).items) == 1
    directory.delete_person("ann")
    relinker.person_deleted("ann")
    assert store.timeline(target, Viewer("u-owner")).items == ()


def test_company_domains_change_relinks(setup) -> None:
    store, directory, clock = setup
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1, sender="bea@newco.example"))
    SyncEngine(store, directory, clock=clock).run(channel(), provider)
    directory.add_company("newco", "NewCo", ["newco.example"])
    Relinker(store, directory).company_changed("newco", ["newco.example"])
    company = Target(TargetKind.COMPANY, "newco")
    assert len(store.timeline(company, Viewer("u-owner")).items) == 1


def test_blocklist_added_removes_and_removed_lets_back(setup) -> None:
    store, directory, clock = setup
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    engine = SyncEngine(store, directory, clock=clock)
    engine.run(channel(), provider)
    person = Target(TargetKind.PERSON, "ann")
    assert len(store.timeline(person, Viewer("u-owner")).items) == 1
    blocked = channel(blocklist=frozenset({"@client.example"}))
    relinker = Relinker(store, directory)
    assert relinker.blocklist_changed(engine, blocked, added=["@client.example"]) == 1
    assert store.timeline(person, Viewer("u-owner")).items == ()
    engine.run(blocked, provider)
    assert store.timeline(person, Viewer("u-owner")).items == ()
    relinker.blocklist_changed(engine, channel(), removed=["@client.example"])
    engine.run(channel(), provider)
    assert len(store.timeline(person, Viewer("u-owner")).items) == 1


class _StatesAtOnce(MemoryStore):
    """A store whose per-channel state read must not be used for dispatch."""

    def channel_state(self, channel_id: str) -> ChannelState | None:
        raise AssertionError("states were read one channel at a time")


def test_due_reads_every_state_at_once(setup, tmp_path) -> None:
    _, directory, clock = setup
    for store in (_StatesAtOnce(), SqlStore(f"sqlite:///{tmp_path / 'states.sqlite'}")):
        for cid in ("fresh", "done", "failing", "retry"):
            store.save_channel(channel(cid))
        store.save_channel_state(ChannelState("done", ChannelStatus.ACTIVE, last_success=NOW))
        store.save_channel_state(ChannelState("failing", ChannelStatus.FAILED_AUTH))
        store.save_channel_state(
            ChannelState("retry", ChannelStatus.FAILED, next_attempt=NOW - timedelta(seconds=1))
        )
        engine = SyncEngine(store, directory, clock=clock)
        runner = Runner(engine, lambda c: FakeMailProvider(), watch=False)
        assert sorted(c.id for c in runner.due()) == ["fresh", "retry"]
        if isinstance(store, SqlStore):
            states = store.channel_states()
            assert states == {cid: store.channel_state(cid) for cid in ("done", "failing", "retry")}
            store.close()
