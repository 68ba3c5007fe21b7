"""Helpers for testing ``DjangoStore`` (and hosts' code on it) with the
public conformance suite: empty the store's tables, and make a commit fail
after a number of writes (``StoreConformance.break_commit``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.db import connections

__all__ = ["clear_store", "fail_after_writes"]

_WRITES = ("INSERT", "UPDATE", "DELETE")


def clear_store(using: str = "default") -> None:
    """Delete every row of the app's tables (``TRUNCATE`` on PostgreSQL)."""
    models = list(apps.get_app_config("commlink").get_models())
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(connection.ops.quote_name(t._meta.db_table) for t in models)
            cursor.execute(f"TRUNCATE {names}")
        else:
            for model in models:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


@contextlib.contextmanager
def fail_after_writes(using: str, after: int) -> Iterator[None]:
    """While active, the connection of ``using`` (in this thread) raises
    before executing its write statement number ``after + 1``."""
    seen = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal seen
        if sql.lstrip().upper().startswith(_WRITES):
            seen += 1
            if seen > after:
                raise RuntimeError(f"injected failure after {after} writes")
        return execute(sql, params, many, context)

    with connections[using].execute_wrapper(count):
        yield
