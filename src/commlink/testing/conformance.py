"""The public conformance suite every ``Store`` must pass.

Subclass it in a test module, provide a function-scoped ``store`` fixture
returning a fresh, empty store, and implement ``break_commit``::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self) -> MyStore:
            return MyStore(...)

        @contextlib.contextmanager
        def break_commit(self, store: MyStore, after: int) -> Iterator[None]:
            ...  # make the next commit raise after `after` write operations
            yield

The tests only use the ``Store`` protocol, so a host's own store can be
checked exactly like the reference stores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ..stores.memory import MemoryStore
from .conformance_model import ModelTests
from .conformance_privacy import PrivacyTests
from .conformance_read import ReadTests
from .conformance_trust import TrustTests
from .conformance_write import WriteTests

__all__ = ["StoreConformance", "fail_after_writes", "fail_memory_after_writes"]

_WRITES = ("INSERT", "UPDATE", "DELETE")


class StoreConformance(WriteTests, ReadTests, TrustTests, PrivacyTests, ModelTests):
    """Base class of a store's conformance tests (pytest collects subclasses)."""

    def break_commit(self, store: Any, after: int) -> AbstractContextManager[None]:
        """Make the next ``commit`` of ``store`` raise after ``after`` write operations.

        The failure must happen inside the store's transaction, after the
        given number of writes went through, to prove that none of them stay.
        Without it the atomicity test is skipped.
        """
        raise NotImplementedError


@contextlib.contextmanager
def fail_after_writes(engine: Engine, after: int) -> Iterator[None]:
    """A ``break_commit`` for SQLAlchemy stores: while active, the engine
    raises before executing its write statement number ``after + 1``."""
    seen = 0

    def count(*args: Any) -> None:
        nonlocal seen
        statement: str = args[2]
        if statement.lstrip().upper().startswith(_WRITES):
            seen += 1
            if seen > after:
                raise RuntimeError(f"injected failure after {after} writes")

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", count)


@contextlib.contextmanager
def fail_memory_after_writes(store: MemoryStore, after: int) -> Iterator[None]:
    """A ``break_commit`` for ``MemoryStore`` (and stores built on it): while
    active, the store raises before its write step number ``after + 1``."""
    steps = iter(range(after + 1))

    def fail() -> None:
        if next(steps, None) is None:
            raise RuntimeError(f"injected failure after {after} writes")

    store.fault_hook = fail
    try:
        yield
    finally:
        store.fault_hook = None
