"""The SQL store on PostgreSQL (psycopg 3) against the conformance suite.

A fresh database is created for this module and dropped afterwards; tables
are truncated between tests.
"""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.testing.conformance import StoreConformance, fail_after_writes
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        # DELETE beats TRUNCATE by far on a handful of rows
        emptied(pg_engine)
        return SqlStore(pg_engine)

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
