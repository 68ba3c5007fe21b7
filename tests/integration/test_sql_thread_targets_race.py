"""Two channels committing the same new thread at the same instant on
PostgreSQL: both commits succeed, and the timeline rows
(``commlink_thread_targets``) hold each linked record once, at the time of
the thread's latest copy.

Each commit rebuilds the rows of the threads it touched from what it can
see: the other commit's rows may land between its delete and its insert,
and the later time of the two must stay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from commlink.records import MessageRecord
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import thread_targets
from commlink.testing.conformance_data import ALICE, BOB, T0, batch, channel, links, message
from commlink.testing.postgres import reachable, temporary_database

pytestmark = pytest.mark.postgres

ROUNDS = 40
CHANNELS = ("c1", "c2")


@pytest.fixture
def store() -> Iterator[SqlStore]:
    """A store on a database of its own, with two channels and links."""
    if not reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with temporary_database() as engine:
        store = SqlStore(engine)
        for n, channel_id in enumerate(CHANNELS, 1):
            store.save_channel(channel(channel_id, f"u{n}"))
        store.relink([links(ALICE, "p1"), links(BOB, "p2")])
        yield store


def race(store: SqlStore, records: Callable[[int, str], tuple[MessageRecord, ...]]) -> None:
    """Each channel commits ``records(round, channel)`` at once, ``ROUNDS`` times."""
    start = threading.Barrier(len(CHANNELS), timeout=60)
    failures: list[BaseException] = []

    def sync(channel_id: str) -> None:
        for round_ in range(ROUNDS):
            try:
                start.wait()
                store.commit(batch(channel_id, messages=records(round_, channel_id)))
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)
                start.abort()
                return

    workers = [threading.Thread(target=sync, args=(ch,)) for ch in CHANNELS]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [f for f in failures if not isinstance(f, threading.BrokenBarrierError)] == []
    assert failures == []


def stored_rows(store: SqlStore) -> dict[tuple[str, str, str], datetime]:
    tt = thread_targets.c
    query = sa.select(tt.kind, tt.target_id, tt.thread_id, tt.last_at)
    with store.engine.connect() as conn:
        return {(kind, target, thread): at for kind, target, thread, at in conn.execute(query)}


def moment(round_: int, channel_id: str) -> datetime:
    """Each channel's copy has its own date: the later one is the thread's time."""
    return T0 + timedelta(minutes=round_, seconds=CHANNELS.index(channel_id))


def test_the_same_new_message_from_two_channels_at_once(store: SqlStore) -> None:
    def records(round_: int, channel_id: str) -> tuple[MessageRecord, ...]:
        found = message(
            f"{channel_id}-{round_}",
            f"m{round_}@x",
            thread=f"t{round_}",
            date=moment(round_, channel_id),
        )
        return (found,)

    race(store, records)
    last = moment(0, CHANNELS[-1]) - T0
    assert stored_rows(store) == {
        ("person", "p1", f"t{r}"): T0 + timedelta(minutes=r) + last for r in range(ROUNDS)
    }


def test_two_messages_of_one_new_thread_from_two_channels_at_once(store: SqlStore) -> None:
    def records(round_: int, channel_id: str) -> tuple[MessageRecord, ...]:
        # c1 holds Alice's message, c2 Bob's later reply to her: both copies
        # put the thread on p1's timeline, only c2's on p2's
        sender, to = (ALICE, ("u1@org.example",)) if channel_id == "c1" else (BOB, (ALICE,))
        found = message(
            f"{channel_id}-{round_}",
            f"m{round_}-{channel_id}@x",
            thread=f"t{round_}",
            date=moment(round_, channel_id),
            sender=sender,
            to=to,
        )
        return (found,)

    race(store, records)
    last = moment(0, CHANNELS[-1]) - T0
    assert stored_rows(store) == {
        ("person", target, f"t{r}"): T0 + timedelta(minutes=r) + last
        for r in range(ROUNDS)
        for target in ("p1", "p2")
    }
