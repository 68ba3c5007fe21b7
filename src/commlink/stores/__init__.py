"""Reference stores: ``MemoryStore`` (in process) and ``SqlStore`` (SQLite or
PostgreSQL), plus ``SqlDirectory``, reference CRM tables in the same database."""

from __future__ import annotations

from .memory import MemoryStore
from .sql import SCHEMA_VERSION, SqlStore
from .sql_directory import SqlDirectory

__all__ = ["SCHEMA_VERSION", "MemoryStore", "SqlDirectory", "SqlStore"]
