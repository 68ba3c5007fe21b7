"""``commlink db``: the schema of a configuration's database, for hosts that
migrate on their own schedule (``SqlStore(..., migrate=False)``)."""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa

from ..stores.sql_schema import (
    SCHEMA_VERSION,
    create_engine,
    ensure_schema,
    schema_ddl,
    schema_version,
)
from .config import load_config

__all__ = ["add_db_parser"]


def _engine(args: argparse.Namespace) -> sa.Engine:
    return create_engine(load_config(args.config).store_url, None)


def cmd_check(args: argparse.Namespace) -> int:
    engine = _engine(args)
    try:
        found = schema_version(engine)
    finally:
        engine.dispose()
    if found == SCHEMA_VERSION:
        print(f"schema {found}: up to date")
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
        engine.dispose()
    if found == SCHEMA_VERSION:
        print(f"schema {found}: up to date")
    elif found == 0:
        print(f"created schema {SCHEMA_VERSION}")
    else:
        print(f"upgraded schema {found} to {SCHEMA_VERSION}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_ddl(args.dialect))
    return 0


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``commlink db check|upgrade|sql``."""
    db = sub.add_parser("db", help="check, upgrade or print the database schema")
    actions = db.add_subparsers(dest="db_command", required=True)
    check = actions.add_parser("check", help="exit 1 unless the schema is current")
    check.add_argument("config")
    check.set_defaults(func=cmd_check)
    upgrade = actions.add_parser("upgrade", help="create or migrate the schema")
    upgrade.add_argument("config")
    upgrade.set_defaults(func=cmd_upgrade)
    sql = actions.add_parser("sql", help="print the DDL of a fresh schema")
    sql.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    sql.set_defaults(func=cmd_sql)
