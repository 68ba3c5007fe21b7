"""``dispatch`` counts the waiting task messages on RabbitMQ as on Redis:
a channel whose message the broker lost (purged, or its queue deleted) is
queued again once ``requeue_after`` passed; one whose message waits is not.

Uses the machine's RabbitMQ (127.0.0.1:5672, guest/guest) and a queue of
its own, deleted afterwards; tasks are not run, only queued and counted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from celery_support import listening

from commlink.contrib.celery import CommlinkTasks, install
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.stores.memory import MemoryStore
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider

pytestmark = [pytest.mark.integration]

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app() -> Iterator[Celery]:
    if not listening(5672):
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    celery = Celery("commlink_rabbitmq", broker=BROKER, set_as_current=False)
    celery.conf.task_default_queue = f"commlink-it-{uuid.uuid4().hex}"
    try:
        yield celery
    finally:
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_delete(celery.conf.task_default_queue)
        celery.close()


def waiting(app: Celery, expected: int) -> int:
    """Messages in the test's queue, once RabbitMQ counts ``expected`` (or 5 s passed)."""
    deadline = time.monotonic() + 5
    with app.connection_for_write() as conn:
        while True:
            declared = conn.default_channel.queue_declare(app.conf.task_default_queue, passive=True)
            if declared.message_count == expected or time.monotonic() > deadline:
                return int(declared.message_count)
            time.sleep(0.05)


def test_lost_messages_are_queued_again_on_rabbitmq(app: Celery) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    settings = ChannelSettings(owner="me@home.example", org_domains=frozenset({"home.example"}))
    for channel_id in ("a", "b"):
        store.save_channel(Channel(channel_id, "u", ChannelKind.MAIL, "fake", settings))
    tasks: CommlinkTasks = install(
        app,
        store_factory=lambda: store,
        provider_factory=lambda _channel: FakeMailProvider(),
        directory_factory=lambda _store: InMemoryDirectory(),
        clock=clock,
    )
    queue = app.conf.task_default_queue
    assert tasks.run_dispatch() == {"due": 2, "queued": 2, "requeued": 0}
    assert waiting(app, 2) == 2
    clock.now += timedelta(minutes=3)
    # still waiting in the queue, however long: left alone
    assert tasks.run_dispatch() == {"due": 2, "queued": 0, "requeued": 0}

    with app.connection_for_write() as conn:
        assert conn.default_channel.queue_purge(queue) == 2  # lost
    assert tasks.run_dispatch() == {"due": 2, "queued": 2, "requeued": 2}
    assert waiting(app, 2) == 2

    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)  # the broker lost the queue itself
    clock.now += timedelta(minutes=3)
    assert tasks.run_dispatch() == {"due": 2, "queued": 2, "requeued": 2}
    assert waiting(app, 2) == 2
