"""Host events of ``DjangoStore`` (outbox and in-process sink) on SQLite
and PostgreSQL against the public conformance suite."""

from __future__ import annotations

import contextlib

import pytest
from django.db import transaction

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store, fail_after_writes
from commlink.records import SyncBatch
from commlink.testing.conformance_events import OutboxConformance


class _Events(OutboxConformance):
    def break_commit(
        self, store: DjangoStore, after: int
    ) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.using, after)


class TestDjangoSqliteEvents(_Events):
    @pytest.fixture
    def store(self) -> DjangoStore:
        clear_store("default")
        return DjangoStore("default", outbox=True)


@pytest.mark.postgres
class TestDjangoPostgresEvents(_Events):
    @pytest.fixture
    def store(self, pg_alias: str) -> DjangoStore:
        clear_store(pg_alias)
        return DjangoStore(pg_alias, outbox=True)


class _Rollback(Exception):
    pass


def _commit_then_roll_back(store: DjangoStore, batch: SyncBatch) -> None:
    with transaction.atomic(using=store.using):
        store.commit(batch)
        raise _Rollback


def test_the_sink_hears_of_a_write_once_the_outermost_transaction_commits() -> None:
    from commlink.events import MESSAGE_CREATED
    from commlink.testing.conformance_data import batch, message, setup_channels
    from commlink.testing.conformance_events import RecordingSink

    clear_store("default")
    sink = RecordingSink()
    store = DjangoStore("default", on_events=sink)
    setup_channels(store)
    store.commit(batch(messages=(message("1"),)))
    assert [(e.type, e.provider_id, e.id) for e in sink.events] == [(MESSAGE_CREATED, "1", 0)]
    with transaction.atomic(using="default"):
        store.commit(batch(messages=(message("2"),)))
        assert len(sink.events) == 1  # not before the host's own transaction commits
    assert [e.provider_id for e in sink.events] == ["1", "2"]
    with pytest.raises(_Rollback):
        _commit_then_roll_back(store, batch(messages=(message("3"),)))
    assert [e.provider_id for e in sink.events] == ["1", "2"]
    assert store.known_ids("c1", "INBOX", ["1", "2", "3"]) == {"1", "2"}
    sink.fail = 1  # a failing sink never fails the write
    store.commit(batch(messages=(message("4"),)))
    assert store.known_ids("c1", "INBOX", ["4"]) == {"4"}
