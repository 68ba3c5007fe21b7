"""``commlink db``: the schema of a configuration's database, for hosts that
migrate on their own schedule (``SqlStore(..., migrate=False)``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from ..stores.sql_search import IndexSetting

__all__ = ["cmd_check", "cmd_reindex", "cmd_search_index", "cmd_sql", "cmd_upgrade"]


def _engine(args: argparse.Namespace) -> sa.Engine:
    return create_engine(load_config(args.config).store_url, None)


#: how ``db check`` and ``db search-index`` name each index setting
_STATES = {"on": "on", "headers": "on, without bodies", "off": "off"}


def _state(setting: IndexSetting) -> str:
    return "off" if not setting.kept else "on" if setting.bodies else "headers"


def cmd_check(args: argparse.Namespace) -> int:
    from ..stores.sql_search import IndexSetting, index_setting

    engine = _engine(args)
    setting = IndexSetting()
    try:
        found = schema_version(engine)
        if found == SCHEMA_VERSION:
            with engine_lock(engine), engine.connect() as conn:
                setting = index_setting(conn)
    finally:
        dispose(engine)
    if found == SCHEMA_VERSION:
        print(f"schema {found}: up to date; search index {_STATES[_state(setting)]}")
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
    from ..stores.sql_search import index_setting

    # a maintenance step: never a migration on the side
    store = SqlStore(load_config(args.config).store_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            was = _state(index_setting(conn))
        store.set_search_index(args.state != "off", bodies=args.state == "on")
    finally:
        store.close()
    if was == args.state:
        print(f"search index: already {_STATES[args.state]}")
    elif args.state == "off":
        print("search index: off, emptied")
    elif args.state == "headers":
        print("search index: built from the stored mail's people and subjects, without bodies")
    else:
        print("search index: built from the stored mail")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from ..stores.sql_search import index_setting, rebuild_sqlite_index

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
            setting = index_setting(conn)
            if not setting.kept:
                print(
                    "this database keeps no search index: `commlink db search-index on`",
                    file=sys.stderr,
                )
                return 2
            contentless = rebuild_sqlite_index(
                conn, False if args.portable else None, bodies=setting.bodies
            )
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
