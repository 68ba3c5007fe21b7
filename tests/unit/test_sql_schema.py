"""The SQL schema: versioning, migrations, engines, types and statement counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Connection

from commlink.errors import ConfigError, StoreError
from commlink.model import (
    CalendarContactPolicy,
    ChannelSettings,
    ContactPolicy,
    FolderSelection,
    Visibility,
)
from commlink.records import Viewer
from commlink.stores import sql_schema
from commlink.stores.sql import SqlStore
from commlink.stores.sql_rows import settings_from_json, settings_to_json
from commlink.stores.sql_schema import SCHEMA_VERSION, UtcDateTime, chunks, schema_table
from commlink.testing.conformance_data import batch, channel, message


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def _version(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(schema_table.c.version)).scalar_one())


def test_fresh_database_gets_the_schema_and_version(db_url: str) -> None:
    store = SqlStore(db_url)
    assert _version(store) == SCHEMA_VERSION
    names = sa.inspect(store.engine).get_table_names()
    assert "commlink_messages" in names
    assert "commlink_people" in names
    assert all(name.startswith("commlink_") for name in names)
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("commlink_participants")}
    assert "commlink_participants_key" in indexes
    store.close()
    again = SqlStore(db_url)  # opening an up-to-date database changes nothing
    assert _version(again) == SCHEMA_VERSION
    again.close()


def test_schema_10_loses_its_indexes_by_domain_and_blocks_domains_as_before(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    store.save_channel(channel())
    store.commit(batch(messages=(message("m1", sender="eve@mail.evil.example"), message("m2"))))
    with store.engine.begin() as conn:
        for table in ("participants", "attendees"):
            conn.exec_driver_sql(
                f"CREATE INDEX commlink_{table}_domain ON commlink_{table} (domain)"
            )
        conn.execute(sa.update(schema_table).values(version=10))
    store.close()
    store = SqlStore(db_url)
    assert _version(store) == SCHEMA_VERSION
    inspector = sa.inspect(store.engine)
    for table in ("commlink_participants", "commlink_attendees"):
        assert not [i for i in inspector.get_indexes(table) if "domain" in i["column_names"]]
    assert store.delete_matching("c1", ["@evil.example"]) == 1
    assert store.known_ids("c1", "INBOX", ["m1", "m2"]) == {"m2"}
    store.close()


def test_newer_schema_is_refused(db_url: str) -> None:
    store = SqlStore(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.update(schema_table).values(version=SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(StoreError, match="newer"):
        SqlStore(db_url)


def test_older_schema_is_migrated(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlStore(db_url).close()
    calls: list[int] = []

    def migrate(conn: Connection) -> None:
        calls.append(int(conn.execute(sa.select(schema_table.c.version)).scalar_one()))
        conn.exec_driver_sql("CREATE TABLE commlink_extra (id INTEGER PRIMARY KEY)")

    monkeypatch.setattr(sql_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(sql_schema.MIGRATIONS, SCHEMA_VERSION, migrate)
    store = SqlStore(db_url)
    assert calls == [SCHEMA_VERSION]
    assert _version(store) == SCHEMA_VERSION + 1
    assert "commlink_extra" in sa.inspect(store.engine).get_table_names()
    store.close()


def test_missing_migration_is_an_error(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlStore(db_url).close()
    monkeypatch.setattr(sql_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="no migration"):
        SqlStore(db_url)


def test_sqlite_file_uses_wal_and_foreign_keys(db_url: str) -> None:
    store = SqlStore(db_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16_384
    store.close()


def test_in_memory_store_is_shared_across_threads() -> None:
    store = SqlStore("sqlite://")
    store.save_channel(channel())
    worker = threading.Thread(
        target=store.commit, args=(batch(messages=(message("m1", thread="t"),)),)
    )
    worker.start()
    worker.join()
    view = store.thread("t", Viewer("u1"))
    assert view is not None
    assert len(view.messages) == 1


def test_in_memory_store_serialises_concurrent_transactions() -> None:
    store = SqlStore("sqlite://")
    store.save_channel(channel())
    start = threading.Barrier(6)
    results: list[bool] = []

    def contend(holder: str) -> None:
        start.wait()
        results.append(store.acquire_lease("c1", holder, timedelta(hours=1)))
        store.commit(batch(scope_id=holder, messages=(message(f"m-{holder}"),)))

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert sorted(store.scope_ids("c1")) == [f"w{i}" for i in range(6)]


def test_missing_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pip install"):
        SqlStore("postgresql+pg8000://user@localhost/db")


def test_a_borrowed_engine_stays_open(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    store = SqlStore(engine)
    store.save_channel(channel())
    store.close()
    assert SqlStore(engine).channel("c1") == channel()
    engine.dispose()


def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SqlStore(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'store.sqlite'}")
    store = SqlStore(f"sqlite:///{tmp_path / 'ok.sqlite'}")
    store.save_channel(channel())
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE commlink_skips")
    with pytest.raises(StoreError) as caught:
        store.skips("c1", Viewer("u1"))
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)
    store.close()


def test_a_500_message_batch_is_a_handful_of_statements(db_url: str) -> None:
    store = SqlStore(db_url)
    store.save_channel(channel())
    records = tuple(
        message(f"m{i}", thread=f"t{i // 5}", references=(f"m{i - 1}@mail.example",))
        for i in range(500)
    )
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine, "before_cursor_execute", record)
    store.commit(batch(messages=records, cursor="k", generation=1))
    first = len(statements)
    statements.clear()
    store.commit(batch(messages=records, cursor="k", generation=2, sweep=True))
    event.remove(store.engine, "before_cursor_execute", record)
    # one of them reads whether the database keeps its search index
    assert first <= 16
    assert len(statements) <= 21
    store.close()


def test_chunks() -> None:
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


def test_naive_datetimes_are_refused_by_the_column_type() -> None:
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(datetime(2025, 1, 1), dialect)


@pytest.fixture(scope="module")
def moments() -> Iterator[tuple[sa.engine.Engine, sa.Table]]:
    meta = sa.MetaData()
    table = sa.Table(
        "moments", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", UtcDateTime)
    )
    engine = sa.create_engine("sqlite://")
    meta.create_all(engine)
    yield engine, table
    engine.dispose()


ZONES = [
    timezone.utc,
    timezone(timedelta(hours=5, minutes=45)),
    timezone(-timedelta(hours=11)),
    ZoneInfo("Europe/Paris"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("Antarctica/Troll"),
]


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(ZONES),
        allow_imaginary=True,
    )
)
def test_aware_datetimes_round_trip_in_sqlite(
    moments: tuple[sa.engine.Engine, sa.Table], moment: datetime
) -> None:
    engine, table = moments
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert().values(id=1, at=moment))
        back = conn.execute(sa.select(table.c.at)).scalar_one()
        instant = moment.astimezone(timezone.utc)
        later = conn.execute(
            sa.select(sa.func.count()).where(table.c.at > instant - timedelta(microseconds=1))
        ).scalar_one()
    # compare instants: PEP 495 makes inter-zone == false for times in a DST fold or gap
    assert back == moment.astimezone(timezone.utc)
    assert back.tzinfo is timezone.utc
    assert later == 1


_WORDS = st.text(alphabet="abcdefghij@.-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    owner=_WORDS,
    aliases=st.frozensets(_WORDS, max_size=3),
    org_domains=st.frozensets(_WORDS, max_size=3),
    visibility=st.sampled_from(Visibility),
    contact_policy=st.sampled_from(ContactPolicy),
    calendar_contact_policy=st.sampled_from(CalendarContactPolicy),
    include=st.frozensets(_WORDS, max_size=3),
    exclude=st.frozensets(_WORDS, max_size=3),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    blocklist=st.frozensets(_WORDS, max_size=3),
)
def test_channel_settings_round_trip_through_json(
    owner: str,
    aliases: frozenset[str],
    org_domains: frozenset[str],
    visibility: Visibility,
    contact_policy: ContactPolicy,
    calendar_contact_policy: CalendarContactPolicy,
    include: frozenset[str],
    exclude: frozenset[str],
    flags: tuple[bool, bool, bool, bool, bool],
    blocklist: frozenset[str],
) -> None:
    original = ChannelSettings(
        owner=owner,
        aliases=aliases,
        org_domains=org_domains,
        visibility=visibility,
        contact_policy=contact_policy,
        calendar_contact_policy=calendar_contact_policy,
        folders=FolderSelection(include=include, exclude=exclude),
        sync_internal=flags[0],
        blocklist=blocklist,
        create_companies=flags[1],
        sync_invites=flags[2],
        skip_details=flags[3],
        skip_unverified=flags[4],
    )
    assert settings_from_json(settings_to_json(original)) == original


def test_settings_json_fills_missing_fields_with_defaults() -> None:
    assert settings_from_json('{"owner": "me@x.example"}') == ChannelSettings(owner="me@x.example")
