"""Small helpers shared by the ``DjangoStore`` modules: key chunks, the
backend in use, and model rows as the reference row converters read them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from django.db import connections
from sqlalchemy.engine import RowMapping

__all__ = ["CHUNK", "as_row", "chunked", "is_postgres"]

T = TypeVar("T")

#: Keys per ``IN (...)`` list: well under every backend's parameter limit,
#: and small enough that a statement's plan stays cheap to build.
CHUNK = 900


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (never an empty slice)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_postgres(using: str) -> bool:
    """Whether the database alias is a PostgreSQL database."""
    return bool(connections[using].vendor == "postgresql")


def as_row(values: Mapping[str, Any]) -> RowMapping:
    """A ``values()`` dict where the reference converters (``stores.sql_rows``)
    expect a row mapping: they only read it by column name."""
    return cast(RowMapping, values)
