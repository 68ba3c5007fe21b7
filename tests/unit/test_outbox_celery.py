"""The Celery task that delivers host events from a store's outbox (run
with ``apply()`` on an app with the in-memory broker)."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from commlink.contrib.celery import install_event_relay
from commlink.events import MESSAGE_CREATED
from commlink.stores.sql import SqlStore
from commlink.testing.conformance_data import batch, message, setup_channels
from commlink.testing.conformance_events import RecordingSink


def test_the_task_delivers_pending_events_once(tmp_path: Path) -> None:
    app = Celery("events-test", broker="memory://", set_as_current=False)
    with app, SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}", outbox=True) as store:
        setup_channels(store)
        for n in range(5):
            store.commit(batch(messages=(message(str(n)),)))
        sink = RecordingSink()
        task = install_event_relay(
            app, outbox_factory=store.outbox, sink_factory=lambda: sink, batch=2, max_batches=2
        )
        assert task.name == "commlink.deliver_events"
        assert task.apply().get() == 4  # two batches of two, the rest on the next run
        assert task.apply().get() == 1
        assert task.apply().get() == 0
        assert [e.type for e in sink.events] == [MESSAGE_CREATED] * 5
        assert store.outbox().position("default") == sink.events[-1].id
