"""The SQL store on PostgreSQL (psycopg 3) against the conformance suite.

A fresh database is created for this module and dropped afterwards; tables
are truncated between tests.
"""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance import StoreConformance, fail_after_writes

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        # DELETE beats TRUNCATE by far on a handful of rows
        with pg_engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name != "commlink_schema":
                    conn.execute(table.delete())
        return SqlStore(pg_engine)

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
