"""Search in the SQL store on SQLite (FTS5) against the public search suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commlink.ports import SearchableStore
from commlink.stores import sql_search_sqlite
from commlink.stores.sql import SqlStore
from commlink.testing.conformance_search import SearchConformance


class TestSqliteSearch(SearchConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        assert isinstance(store, SearchableStore)
        yield store
        store.close()


class TestSqliteSearchWithoutDrivers(TestSqliteSearch):
    """Every person and participant filters a word scan (none drives the
    query) and every word is probed row by row: the plans a large mailbox
    takes, on the same data."""

    @pytest.fixture(autouse=True)
    def large_mailbox_plans(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sql_search_sqlite, "_DRIVER_ROWS", -1)
        monkeypatch.setattr(sql_search_sqlite, "_COLLECT_ROWS", -1)


class TestSqliteSearchProbingDrivers(TestSqliteSearch):
    """A person or participant drives the query and the words are probed."""

    @pytest.fixture(autouse=True)
    def probing_plans(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sql_search_sqlite, "_COLLECT_ROWS", -1)
