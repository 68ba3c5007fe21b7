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

from contextlib import AbstractContextManager
from typing import Any

from .conformance_read import ReadTests
from .conformance_write import WriteTests

__all__ = ["StoreConformance"]


class StoreConformance(WriteTests, ReadTests):
    """Base class of a store's conformance tests (pytest collects subclasses)."""

    def break_commit(self, store: Any, after: int) -> AbstractContextManager[None]:
        """Make the next ``commit`` of ``store`` raise after ``after`` write operations.

        The failure must happen inside the store's transaction, after the
        given number of writes went through, to prove that none of them stay.
        """
        raise NotImplementedError
