"""The SQL store on SQLite 3.43+, whose FTS5 search index keeps no copy of
the text, against the public store and search suites (through pysqlite3's
newer SQLite), and what an older SQLite does with such a database."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commlink.errors import StoreError
from commlink.records import SearchQuery, Viewer
from commlink.stores import sql_schema, sql_tables
from commlink.stores.sql import SqlStore
from commlink.stores.sql_search import rebuild_sqlite_index
from commlink.testing.conformance import StoreConformance, fail_after_writes
from commlink.testing.conformance_data import batch, message, setup_channels
from commlink.testing.conformance_search import SearchConformance

dbapi2: Any = pytest.importorskip("pysqlite3.dbapi2")

_SQL = "SELECT sql FROM sqlite_master WHERE name = 'commlink_search_text'"


def _text_sql(store: SqlStore) -> str:
    with store.engine.connect() as conn:
        return str(conn.exec_driver_sql(_SQL).scalar_one())


def _newer(path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{path}", engine_options={"module": dbapi2})


class TestContentlessSearch(SearchConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = _newer(tmp_path / "store.sqlite")
        assert "contentless_delete" in _text_sql(store)
        yield store
        store.close()


class TestContentlessStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = _newer(tmp_path / "store.sqlite")
        yield store
        store.close()

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)


def test_an_older_sqlite_keeps_the_portable_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_tables, "sqlite_version", lambda _conn: (3, 42, 0))
    with _newer(tmp_path / "store.sqlite") as store:
        assert "contentless_delete" not in _text_sql(store)


def test_a_portable_index_stays_and_works_on_a_newer_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite"
    with monkeypatch.context() as patch:
        patch.setattr(sql_tables, "sqlite_version", lambda _conn: (3, 42, 0))
        with _newer(path) as store:
            setup_channels(store)
            store.commit(batch(messages=(message("a", body="walrus"),)))
    with _newer(path) as store:
        assert "contentless_delete" not in _text_sql(store)
        store.commit(batch(messages=(message("b", body="walrus"),)))
        hits = store.search(SearchQuery("walrus"), Viewer("u1")).items
        assert sorted(h.message_id for h in hits) == ["a@mail.example", "b@mail.example"]


@pytest.mark.parametrize("migrate", [True, False])
def test_an_older_sqlite_refuses_the_index_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrate: bool
) -> None:
    path = tmp_path / "store.sqlite"
    with _newer(path):
        pass
    monkeypatch.setattr(sql_schema, "sqlite_version", lambda _conn: (3, 40, 1))
    with pytest.raises(
        StoreError, match=r"needs SQLite 3\.43 or newer; this Python has SQLite 3\.40\.1"
    ):
        SqlStore(f"sqlite:///{path}", engine_options={"module": dbapi2}, migrate=migrate)


@pytest.mark.skipif(
    sqlite3.sqlite_version_info >= sql_tables.CONTENTLESS_SQLITE,
    reason="this Python's SQLite reads the index",
)
def test_the_standard_library_sqlite_refuses_it_here(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with _newer(path):
        pass
    with pytest.raises(StoreError, match=r"needs SQLite 3\.43 or newer"):
        SqlStore(f"sqlite:///{path}")


def test_rebuilding_the_index_converts_it_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with SqlStore(f"sqlite:///{path}") as store:  # this Python's SQLite
        setup_channels(store)
        store.commit(batch(messages=(message("a", body="walrus"), message("b", body="otter"))))
    walrus = SearchQuery("walrus")
    for contentless in (None, False, True):
        with _newer(path) as store:
            with (
                store.engine.connect().execution_options(commlink_write=True) as conn,
                conn.begin(),
            ):
                made = rebuild_sqlite_index(conn, contentless)
            assert made is (contentless is not False)
            assert ("contentless_delete" in _text_sql(store)) is made
            hits = store.search(walrus, Viewer("u1")).items
            assert [h.message_id for h in hits] == ["a@mail.example"]
    with _newer(path) as store, store.engine.connect() as conn, conn.begin():
        rebuild_sqlite_index(conn, False)
    with SqlStore(f"sqlite:///{path}") as store:  # readable by any SQLite again
        assert len(store.search(SearchQuery("otter"), Viewer("u1")).items) == 1


def test_an_index_without_bodies_keeps_its_form(tmp_path: Path) -> None:
    """Switched to leave out bodies and back, the index stays contentless, a
    body word leaves it and comes back, and a copy written again meanwhile
    (deleted from the index by rowid) leaves no words behind."""
    viewer = Viewer("u1")
    with _newer(tmp_path / "store.sqlite") as store:
        setup_channels(store)
        store.commit(batch(messages=(message("a", subject="Narwhal", body="walrus"),)))
        store.set_search_index(True, bodies=False)
        assert "contentless_delete" in _text_sql(store)
        assert store.search(SearchQuery("walrus"), viewer).items == ()
        store.commit(batch(messages=(message("a", subject="Beluga", body="walrus otter"),)))
        with store.engine.connect() as conn:
            terms = {
                str(t) for (t,) in conn.exec_driver_sql("SELECT term FROM commlink_search_vocab")
            }
        assert "walrus" not in terms
        assert "otter" not in terms
        assert "s_narwhal" not in terms  # the subject before the copy was written again
        assert [h.message_id for h in store.search(SearchQuery("beluga"), viewer).items] == [
            "a@mail.example"
        ]
        store.set_search_index(True)
        assert "contentless_delete" in _text_sql(store)
        assert len(store.search(SearchQuery("otter"), viewer).items) == 1
