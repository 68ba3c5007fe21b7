"""A throw-away PostgreSQL database for tests.

``temporary_database(server)`` creates a uniquely named database on a
server (through its ``test`` database), yields an engine for it with the
commlink schema in place, and drops it afterwards, so test runs never see
each other's data. ``emptied(engine)`` makes such a database fresh again
for the next test.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..stores.sql import SqlStore

__all__ = ["DEFAULT_SERVER", "emptied", "reachable", "temporary_database"]

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def emptied(engine: Engine) -> Engine:
    """``engine`` with every commlink row deleted but the schema's, whose
    settings are a new database's again (it keeps its whole search index)."""
    from ..stores.sql_schema import metadata, schema_table

    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is not schema_table:
                conn.execute(table.delete())
        conn.execute(sa.update(schema_table).values(search_index=True, search_bodies=True))
    return engine


def reachable(server: str = DEFAULT_SERVER, timeout: float = 1.0) -> bool:
    """Whether the server's port accepts connections."""
    parts = urlsplit(server.replace("+psycopg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def temporary_database(server: str = DEFAULT_SERVER, admin_db: str = "test") -> Iterator[Engine]:
    """An engine on a fresh database with the commlink schema; dropped on exit."""
    name = f"commlink_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(f"{server}/{admin_db}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"{server}/{name}")
    try:
        SqlStore(engine)  # creates the schema once
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
