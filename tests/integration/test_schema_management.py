"""Hosts that migrate on their own: ``migrate=False``, ``commlink db``, the DDL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.cli.main import main
from commlink.errors import StoreError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import SearchQuery, Viewer
from commlink.stores import SqlStore
from commlink.stores.sql_schema import SCHEMA_VERSION, schema_ddl, schema_table, schema_version
from commlink.testing.conformance_data import batch, message, setup_channels


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "channels.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite"\n')
    return config


def test_migrate_false_refuses_a_missing_or_old_schema_and_changes_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/crm.sqlite"
    with pytest.raises(StoreError, match="no commlink schema"):
        SqlStore(url, migrate=False)
    engine = sa.create_engine(url)
    assert sa.inspect(engine).get_table_names() == []  # nothing was created
    SqlStore(url).close()
    with engine.begin() as conn:
        conn.execute(sa.update(schema_table).values(version=SCHEMA_VERSION - 1))
    with pytest.raises(StoreError, match=r"older than this commlink.*commlink db upgrade"):
        SqlStore(url, migrate=False)
    with engine.begin() as conn:
        conn.execute(sa.update(schema_table).values(version=SCHEMA_VERSION))
    store = SqlStore(url, migrate=False)
    store.save_channel(
        Channel("c1", "u1", ChannelKind.MAIL, "mbox", ChannelSettings(owner="a@x.example"))
    )
    assert [c.id for c in store.channels()] == ["c1"]
    store.close()
    engine.dispose()


def _apply(engine: Engine, ddl: str) -> None:
    with engine.begin() as conn:
        for statement in filter(None, (s.strip() for s in ddl.split(";\n"))):
            conn.exec_driver_sql(statement)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_printed_ddl_builds_the_schema_the_store_accepts(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path}/ddl.sqlite")
    else:
        engine = request.getfixturevalue("pg_engine")
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    _apply(engine, schema_ddl(dialect))
    assert schema_version(engine) == SCHEMA_VERSION
    store = SqlStore(engine, migrate=False)
    store.save_channel(
        Channel("c1", "u1", ChannelKind.MAIL, "mbox", ChannelSettings(owner="a@x.example"))
    )
    assert store.channel("c1") is not None
    # what the DDL built is what ensure_schema builds: same tables and columns
    built = {
        t: {c["name"] for c in sa.inspect(engine).get_columns(t)}
        for t in sa.inspect(engine).get_table_names()
    }
    fresh_engine = sa.create_engine(f"sqlite:///{tmp_path}/fresh.sqlite")
    SqlStore(fresh_engine).close()
    fresh = {
        t: {c["name"] for c in sa.inspect(fresh_engine).get_columns(t)}
        for t in sa.inspect(fresh_engine).get_table_names()
        # SQLite's FTS5 index and its shadow tables; PostgreSQL indexes a column instead
        if dialect == "sqlite"
        or not t.startswith(("commlink_search_text", "commlink_search_vocab"))
    }
    assert built == fresh
    store.close()
    fresh_engine.dispose()


def test_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["db", "check", str(config)]) == 1
    assert "no commlink schema" in capsys.readouterr().out
    assert main(["db", "upgrade", str(config)]) == 0
    assert f"created schema {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "check", str(config)]) == 0
    assert "up to date; search index on" in capsys.readouterr().out
    engine = sa.create_engine(f"sqlite:///{tmp_path}/crm.sqlite")
    with engine.begin() as conn:
        conn.execute(sa.update(schema_table).values(version=SCHEMA_VERSION - 1))
    engine.dispose()
    assert main(["db", "check", str(config)]) == 1
    assert main(["db", "upgrade", str(config)]) == 0
    assert f"upgraded schema {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "sql", "--dialect", "sqlite"]) == 0
    assert "CREATE TABLE commlink_messages" in capsys.readouterr().out


def test_db_reindex_rebuilds_the_search_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["db", "reindex", str(config)]) != 0  # it migrates nothing
    assert "no commlink schema" in capsys.readouterr().err
    with SqlStore(f"sqlite:///{tmp_path}/crm.sqlite") as store:
        setup_channels(store)
        store.commit(batch(messages=(message("a", body="walrus"), message("b", body="otter"))))
    assert main(["db", "reindex", str(config), "--portable", "--vacuum"]) == 0
    out = capsys.readouterr().out
    assert "search index rebuilt (portable, with a copy of the text); database" in out
    with SqlStore(f"sqlite:///{tmp_path}/crm.sqlite") as store:
        hits = store.search(SearchQuery("walrus"), Viewer("u1")).items
        assert [h.message_id for h in hits] == ["a@mail.example"]
    pg = tmp_path / "pg.toml"
    pg.write_text('[store]\nurl = "postgresql+psycopg://127.0.0.1/none"\n')
    assert main(["db", "reindex", str(pg)]) == 2
    assert "only a SQLite store" in capsys.readouterr().err


def _db(capsys: pytest.CaptureFixture[str], *argv: str | Path, code: int = 0) -> str:
    """What ``commlink db ...`` printed, after checking its exit code."""
    assert main(["db", *map(str, argv)]) == code
    printed = capsys.readouterr()
    return printed.out + printed.err


def test_db_search_index_switches_it_off_and_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path}/crm.sqlite") as store:
        setup_channels(store)
        store.commit(batch(messages=(message("a", body="walrus"),)))
    assert "search index: off, emptied" in _db(capsys, "search-index", config, "off")
    assert "already off" in _db(capsys, "search-index", config, "off")
    assert "search index off" in _db(capsys, "check", config)
    # nothing to rebuild: it stays off
    assert "keeps no search index" in _db(capsys, "reindex", config, code=2)
    with SqlStore(f"sqlite:///{tmp_path}/crm.sqlite") as store:
        assert not store.search_index
        store.commit(batch(messages=(message("b", body="walrus otter"),), cursor="2"))
    assert "built from the stored mail" in _db(capsys, "search-index", config, "on")
    with SqlStore(f"sqlite:///{tmp_path}/crm.sqlite") as store:
        hits = store.search(SearchQuery("walrus"), Viewer("u1")).items
        assert sorted(h.message_id for h in hits) == ["a@mail.example", "b@mail.example"]


def test_db_search_index_headers_leaves_out_bodies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    url = f"sqlite:///{tmp_path}/crm.sqlite"
    with SqlStore(url) as store:
        setup_channels(store)
        store.commit(batch(messages=(message("a", subject="Narwhal", body="walrus"),)))
    said = _db(capsys, "search-index", config, "headers")
    assert "people and subjects, without bodies" in said
    assert "already on, without bodies" in _db(capsys, "search-index", config, "headers")
    assert "search index on, without bodies" in _db(capsys, "check", config)
    _db(capsys, "reindex", config)  # rebuilt as it was: without bodies
    viewer = Viewer("u1")
    with SqlStore(url) as store:
        assert store.search(SearchQuery("walrus"), viewer).items == ()
        assert len(store.search(SearchQuery("narwhal"), viewer).items) == 1
    assert "built from the stored mail\n" in _db(capsys, "search-index", config, "on")
    with SqlStore(url) as store:
        assert len(store.search(SearchQuery("walrus"), viewer).items) == 1


def test_store_is_a_context_manager(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path}/cm.sqlite") as store:
        store.save_channel(
            Channel("c1", "u1", ChannelKind.MAIL, "mbox", ChannelSettings(owner="a@x.example"))
        )
        pool = store.engine.pool
    assert pool.checkedout() == 0
    with SqlStore(f"sqlite:///{tmp_path}/cm.sqlite") as again:
        assert again.channel("c1") is not None
