"""The SQL store on PostgreSQL (psycopg 3) against the conformance suite.

A fresh database is created for this module and dropped afterwards; tables
are truncated between tests.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance import StoreConformance, fail_after_writes

pytestmark = pytest.mark.postgres

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    if not _reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"commlink_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(f"{SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"{SERVER}/{name}")
    try:
        SqlStore(engine)  # creates the schema once
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
