"""Driver-level statements for the hot paths of the SQL store and directory.

SQLAlchemy's per-row parameter processing and the compilation of long
``IN (...)`` lists dominate large batches, so these paths send plain SQL
through ``Connection.exec_driver_sql`` (engine events and error handling
still apply). A key set travels as ONE parameter: a JSON array read with
``json_each`` on SQLite, an array read with ``unnest`` on PostgreSQL.
Many rows are written by one executemany on SQLite and by one
``INSERT .. SELECT * FROM unnest(arrays)`` on PostgreSQL, where arrays are
sent in binary (``%b``: psycopg's text form escapes every element in Python).

Table and column names come from the schema, never from callers' data.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from .sql_schema import UtcDateTime, metadata

__all__ = ["among_sql", "fetch", "is_postgres", "key_set", "mark", "run", "write_rows"]


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def mark(conn: Connection) -> str:
    """The driver's positional parameter marker."""
    return "%s" if is_postgres(conn) else "?"


def among_sql(conn: Connection, column: sa.Column[Any], alias: str = "") -> str:
    """SQL for "``column`` (of the table named ``alias`` in the query, when
    given) is in the key set" given as one parameter made by ``key_set``."""
    name = f"{alias}.{column.name}" if alias else column.name
    if is_postgres(conn):
        # not "= ANY(array)": a prepared statement's generic plan then searches
        # the array linearly for every row scanned; a semi-join hashes or probes
        return f"{name} IN (SELECT unnest(%b::{column.type.compile(dialect=conn.dialect)}[]))"
    return f"{name} IN (SELECT value FROM json_each(?))"


def key_set(conn: Connection, values: Collection[Any]) -> Any:
    """A key set as one parameter (see ``among_sql``)."""
    if is_postgres(conn):
        return list(values)
    return json.dumps(list(values))


def fetch(conn: Connection, sql: str, *params: Any) -> Sequence[Any]:
    """All rows of a query, as tuples."""
    return conn.exec_driver_sql(sql, params).all()


def run(conn: Connection, sql: str, *params: Any) -> None:
    """Execute one statement."""
    conn.exec_driver_sql(sql, params)


@functools.lru_cache(maxsize=256)
def _insert_sql(
    dialect: Dialect,
    table_name: str,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[tuple[str, str], ...] | None,
) -> str:
    table = metadata.tables[table_name]
    names = ", ".join(columns)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in columns)
        sql = f"INSERT INTO {table_name} ({names}) SELECT * FROM unnest({arrays})"
    else:
        sql = f"INSERT INTO {table_name} ({names}) VALUES ({', '.join('?' for _ in columns)})"
    if not conflict:
        return sql
    target = f"{sql} ON CONFLICT ({', '.join(conflict)})"
    if update is None:
        return f"{target} DO NOTHING"
    return f"{target} DO UPDATE SET {', '.join(f'{c} = {e}' for c, e in update)}"


@functools.lru_cache(maxsize=256)
def _moment_types(table_name: str, columns: tuple[str, ...]) -> tuple[tuple[int, UtcDateTime], ...]:
    """Positions and types of the ``UtcDateTime`` columns (converted before sending)."""
    table = metadata.tables[table_name]
    found: list[tuple[int, UtcDateTime]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, UtcDateTime):
            found.append((i, kind))
    return tuple(found)


def write_rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    conflict: Sequence[str] = (),
    update: Sequence[str] | Mapping[str, str] | None = None,
    returning: Sequence[str] = (),
) -> Sequence[Any]:
    """Insert ``rows`` (tuples in ``columns`` order) in one statement.

    With ``conflict`` it is ``INSERT .. ON CONFLICT (conflict)``: ``DO
    NOTHING`` without ``update``, else ``DO UPDATE`` of the named columns
    from the new row, or of columns mapped to SQL expressions (which may
    use ``excluded.<column>``). Rows sharing a conflict key: the last wins.
    ``returning`` (PostgreSQL only: SQLite's executemany returns nothing)
    names columns of the written rows to return.
    """
    if not rows:
        return []
    if isinstance(update, Mapping):
        changes: tuple[tuple[str, str], ...] | None = tuple(update.items())
    elif update is not None:
        changes = tuple((c, f"excluded.{c}") for c in update)
    else:
        changes = None
    cols = tuple(columns)
    postgres = is_postgres(conn)
    if returning and not postgres:
        raise ValueError("RETURNING needs PostgreSQL")
    sql = _insert_sql(conn.dialect, table.name, cols, tuple(conflict), changes)
    moments = _moment_types(table.name, cols)
    if postgres:
        if changes is not None:
            # one statement may not update a row twice: keep the last row per key
            at = [cols.index(c) for c in conflict]
            rows = list({tuple(r[i] for i in at): r for r in rows}.values())
        arrays = [list(column) for column in zip(*rows, strict=True)]
        for i, kind in moments:
            arrays[i] = [kind.process_bind_param(v, conn.dialect) for v in arrays[i]]
        if returning:
            return fetch(conn, f"{sql} RETURNING {', '.join(returning)}", *arrays)
        conn.exec_driver_sql(sql, tuple(arrays))
        return []
    if moments:  # one pass over the rows for all their date columns
        dialect = conn.dialect
        binds = [(i, kind.process_bind_param) for i, kind in moments]
        converted: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for i, bind in binds:
                values[i] = bind(values[i], dialect)
            converted.append(tuple(values))  # (SQLAlchemy takes tuples)
        conn.exec_driver_sql(sql, converted)
        return []
    conn.exec_driver_sql(sql, list(rows))
    return []
