"""``commlink db``: the schema of a configuration's database, for hosts that
migrate on their own schedule (``SqlStore(..., migrate=False)``)."""

from __future__ import annotations

import argparse
import os
import sys

import sqlalchemy as sa

from ..stores.sql_schema import (
    SCHEMA_VERSION,
    check_schema,
    create_engine,
    dispose,
    engine_lock,
    ensure_schema,
    outside_transaction,
    schema_ddl,
    schema_version,
)
from .config import load_config

__all__ = ["cmd_check", "cmd_reindex", "cmd_search_index", "cmd_sql", "cmd_upgrade"]


def _engine(args: argparse.Namespace) -> sa.Engine:
    return create_engine(load_config(args.config).store_url, None)


def cmd_check(args: argparse.Namespace) -> int:
    from ..stores.sql_search import index_kept

    engine = _engine(args)
    kept = True
    try:
        found = schema_version(engine)
        if found == SCHEMA_VERSION:
            with engine_lock(engine), engine.connect() as conn:
                kept = index_kept(conn)
    finally:
        dispose(engine)
    if found == SCHEMA_VERSION:
        print(f"schema {found}: up to date; search index {'on' if kept else 'off'}")
        return 0
    if found is None:
        print(
            f"no commlink schema (this commlink needs {SCHEMA_VERSION}): run `commlink db upgrade`"
        )
    elif found > SCHEMA_VERSION:
        print(f"schema {found} is newer than this commlink ({SCHEMA_VERSION}): upgrade commlink")
    else:
        print(f"schema {found}, this commlink needs {SCHEMA_VERSION}: run `commlink db upgrade`")
    return 1


def cmd_upgrade(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        found = ensure_schema(engine)
    finally:
        dispose(engine)
    if found == SCHEMA_VERSION:
        print(f"schema {found}: up to date")
    elif found == 0:
        print(f"created schema {SCHEMA_VERSION}")
    else:
        print(f"upgraded schema {found} to {SCHEMA_VERSION}")
    return 0


def cmd_search_index(args: argparse.Namespace) -> int:
    from ..stores.sql import SqlStore

    # a maintenance step: never a migration on the side
    store = SqlStore(load_config(args.config).store_url, migrate=False)
    try:
        on = args.state == "on"
        was = store.search_index
        store.set_search_index(on)
    finally:
        store.close()
    if was == on:
        print(f"search index: already {args.state}")
    else:
        print("search index: built from the stored mail" if on else "search index: off, emptied")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from ..stores.sql_search import index_kept, rebuild_sqlite_index

    engine = _engine(args)
    try:
        if engine.dialect.name != "sqlite":
            print("only a SQLite store's search index is rebuilt this way", file=sys.stderr)
            return 2
        check_schema(engine)  # a maintenance step: never a migration on the side
        path = engine.url.database
        before = _size(path)
        with (
            engine_lock(engine),
            engine.connect().execution_options(commlink_write=True) as conn,
            conn.begin(),
        ):
            if not index_kept(conn):
                print(
                    "this database keeps no search index: `commlink db search-index on`",
                    file=sys.stderr,
                )
                return 2
            contentless = rebuild_sqlite_index(conn, False if args.portable else None)
        if args.vacuum:
            outside_transaction(engine, "VACUUM")
    finally:
        dispose(engine)
    form = "without a copy of the text" if contentless else "portable, with a copy of the text"
    sizes = f"; database {before / 1e6:.1f} -> {_size(path) / 1e6:.1f} MB" if args.vacuum else ""
    print(f"search index rebuilt ({form}){sizes}")
    return 0


def _size(path: str | None) -> int:
    return os.path.getsize(path) if path and os.path.exists(path) else 0


def cmd_sql(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_ddl(args.dialect))
    return 0
