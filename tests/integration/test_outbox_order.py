"""Outbox ids follow commit order on PostgreSQL, so a consumer that reads
"after my position" never skips an event committed late.

A sequence alone would not do: a transaction that took id 10 but commits
after another one took and committed id 11 would be invisible to a reader
that already moved past 11.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from commlink.events import MESSAGE_CREATED, HostEvent
from commlink.stores.sql import SqlStore
from commlink.stores.sql_outbox import write_outbox
from commlink.testing.conformance_data import T0, batch, channel, message
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_engine: Engine) -> SqlStore:
    emptied(pg_engine)
    store = SqlStore(pg_engine, outbox=True)
    for n in range(4):
        store.save_channel(channel(f"c{n}", f"u{n}"))
    return store


def test_a_later_transaction_waits_for_an_earlier_one_to_commit(store: SqlStore) -> None:
    early = HostEvent(type=MESSAGE_CREATED, channel_id="c0", at=T0, message_id="early@x")
    with store.engine.connect() as conn:
        transaction = conn.begin()
        [written] = write_outbox(conn, [early])
        late = threading.Thread(target=store.commit, args=(batch("c1", messages=(message("1"),)),))
        late.start()
        time.sleep(0.5)
        assert late.is_alive()  # queued behind the open transaction's events
        assert store.outbox().pending("reader") == []
        transaction.commit()
    late.join(10)
    assert not late.is_alive()
    found = store.outbox().pending("reader")
    assert [e.message_id for e in found] == ["early@x", "1@mail.example"]
    assert found[0].id == written.id < found[1].id


def test_a_live_reader_misses_nothing_while_writers_race(store: SqlStore) -> None:
    outbox = store.outbox()
    done = threading.Event()
    seen: list[int] = []

    def write(channel_id: str) -> None:
        for n in range(15):
            store.commit(batch(channel_id, messages=(message(f"{channel_id}-{n}"),)))

    def read() -> None:
        while True:
            finished = done.is_set()
            found = outbox.pending("live", 7)
            if found:
                seen.extend(e.id for e in found)
                outbox.ack("live", found[-1].id)
            elif finished:
                return

    writers = [threading.Thread(target=write, args=(f"c{n}",)) for n in range(4)]
    reader = threading.Thread(target=read)
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    done.set()
    reader.join(60)
    every = [e.id for e in outbox.pending("audit", 1000)]
    assert len(every) == 60
    assert seen == every
