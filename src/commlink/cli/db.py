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

__all__ = ["cmd_check", "cmd_sql", "cmd_upgrade"]


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
