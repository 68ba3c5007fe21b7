"""Host events and the outbox of the SQL store on SQLite against the conformance suite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from commlink.stores.sql import SqlStore
from commlink.testing.conformance import fail_after_writes
from commlink.testing.conformance_events import OutboxConformance


class TestSqliteOutbox(OutboxConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        with SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}", outbox=True) as store:
            yield store

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
