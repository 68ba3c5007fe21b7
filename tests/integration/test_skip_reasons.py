"""Stores answer the skip reasons of some ids in one read (``SkipReasonLookup``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import Reason, Skip, SyncBatch
from commlink.stores import MemoryStore, SqlStore
from commlink.sync.settled import SkipReasonLookup

CHANNEL = Channel("ch", "u1", ChannelKind.MAIL, "fake", ChannelSettings(owner="me@home.example"))
OTHER = Channel("ch2", "u1", ChannelKind.MAIL, "fake", ChannelSettings(owner="me@home.example"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[MemoryStore | SqlStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        found = SqlStore("sqlite://")
    else:
        engine: Engine = request.getfixturevalue("pg_engine")
        found = SqlStore(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM commlink_skips")
            conn.exec_driver_sql("DELETE FROM commlink_channels")
    yield found
    found.close()


def test_skip_reasons_of_some_ids(store: MemoryStore | SqlStore) -> None:
    assert isinstance(store, SkipReasonLookup)
    for channel in (CHANNEL, OTHER):
        store.save_channel(channel)
    skipped = (
        Skip("1", Reason.GROUP, message_id="<a@x>"),
        Skip("2", Reason.INTERNAL, message_id="<b@x>"),
        Skip("3", Reason.ERROR, "timeout"),
    )
    store.commit(SyncBatch(CHANNEL.id, "INBOX", skipped=skipped))
    store.commit(SyncBatch(OTHER.id, "INBOX", skipped=(Skip("4", Reason.BLOCKED),)))
    found = store.skip_reasons(CHANNEL.id, ["1", "2", "3", "4", "nope", "a\x00b"])
    assert found == {"1": Reason.GROUP, "2": Reason.INTERNAL, "3": Reason.ERROR}
    assert store.skip_reasons(CHANNEL.id, []) == {}
