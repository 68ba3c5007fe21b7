"""Schema 7 adds the outbox tables: a database of schema 6 is upgraded in
place and its store can keep events at once. (Later steps are left out:
they have tests of their own and expect a database as schema 6 left it.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from commlink.events import MESSAGE_CREATED
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    outbox,
    outbox_consumers,
    schema_table,
)
from commlink.testing.conformance_data import batch, message, setup_channels


def test_a_schema_6_database_gets_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in range(7, SCHEMA_VERSION):
        monkeypatch.setitem(MIGRATIONS, version, lambda conn: None)
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with SqlStore(url) as store:
        setup_channels(store)
        store.commit(batch(messages=(message("before"),)))
        with store.engine.begin() as conn:
            for table in (outbox_consumers, outbox):
                conn.exec_driver_sql(f"DROP TABLE {table.name}")
            conn.execute(sa.update(schema_table).values(version=6))
    with SqlStore(url, outbox=True) as store:
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(schema_table.c.version)).scalar() == SCHEMA_VERSION
        assert store.outbox().pending("x") == []  # what came before has no events
        store.commit(batch(messages=(message("after"),)))
        [created] = store.outbox().pending("x")
        assert (created.type, created.message_id) == (MESSAGE_CREATED, "after@mail.example")
