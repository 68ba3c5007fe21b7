"""Channel states under failure: throttling, capped waits, providers that
cannot be built, wake-ups of channels that need the user, and leases that a
dead runner gives up quickly."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from commlink.errors import MAX_RETRY_AFTER, AuthError, RateLimited, TransientError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import ChannelStatus
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Backoff
from commlink.sync.runner import Runner
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def channel(cid: str = "ch") -> Channel:
    return Channel(cid, "u-owner", ChannelKind.MAIL, "fake", ChannelSettings(owner=OWNER))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> MemoryStore | SqlStore:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'states.sqlite'}")


def engine_for(store, clock: Clock, **kw: object) -> SyncEngine:
    kw.setdefault("backoff", Backoff(base=10, cap=100, jitter=False))
    return SyncEngine(store, InMemoryDirectory(), clock=clock, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hint", "wait"),
    [
        (1e11, MAX_RETRY_AFTER),
        (float("inf"), MAX_RETRY_AFTER),
        (float("nan"), MAX_RETRY_AFTER),
        (-5, 10.0),  # nonsense: the engine's own back-off
        (None, 10.0),
    ],
)
def test_retry_after_is_capped_and_non_finite_values_are_handled(store, hint, wait) -> None:
    clock = Clock()
    provider = FakeMailProvider()
    provider.faults.fail("folders", RateLimited("slow down", retry_after=hint))
    report = engine_for(store, clock).run(channel(), provider)
    state = store.channel_state("ch")
    assert state is not None
    assert report.status is ChannelStatus.THROTTLED
    assert state.status is ChannelStatus.THROTTLED
    assert state.next_attempt == NOW + timedelta(seconds=wait)


def test_throttling_never_makes_a_channel_failed(store) -> None:
    clock = Clock()
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    provider.faults.fail("folders", RateLimited("slow down", retry_after=60), times=10)
    engine = engine_for(store, clock, max_failures=3)
    for _ in range(10):
        engine.run(channel(), provider)
        clock.now += timedelta(minutes=2)
    state = store.channel_state("ch")
    assert state is not None
    assert state.status is ChannelStatus.THROTTLED
    assert state.failures == 0
    report = engine.run(channel(), provider)
    assert report.status is ChannelStatus.ACTIVE
    assert report.imported == 1


def test_auth_error_while_building_the_provider_is_failed_auth(store) -> None:
    clock = Clock()
    built: list[str] = []

    def connect(c: Channel) -> FakeMailProvider:
        built.append(c.id)
        raise AuthError("invalid_grant: token revoked")

    store.save_channel(channel())
    runner = Runner(engine_for(store, clock), connect, watch=False)
    reports = runner.run_once()
    assert [r.status for r in reports] == [ChannelStatus.FAILED_AUTH]
    state = store.channel_state("ch")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "invalid_grant" in state.last_error
    # neither time nor a wake-up brings it back: only the user can
    clock.now += timedelta(days=2)
    runner.wake("ch")
    assert runner.due() == []
    assert runner.run_once() == []
    assert built == ["ch"]


def test_other_errors_while_building_the_provider_back_off(store) -> None:
    clock = Clock()
    store.save_channel(channel())

    def connect(c: Channel) -> FakeMailProvider:
        raise TransientError("authority unreachable")

    runner = Runner(engine_for(store, clock), connect, watch=False)
    runner.run_once()
    state = store.channel_state("ch")
    assert state is not None
    assert state.failures == 1
    assert state.next_attempt == NOW + timedelta(seconds=10)
    assert runner.due() == []  # not queued again on every tick
    clock.now += timedelta(seconds=10)
    assert [c.id for c in runner.due()] == ["ch"]


def test_a_dead_runner_frees_the_channel_within_the_lease_time(store) -> None:
    clock = Clock()
    ttl = timedelta(seconds=60)
    # a runner that died mid-step left its lease behind
    assert store.acquire_lease("ch", "dead-runner", ttl)
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    engine = engine_for(store, clock, lease_ttl=ttl)
    busy = engine.run(channel(), provider)
    assert not busy.leased
    assert busy.busy_until == NOW + ttl
    assert "busy" in busy.summary()
    assert "free by 2026-11-26 12:01:00 UTC" in busy.summary()


def test_the_lease_is_renewed_while_a_slow_step_runs() -> None:
    store = MemoryStore()
    ttl = timedelta(seconds=0.3)
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1))
    original = provider.list_page
    rival_got_it: list[bool] = []

    def slow_listing(scope, page):  # type: ignore[no-untyped-def]
        time.sleep(ttl.total_seconds() * 2)  # longer than the lease
        rival_got_it.append(store.acquire_lease("ch", "rival", ttl))
        return original(scope, page)

    provider.list_page = slow_listing  # type: ignore[method-assign]
    engine = SyncEngine(store, InMemoryDirectory(), lease_ttl=ttl)
    report = engine.run(channel(), provider)
    assert rival_got_it
    assert not any(rival_got_it)
    assert report.imported == 1
    assert store.acquire_lease("ch", "rival", ttl)  # released at the end
