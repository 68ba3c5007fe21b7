"""Reference stores: ``MemoryStore`` (in process) and ``SqlStore`` (SQLite or
PostgreSQL), plus ``SqlDirectory``, reference CRM tables in the same database,
and token and push-subscription stores for connected accounts.

Names load on first use, so importing one store does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_LAZY = {
    "SCHEMA_VERSION": "commlink.stores.sql",
    "MemoryStore": "commlink.stores.memory",
    "MemorySubscriptionStore": "commlink.stores.push_memory",
    "MemoryTokenStore": "commlink.stores.push_memory",
    "SqlDirectory": "commlink.stores.sql_directory",
    "SqlStore": "commlink.stores.sql",
    "SqlSubscriptionStore": "commlink.stores.sql_push",
    "SqlTokenStore": "commlink.stores.sql_push",
    "generate_token_key": "commlink.stores.sql_push",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'commlink.stores' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
