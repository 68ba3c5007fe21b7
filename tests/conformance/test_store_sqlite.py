"""The SQL store on SQLite (a file in WAL mode) against the conformance suite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from commlink.stores.sql import SqlStore
from commlink.testing.conformance import StoreConformance, fail_after_writes


class TestSqliteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield store
        store.close()

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
