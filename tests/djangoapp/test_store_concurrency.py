"""Concurrent commits on PostgreSQL: channels importing the same messages at
the same time (one mailbox's mail is in its colleagues' too) all succeed,
and every channel ends up with its own copy on the shared timeline."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store
from commlink.model import Visibility
from commlink.records import PageRequest, Viewer
from commlink.testing.conformance_data import (
    ALICE,
    T0,
    batch,
    links,
    message,
    person,
    setup_channels,
)

pytestmark = pytest.mark.postgres

CHANNELS = ("c1", "c2", "c3")


def test_channels_importing_the_same_threads_at_once(pg_alias: str) -> None:
    clear_store(pg_alias)
    store = DjangoStore(pg_alias)
    setup_channels(store, *((ch, f"u-{ch}", Visibility.FULL) for ch in CHANNELS))
    start = threading.Barrier(len(CHANNELS))
    failures: list[BaseException] = []

    def sync(channel_id: str) -> None:
        try:
            start.wait()
            for round_ in range(8):
                records = tuple(
                    message(
                        f"{round_}-{n}",
                        f"m{round_}-{n}@x",
                        thread=f"t{n}",
                        date=T0 + timedelta(minutes=round_),
                    )
                    for n in range(20)
                )
                store.commit(batch(channel_id, messages=records, links=(links(ALICE, "p1"),)))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connections[pg_alias].close()

    workers = [threading.Thread(target=sync, args=(ch,)) for ch in CHANNELS]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    page = store.timeline(person("p1"), Viewer("u-c1"), PageRequest(limit=50))
    assert sorted(t.thread_id for t in page.items) == sorted(f"t{n}" for n in range(20))
    assert {t.message_count for t in page.items} == {8}
    for channel_id in CHANNELS:
        assert store.count_associations(channel_id) == 8 * 20


def test_two_messages_of_one_new_thread_keep_the_later_time(pg_alias: str) -> None:
    """Two channels commit different messages of one new thread at the same
    instant, 30 times: each thread is on both records' timelines once, at
    the time of its later copy, whichever commit wrote its row last."""
    from commlink.contrib.django import models as m
    from commlink.testing.conformance_data import BOB

    clear_store(pg_alias)
    store = DjangoStore(pg_alias)
    pair = ("c1", "c2")
    setup_channels(store, *((ch, f"u-{ch}", Visibility.FULL) for ch in pair))
    store.relink([links(ALICE, "p1"), links(BOB, "p2")])
    rounds = 30
    start = threading.Barrier(len(pair), timeout=60)
    failures: list[BaseException] = []

    def sync(channel_id: str) -> None:
        # c1 holds Alice's message, c2 Bob's reply a second later: both put
        # the thread on p1's timeline, only c2's on p2's
        sender, to = (ALICE, ("u1@org.example",)) if channel_id == "c1" else (BOB, (ALICE,))
        try:
            for round_ in range(rounds):
                start.wait()
                found = message(
                    f"{channel_id}-{round_}",
                    f"m{round_}-{channel_id}@x",
                    thread=f"t{round_}",
                    date=T0 + timedelta(minutes=round_, seconds=pair.index(channel_id)),
                    sender=sender,
                    to=to,
                )
                store.commit(batch(channel_id, messages=(found,)))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
            start.abort()
        finally:
            connections[pg_alias].close()

    workers = [threading.Thread(target=sync, args=(ch,)) for ch in pair]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    rows = m.ThreadTarget.objects.using(pg_alias).values_list(
        "kind", "target_id", "thread_id", "last_at"
    )
    assert {(k, t, th): at for k, t, th, at in rows} == {
        ("person", target, f"t{r}"): T0 + timedelta(minutes=r, seconds=1)
        for r in range(rounds)
        for target in ("p1", "p2")
    }
