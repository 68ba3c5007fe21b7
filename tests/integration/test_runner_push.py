"""The Runner's push wake-ups on a real Dovecot: a channel that is up to date
when ``serve()`` starts is watched at once (no wait for a first sync), in
every selected folder, so new mail is stored within seconds although the
polling interval is an hour."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.runner import Runner
from commlink.sync.watch_hub import PeriodicDuty
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount
from commlink.testing.provider_conformance import OWNER, sample_message

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "push-runner",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _stored(store: MemoryStore, held: int) -> Callable[[], bool]:
    return lambda: store.count_associations(CHANNEL.id) == held


def test_runner_wakes_an_up_to_date_channel_at_start(dovecot_account: DovecotAccount) -> None:
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    store.save_channel(CHANNEL)
    dovecot_account.add("INBOX", sample_message(1))
    connect = lambda channel: dovecot_account.new_provider()  # noqa: E731
    assert Runner(engine, connect, watch=False).run_once()[0].imported == 1
    ticks: list[float] = []
    runner = Runner(
        engine,
        connect,
        interval=timedelta(hours=1),
        duties=[PeriodicDuty("count", timedelta(hours=1), lambda: ticks.append(1.0))],
    )
    serving = threading.Thread(target=runner.serve, kwargs={"tick": timedelta(minutes=10)})
    serving.start()
    try:
        assert _wait_for(lambda: runner.hub.states() == {CHANNEL.id: "watching"}, 10)
        assert ticks == [1.0]  # duties run from serve()
        time.sleep(1.0)  # let the catch-up sync that follows the watch's start finish
        waits = {}
        for n, folder in enumerate(("Archive", "Sent", "INBOX"), start=2):
            started = time.monotonic()
            dovecot_account.add(folder, sample_message(n))
            stored = _stored(store, n)
            assert _wait_for(stored, 5.0), folder
            waits[folder] = time.monotonic() - started
    finally:
        runner.stop()
        serving.join(timeout=10)
    assert not serving.is_alive()
    assert runner.hub.states() == {}
    print(f"delivery to stored: {waits}")
    assert max(waits.values()) < 5.0, waits
