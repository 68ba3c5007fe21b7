"""A host implements ``Store`` itself and checks it with the conformance suite.

Here the "custom" store is a thin subclass of the in-memory reference store
that also publishes every commit to the host's event bus; a real host would
write to its own tables. Run the suite with:

    pytest examples/custom_store.py
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from commlink.records import SyncBatch
from commlink.stores.memory import MemoryStore
from commlink.testing.conformance import StoreConformance


class PublishingStore(MemoryStore):
    """Stores like MemoryStore and tells the host what changed."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, int]] = []

    def commit(self, batch: SyncBatch) -> None:
        super().commit(batch)
        self.published.append((batch.channel_id, len(batch.messages)))


class TestPublishingStore(StoreConformance):
    @pytest.fixture
    def store(self) -> PublishingStore:
        return PublishingStore()

    @contextlib.contextmanager
    def break_commit(self, store: PublishingStore, after: int) -> Iterator[None]:
        """Fail inside the next commit after ``after`` writes (atomicity test)."""
        remaining = iter(range(after + 1))

        def fail() -> None:
            if next(remaining, None) is None:
                raise RuntimeError(f"injected failure after {after} writes")

        store.fault_hook = fail
        try:
            yield
        finally:
            store.fault_hook = None
