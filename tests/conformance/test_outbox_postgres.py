"""Host events and the outbox of the SQL store on PostgreSQL against the conformance suite."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance import fail_after_writes
from commlink.testing.conformance_events import OutboxConformance

pytestmark = pytest.mark.postgres


class TestPostgresOutbox(OutboxConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        with pg_engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name != "commlink_schema":
                    conn.execute(table.delete())
        return SqlStore(pg_engine, outbox=True)

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
