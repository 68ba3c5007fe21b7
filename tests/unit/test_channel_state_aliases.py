"""Discovered aliases in the channel state: kept by every store, across a
restart, and added to a schema 5 database by its migration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.ports import Store
from commlink.records import ChannelState, ChannelStatus, SyncStage
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import SCHEMA_VERSION

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ALIASES = ("sales@home.example", "team@xn--fa-hia.de")


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
        SqlStore(engine)
        yield engine
        engine.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    yield pg
    pg.dispose()


_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=["sqlite", _POSTGRES])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with the current schema, on SQLite or PostgreSQL."""
    yield from _database(request, tmp_path)


@pytest.fixture(params=["memory", "sqlite", _POSTGRES])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    for engine in _database(request, tmp_path):
        sql = SqlStore(engine)
        yield sql
        sql.close()


def test_aliases_round_trip_and_are_replaced_whole(store: Store) -> None:
    state = ChannelState("rt", ChannelStatus.ACTIVE, failures=1, last_success=WHEN, aliases=ALIASES)
    store.save_channel_state(state)
    assert store.channel_state("rt") == state
    assert store.channel_states()["rt"].aliases == ALIASES
    store.save_channel_state(ChannelState("rt", aliases=("one@home.example",)))
    assert store.channel_state("rt") == ChannelState("rt", aliases=("one@home.example",))
    store.save_channel_state(ChannelState("rt"))
    assert store.channel_state("rt") == ChannelState("rt")


def test_aliases_survive_a_restart(database: Engine) -> None:
    first = SqlStore(database)
    first.save_channel_state(ChannelState("restart", ChannelStatus.ACTIVE, aliases=ALIASES))
    first.close()
    database.dispose()  # nothing cached in a pooled connection
    again = SqlStore(database)
    try:
        assert again.channel_state("restart") == ChannelState(
            "restart", ChannelStatus.ACTIVE, aliases=ALIASES
        )
    finally:
        again.close()


def test_a_schema_5_database_gets_the_aliases_column(database: Engine) -> None:
    with database.begin() as conn:
        conn.exec_driver_sql("DELETE FROM commlink_channel_states")
        conn.exec_driver_sql("ALTER TABLE commlink_channel_states DROP COLUMN aliases")
        conn.exec_driver_sql("UPDATE commlink_schema SET version = 5")
        conn.exec_driver_sql(
            "INSERT INTO commlink_channel_states (channel_id, status, stage, failures,"
            " last_error) VALUES ('old', 'active', 'incremental', 0, '')"
        )
    database.dispose()
    store = SqlStore(database)
    try:
        columns = {c["name"] for c in sa.inspect(database).get_columns("commlink_channel_states")}
        assert "aliases" in columns
        with database.connect() as conn:
            version = conn.exec_driver_sql("SELECT version FROM commlink_schema").scalar()
        assert version == SCHEMA_VERSION
        assert store.channel_state("old") == ChannelState(
            "old", ChannelStatus.ACTIVE, SyncStage.INCREMENTAL
        )
        store.save_channel_state(ChannelState("old", aliases=ALIASES))
        assert store.channel_state("old") == ChannelState("old", aliases=ALIASES)
    finally:
        store.close()
