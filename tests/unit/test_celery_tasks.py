"""commlink.contrib.celery in one process: queue markers, leases, continuation, retries.

The app uses Celery's in-memory broker; tasks are run with ``apply()`` and
what they enqueue is read back from the broker. The worker test
(tests/integration/celery) runs the same tasks on real workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery

from commlink.contrib.celery import CommlinkTasks, install, queue_marker
from commlink.errors import AuthError, ConfigError, StoreError, TransientError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import ChannelState, ChannelStatus, Viewer
from commlink.stores.memory import MemoryStore
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TTL = timedelta(minutes=2)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class FlakyStore(MemoryStore):
    """A MemoryStore that loses its connection for the next ``outage``
    writes (a commit, then the engine releasing its lease), and records
    which leases were released."""

    outage = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.released: list[str] = []

    def _down(self) -> None:
        if self.outage:
            self.outage -= 1
            raise StoreError("connection lost")

    def commit(self, batch: Any) -> None:
        self._down()
        super().commit(batch)

    def release_lease(self, channel_id: str, holder: str) -> None:
        self._down()
        self.released.append(channel_id)
        super().release_lease(channel_id, holder)


def channel(channel_id: str) -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel(channel_id, "u-owner", ChannelKind.MAIL, "fake", settings)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> FlakyStore:
    found = FlakyStore(clock=clock)
    for channel_id in ("a", "b"):
        found.save_channel(channel(channel_id))
    return found


@pytest.fixture
def providers() -> dict[str, FakeMailProvider]:
    made: dict[str, FakeMailProvider] = {}
    for channel_id in ("a", "b"):
        provider = made[channel_id] = FakeMailProvider(page_size=2)
        for n in range(5):
            provider.box.add("INBOX", sample_message(n + (100 if channel_id == "b" else 0)))
    return made


@pytest.fixture
def app() -> Iterator[Celery]:
    celery = Celery("commlink_unit", broker="memory://", set_as_current=False)
    # the in-memory broker is shared by the whole process: one queue per test
    celery.conf.task_default_queue = f"commlink-unit-{uuid.uuid4().hex}"
    yield celery
    celery.close()


def installed(
    app: Celery,
    store: FlakyStore,
    providers: dict[str, FakeMailProvider],
    clock: Clock,
    **options: Any,
) -> CommlinkTasks:
    """commlink's tasks on ``app``, over the test's store, providers and clock."""
    return install(
        app,
        store_factory=lambda: store,
        provider_factory=lambda c: providers[c.id],
        directory_factory=lambda _store: InMemoryDirectory(),
        lease_ttl=TTL,
        clock=clock,
        **options,
    )


@pytest.fixture
def tasks(
    app: Celery, store: FlakyStore, providers: dict[str, FakeMailProvider], clock: Clock
) -> CommlinkTasks:
    return installed(app, store, providers, clock, batch_size=2, max_batches=2)


def queued(app: Celery) -> list[tuple[str, dict[str, Any]]]:
    """(channel id, kwargs) of every sync_channel message waiting in the broker."""
    found = []
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue(app.conf.task_default_queue)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            args, kwargs, _ = message.decode()
            found.append((args[0], kwargs))
            message.ack()
        queue.close()
    return found


def run_queued(tasks: CommlinkTasks, app: Celery) -> list[dict[str, Any]]:
    """Run what is queued (and what that queues) until the broker is empty."""
    results = []
    while waiting := queued(app):
        for channel_id, kwargs in waiting:
            results.append(tasks.sync_channel.apply(args=(channel_id,), kwargs=kwargs).get())
    return results


def test_dispatch_queues_each_due_channel_once(tasks: CommlinkTasks, app: Celery) -> None:
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 2, "requeued": 0}
    # queued and not yet started: a second dispatch adds nothing
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 0, "requeued": 0}
    waiting = queued(app)
    assert sorted(c for c, _ in waiting) == ["a", "b"]
    assert all(kw["token"] for _, kw in waiting)


def test_long_import_continues_in_new_tasks_until_active(
    tasks: CommlinkTasks, app: Celery, store: FlakyStore
) -> None:
    tasks.dispatch.apply()
    results = run_queued(tasks, app)
    # 5 messages in pages of 2 (3 pages), two batches per task: two tasks at least
    assert sum(1 for r in results if r["channel_id"] == "a") >= 2
    assert [r["continued"] for r in results if r["channel_id"] == "a"][-1] is False
    for channel_id in ("a", "b"):
        state = store.channel_state(channel_id)
        assert state is not None
        assert state.status is ChannelStatus.ACTIVE
    assert sum(r["imported"] for r in results) == 10
    # nothing left held: markers and sync leases are released
    assert store.acquire_lease(queue_marker("a"), "probe", TTL)
    assert store.acquire_lease("a", "probe", TTL)
    # caught up and not due yet: nothing to dispatch
    assert tasks.dispatch.apply().get() == {"due": 0, "queued": 0, "requeued": 0}


def test_busy_lease_returns_at_once_and_keeps_the_marker(
    tasks: CommlinkTasks, app: Celery, store: FlakyStore, clock: Clock
) -> None:
    assert store.acquire_lease("a", "another-worker", TTL)
    tasks.dispatch.apply()
    results = run_queued(tasks, app)
    # a's only task found the lease busy and returned; b was imported meanwhile
    assert [r["leased"] for r in results if r["channel_id"] == "a"] == [False]
    assert sum(r["imported"] for r in results if r["channel_id"] == "b") == 5
    # a's queue marker stays until it expires, so dispatch does not queue a again
    # while the lease is busy
    assert tasks.dispatch.apply().get() == {"due": 1, "queued": 0, "requeued": 0}
    # the other worker dies: once its lease expires, dispatch hands the channel on
    clock.now += TTL + timedelta(seconds=1)
    assert tasks.dispatch.apply().get()["queued"] >= 1
    run_queued(tasks, app)
    state = store.channel_state("a")
    assert state is not None
    assert state.status is ChannelStatus.ACTIVE


def test_a_redelivered_task_is_harmless(tasks: CommlinkTasks, app: Celery) -> None:
    tasks.dispatch.apply()
    waiting = queued(app)
    first = [tasks.sync_channel.apply(args=(c,), kwargs=kw).get() for c, kw in waiting]
    # the same messages delivered again (a worker lost before its ack)
    again = [tasks.sync_channel.apply(args=(c,), kwargs=kw).get() for c, kw in waiting]
    assert sum(r["imported"] for r in first) > 0
    assert all(not r["errors"] for r in again)
    run_queued(tasks, app)
    store = tasks.resources().store
    assert isinstance(store, MemoryStore)
    assert len(store.skips("a", Viewer("u-owner"))) == 0


def test_store_failure_escaping_the_engine_is_retried(
    tasks: CommlinkTasks, app: Celery, store: FlakyStore
) -> None:
    tasks.dispatch.apply()
    waiting = dict(queued(app))
    # the connection drops during a commit and is still down when the engine
    # releases its lease: the task fails and Celery retries it (in place here)
    store.outage = 2
    result = tasks.sync_channel.apply(args=("a",), kwargs=waiting["a"])
    summary = result.get()
    assert summary["leased"] is True
    assert not summary["errors"]
    assert summary["imported"] > 0
    # the failed attempt kept the queue marker for its retry; the retry took
    # its own unexpired lease back at once and released both at the end
    assert store.released.count(queue_marker("a")) <= 1
    assert "a" in store.released


def test_provider_failure_is_left_to_the_engine_back_off(
    tasks: CommlinkTasks,
    app: Celery,
    store: FlakyStore,
    providers: dict[str, FakeMailProvider],
    clock: Clock,
) -> None:
    providers["a"].faults.fail("list_page", TransientError("server busy"))
    tasks.dispatch.apply()
    results = run_queued(tasks, app)
    assert [r["errors"] for r in results if r["channel_id"] == "a"] == [
        ["TransientError: server busy"]
    ]
    state = store.channel_state("a")
    assert state is not None
    assert state.failures == 1
    assert state.next_attempt is not None
    # not due before the back-off has passed; queued again after it
    assert tasks.dispatch.apply().get()["queued"] == 0
    clock.now = state.next_attempt + timedelta(seconds=1)
    assert tasks.dispatch.apply().get()["queued"] == 1
    run_queued(tasks, app)
    state = store.channel_state("a")
    assert state == ChannelState(
        "a",
        ChannelStatus.ACTIVE,
        state.stage,
        0,
        "",
        None,
        clock.now,
    )


def test_a_factory_auth_error_is_failed_auth_and_never_queued_again(
    app: Celery, store: FlakyStore, providers: dict[str, FakeMailProvider], clock: Clock
) -> None:
    def factory(channel: Channel) -> FakeMailProvider:
        if channel.id == "a":
            raise AuthError("invalid_grant")
        return providers[channel.id]

    tasks = install(
        app,
        store_factory=lambda: store,
        provider_factory=factory,
        directory_factory=lambda _store: InMemoryDirectory(),
        lease_ttl=TTL,
        batch_size=2,
        max_batches=2,
        clock=clock,
    )
    tasks.dispatch.apply()
    run_queued(tasks, app)
    state = store.channel_state("a")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    for _ in range(3):
        clock.now += timedelta(hours=1)
        tasks.dispatch.apply()
        assert [cid for cid, _ in queued(app)] in ([], ["b"])
    assert store.channel_state("a").status is ChannelStatus.FAILED_AUTH  # type: ignore[union-attr]


def test_missing_channel_and_beat_schedule(tasks: CommlinkTasks) -> None:
    assert tasks.sync_channel.apply(args=("gone",)).get()["status"] == "missing"
    schedule = tasks.beat_schedule(timedelta(seconds=20))
    assert schedule == {
        "commlink.dispatch": {
            "task": "commlink.dispatch",
            "schedule": 20.0,
            "options": {"expires": 20.0},
        }
    }


def test_enqueue_is_refused_while_queued(tasks: CommlinkTasks, app: Celery) -> None:
    assert tasks.enqueue("a")
    assert not tasks.enqueue("a")
    assert not tasks.enqueue("nope")
    assert [c for c, _ in queued(app)] == ["a"]


def test_a_message_that_outlived_its_marker_leaves_the_channel_to_the_newer_one(
    tasks: CommlinkTasks, app: Celery, store: FlakyStore, clock: Clock
) -> None:
    assert tasks.enqueue("a")
    (_, stale), *_ = queued(app)
    clock.now += timedelta(hours=2)  # the marker (queue_ttl: 1 hour) expired in the queue
    assert tasks.enqueue("a")
    (_, fresh), *_ = queued(app)
    assert stale["token"] != fresh["token"]
    old = tasks.sync_channel.apply(args=("a",), kwargs=stale).get()
    assert old["imported"] > 0
    assert old["continued"] is False  # the newer message carries the import on
    assert queued(app) == []
    assert not store.acquire_lease(queue_marker("a"), "probe", TTL)  # still the newer one's
    results = [tasks.sync_channel.apply(args=("a",), kwargs=fresh).get(), *run_queued(tasks, app)]
    assert results[-1]["status"] == "active"


def test_a_lost_task_message_is_queued_again_once_its_queue_is_empty(
    tasks: CommlinkTasks, app: Celery, store: FlakyStore, clock: Clock
) -> None:
    tasks.dispatch.apply()
    lost = dict(queued(app))  # taken off the queue and never run: the broker lost them
    assert sorted(lost) == ["a", "b"]
    clock.now += timedelta(minutes=1)
    # the queue is empty, but a worker may still hold a message it reserved
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 0, "requeued": 0}
    clock.now += timedelta(minutes=1, seconds=1)  # past requeue_after (2 minutes)
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 2, "requeued": 2}
    fresh = dict(queued(app))
    assert sorted(fresh) == ["a", "b"]
    assert all(fresh[c]["token"] != lost[c]["token"] for c in fresh)
    # a lost message that turns up after all runs a harmless extra step, and
    # leaves the channel's continuation to the new one
    late = tasks.sync_channel.apply(args=("a",), kwargs=lost["a"]).get()
    assert late["leased"]
    assert late["continued"] is False
    assert not store.acquire_lease(queue_marker("a"), "probe", TTL)  # the new message's
    results = [tasks.sync_channel.apply(args=(c,), kwargs=kw).get() for c, kw in fresh.items()]
    results += run_queued(tasks, app)
    assert {r["channel_id"]: r["status"] for r in results} == {"a": "active", "b": "active"}


def test_a_message_waiting_in_its_queue_is_not_queued_again(
    tasks: CommlinkTasks, app: Celery, clock: Clock
) -> None:
    tasks.dispatch.apply()
    clock.now += timedelta(minutes=30)  # a long queue: still there, still waiting
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 0, "requeued": 0}
    assert sorted(c for c, _ in queued(app)) == ["a", "b"]


def test_each_channel_is_judged_by_its_own_queue(
    app: Celery, store: FlakyStore, providers: dict[str, FakeMailProvider], clock: Clock
) -> None:
    slow = f"{app.conf.task_default_queue}-slow"
    tasks = installed(
        app, store, providers, clock, queue_for=lambda c: slow if c.id == "b" else None
    )
    tasks.dispatch.apply()
    assert [c for c, _ in queued(app)] == ["a"]  # lost; b's message waits in its queue
    clock.now += timedelta(minutes=5)
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 1, "requeued": 1}
    assert [c for c, _ in queued(app)] == ["a"]
    with app.connection_for_write() as conn:
        waiting = conn.SimpleQueue(slow)
        assert len(waiting) == 1
        waiting.clear()
        waiting.close()


def test_a_running_task_keeps_its_marker(
    app: Celery, store: FlakyStore, providers: dict[str, FakeMailProvider], clock: Clock
) -> None:
    tasks = installed(app, store, providers, clock, requeue_after=timedelta(seconds=10))
    assert tasks.claim("a") is not None  # a task under way holds the marker for lease_ttl
    clock.now += timedelta(seconds=30)
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 1, "requeued": 0}
    assert [c for c, _ in queued(app)] == ["b"]


@pytest.mark.parametrize("why", ["switched off", "broker unreachable"])
def test_without_requeue_a_lost_message_waits_for_queue_ttl(
    app: Celery,
    store: FlakyStore,
    providers: dict[str, FakeMailProvider],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    why: str,
) -> None:
    tasks = installed(
        app,
        store,
        providers,
        clock,
        requeue_after=None if why == "switched off" else timedelta(minutes=2),
    )
    tasks.dispatch.apply()
    queued(app)  # lost
    if why == "broker unreachable":

        def refused(*_args: Any, **_kwargs: Any) -> Any:
            raise ConnectionRefusedError("no broker")

        monkeypatch.setattr(app, "connection_for_read", refused)
    clock.now += timedelta(minutes=59)
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 0, "requeued": 0}
    clock.now += timedelta(minutes=1, seconds=1)  # queue_ttl: the markers expired
    assert tasks.dispatch.apply().get() == {"due": 2, "queued": 2, "requeued": 0}


def test_requeue_after_must_be_positive(app: Celery, store: FlakyStore, clock: Clock) -> None:
    with pytest.raises(ConfigError, match="requeue_after"):
        installed(app, store, {}, clock, requeue_after=timedelta(0))


def test_a_worker_process_reuses_folder_lists_between_tasks(
    tasks: CommlinkTasks, app: Celery, providers: dict[str, FakeMailProvider], clock: Clock
) -> None:
    tasks.dispatch.apply()
    run_queued(tasks, app)
    listed = providers["a"].calls.count("folders")
    assert listed == 1  # once for the whole import, across its tasks
    clock.now += timedelta(minutes=6)  # due again
    providers["a"].box.add("INBOX", sample_message(50))
    tasks.dispatch.apply()
    results = run_queued(tasks, app)
    assert sum(r["imported"] for r in results if r["channel_id"] == "a") == 1
    assert providers["a"].calls.count("folders") == listed
