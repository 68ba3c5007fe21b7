"""``WatchHub`` with the testing fakes: which channels are watched, the cap on
``watch(scope)`` threads, restarts with back-off, duties, and stopping."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta

import attrs

from commlink.errors import AuthError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.ports import Scope
from commlink.records import ChannelState, ChannelStatus
from commlink.stores.memory import MemoryStore
from commlink.sync.watch_hub import Backoff, PeriodicDuty, WatchHub, watchable
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER

FAST = Backoff(first=0.05, most=0.2, healthy=60)


def channel(cid: str = "ch") -> Channel:
    return Channel(cid, "u-owner", ChannelKind.MAIL, "fake", ChannelSettings(owner=OWNER))


@attrs.define
class PushingProvider(FakeMailProvider):
    """A fake whose ``watch(scope)`` yields each time the test puts the scope
    in ``news``; ``ending`` makes every watch end at once."""

    news: queue.Queue[str] = attrs.field(factory=queue.Queue)
    watched: list[str] = attrs.field(factory=list)
    ending: bool = False
    stop: threading.Event = attrs.field(factory=threading.Event)

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        self.watched.append(scope.id)

        @contextmanager
        def watching() -> Iterator[Iterator[None]]:
            def events() -> Iterator[None]:
                while not self.ending and not self.stop.is_set():
                    try:
                        changed = self.news.get(timeout=0.02)
                    except queue.Empty:
                        continue
                    if changed == scope.id:
                        yield None
                    else:
                        self.news.put(changed)  # another scope's thread takes it

            yield events()

        return watching()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_watchable_leaves_out_channels_that_need_the_user() -> None:
    store = MemoryStore()
    for cid in ("ok", "auth", "failing"):
        store.save_channel(channel(cid))
    store.save_channel_state(ChannelState("auth", ChannelStatus.FAILED_AUTH))
    store.save_channel_state(ChannelState("failing", ChannelStatus.FAILED))
    assert sorted(c.id for c in watchable(store)) == ["failing", "ok"]


def test_watch_threads_are_capped_inbox_and_sent_first() -> None:
    provider = PushingProvider()
    woken: queue.Queue[str] = queue.Queue()
    hub = WatchHub(lambda c: provider, woken.put, max_watch_threads=2, wake_on_start=False)
    hub.watch([channel()])
    try:
        assert _wait_for(lambda: hub.states() == {"ch": "watching"})
        assert sorted(provider.watched) == ["INBOX", "Sent"]
        provider.news.put("Sent")
        assert woken.get(timeout=2) == "ch"
    finally:
        provider.stop.set()
        hub.stop()
    assert hub.states() == {}


def test_a_watch_that_ends_starts_again_and_catches_up() -> None:
    provider = PushingProvider(ending=True)
    connects: list[float] = []

    def connect(c: Channel) -> FakeMailProvider:
        connects.append(time.monotonic())
        return provider

    woken: list[str] = []
    hub = WatchHub(connect, woken.append, backoff=FAST, wake_on_start=False)
    hub.watch([channel()])
    try:
        assert _wait_for(lambda: len(connects) >= 4)
    finally:
        hub.stop()
    gaps = [b - a for a, b in itertools.pairwise(connects)]
    assert all(gap >= 0.02 for gap in gaps)  # a back-off between attempts
    assert len(woken) >= 2  # each restart wakes the channel (the first start does not)
    assert set(woken) == {"ch"}


def test_refused_credentials_wait_the_longest_back_off() -> None:
    attempts: list[float] = []

    def connect(c: Channel) -> FakeMailProvider:
        attempts.append(time.monotonic())
        raise AuthError("refused")

    hub = WatchHub(connect, lambda cid: None, backoff=Backoff(first=0.01, most=0.5))
    hub.watch([channel()])
    try:
        assert _wait_for(lambda: hub.states() == {"ch": "waiting"})
        time.sleep(0.2)
        assert len(attempts) == 1
    finally:
        hub.stop()


def test_removed_and_changed_channels_are_dropped_or_restarted() -> None:
    providers: list[PushingProvider] = []

    def connect(c: Channel) -> FakeMailProvider:
        providers.append(PushingProvider())
        return providers[-1]

    hub = WatchHub(connect, lambda cid: None)
    hub.watch([channel("a"), channel("b")])
    try:
        assert _wait_for(lambda: set(hub.states().values()) == {"watching"})
        assert sorted(hub.states()) == ["a", "b"]
        changed = attrs.evolve(channel("a"), settings=ChannelSettings(owner="x@home.example"))
        hub.watch([changed])
        assert sorted(hub.states()) == ["a"]
        assert _wait_for(lambda: len(providers) == 3)
    finally:
        for provider in providers:
            provider.stop.set()
        hub.stop()


def test_duties_run_when_due() -> None:
    now = [100.0]
    runs: list[float] = []
    hub = WatchHub(
        lambda c: FakeMailProvider(),
        lambda cid: None,
        duties=[PeriodicDuty("renew", timedelta(seconds=10), lambda: runs.append(now[0]))],
        clock=lambda: now[0],
    )
    broken = PeriodicDuty("broken", timedelta(seconds=1), lambda: 1 / 0)
    hub.duties.append(broken)
    for moment in (100.0, 105.0, 110.0, 111.0, 125.0):
        now[0] = moment
        hub.tick([])
    assert runs == [100.0, 110.0, 125.0]
    assert broken.last == 125.0  # a failing duty is tried again at its next turn
