"""Reference stores: ``MemoryStore`` (in process) and ``SqlStore`` (SQLite or
PostgreSQL), plus ``SqlDirectory``, reference CRM tables in the same database,
and token and push-subscription stores for connected accounts."""

from __future__ import annotations

from .memory import MemoryStore
from .push_memory import MemorySubscriptionStore, MemoryTokenStore
from .sql import SCHEMA_VERSION, SqlStore
from .sql_directory import SqlDirectory
from .sql_push import SqlSubscriptionStore, SqlTokenStore, generate_token_key

__all__ = [
    "SCHEMA_VERSION",
    "MemoryStore",
    "MemorySubscriptionStore",
    "MemoryTokenStore",
    "SqlDirectory",
    "SqlStore",
    "SqlSubscriptionStore",
    "SqlTokenStore",
    "generate_token_key",
]
