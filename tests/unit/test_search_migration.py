"""Schema 8 adds the search index and fills it from the mail already stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.model import Visibility
from commlink.records import SearchQuery, Viewer
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import SCHEMA_VERSION, schema_ddl
from commlink.testing.conformance_data import batch, message, setup_channels
from commlink.testing.postgres import emptied


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        found = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield found
        found.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    emptied(pg)
    yield pg


def _as_schema_7(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TABLE commlink_search_vocab")
            conn.exec_driver_sql("DROP TABLE commlink_search_text")
        conn.exec_driver_sql("DROP TABLE commlink_search_docs")
        conn.exec_driver_sql("UPDATE commlink_schema SET version = 7")


def _two_channels(engine: Engine, tusk: str = "tusk") -> None:
    """A's mail on a FULL channel of u1, b's on a SUBJECT channel of u2."""
    store = SqlStore(engine)
    setup_channels(store, ("c1", "u1", Visibility.FULL), ("c2", "u2", Visibility.SUBJECT))
    store.commit(batch("c1", messages=(message("a", subject="Walrus", body=tusk),)))
    store.commit(batch("c2", messages=(message("b", subject="Narwhal", body="horn"),)))
    store.close()


def test_an_older_schema_gets_a_filled_index(engine: Engine) -> None:
    _two_channels(engine)
    _as_schema_7(engine)
    store = SqlStore(engine)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version FROM commlink_schema").scalar()
    assert version == SCHEMA_VERSION
    other = Viewer("u3")
    assert [h.message_id for h in store.search(SearchQuery("tusk"), other).items] == [
        "a@mail.example"
    ]
    assert [h.message_id for h in store.search(SearchQuery("narwhal"), other).items] == [
        "b@mail.example"
    ]
    assert store.search(SearchQuery("horn"), other).items == ()
    assert len(store.search(SearchQuery("horn"), Viewer("u2")).items) == 1
    # and it stays in step with later writes
    store.commit(batch("c1", deleted=("a",)))
    assert store.search(SearchQuery("tusk"), other).items == ()
    store.close()


def test_the_printed_schema_has_the_index() -> None:
    sqlite_ddl = schema_ddl("sqlite")
    assert "USING fts5" in sqlite_ddl
    assert "USING gin" not in sqlite_ddl
    postgres_ddl = schema_ddl("postgresql")
    assert "USING gin (terms)" in postgres_ddl
    assert "fts5" not in postgres_ddl


def test_the_printed_sqlite_schema_searches(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'host.sqlite'}")
    with engine.begin() as conn:
        for statement in schema_ddl("sqlite").split(";\n\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    store = SqlStore(engine, migrate=False)
    setup_channels(store)
    store.commit(batch(messages=(message("a", body="heron"),)))
    assert len(store.search(SearchQuery("heron"), Viewer("u1")).items) == 1
    store.close()
    engine.dispose()


def _as_schema_9(engine: Engine) -> None:
    """The index as schema 9 wrote it: every field's words tagged with a letter."""
    with engine.begin() as conn:
        docs = conn.exec_driver_sql("SELECT rowid, people, subject, body FROM commlink_search_text")
        rows = [
            (
                doc,
                *(
                    " ".join(tag + w for w in text.replace("p_", "").replace("s_", "").split())
                    for tag, text in zip("psb", texts, strict=True)
                ),
            )
            for doc, *texts in docs.all()
        ]
        conn.exec_driver_sql("DROP TRIGGER commlink_search_docs_gone")
        conn.exec_driver_sql("DROP TABLE commlink_search_vocab")
        conn.exec_driver_sql("DROP TABLE commlink_search_text")
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE commlink_search_text USING fts5"
            "(people, subject, body, tokenize = 'unicode61 remove_diacritics 0')"
        )
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE commlink_search_vocab USING fts5vocab"
            "(commlink_search_text, 'row')"
        )
        conn.exec_driver_sql(
            "INSERT INTO commlink_search_text (rowid, people, subject, body) VALUES (?, ?, ?, ?)",
            rows,
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER commlink_search_docs_gone AFTER DELETE ON commlink_search_docs "
            "BEGIN DELETE FROM commlink_search_text WHERE rowid = old.doc; END"
        )
        conn.exec_driver_sql("UPDATE commlink_schema SET version = 9")


def _terms(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT term FROM commlink_search_vocab")
        return {str(term) for (term,) in found}


def test_schema_9_sqlite_index_is_built_again_with_untagged_body_words(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    _two_channels(engine, tusk="tusk ivory")
    _as_schema_9(engine)
    assert {"btusk", "swalrus"} <= _terms(engine)
    store = SqlStore(engine)
    terms = _terms(engine)
    assert {"tusk", "ivory", "horn", "s_walrus", "s_narwhal"} <= terms
    assert not {"btusk", "swalrus", "bhorn"} & terms
    other = Viewer("u3")
    hits = store.search(SearchQuery('"tusk ivory" walrus'), other).items
    assert [h.message_id for h in hits] == ["a@mail.example"]
    assert store.search(SearchQuery("horn"), other).items == ()
    assert len(store.search(SearchQuery("horn"), Viewer("u2")).items) == 1
    store.commit(batch("c1", deleted=("a",)))
    assert store.search(SearchQuery("tusk"), other).items == ()
    store.close()
    engine.dispose()
