"""A host implements ``Store`` itself and checks it with the conformance suite.

Here the "custom" store is a thin subclass of the in-memory reference store
that also publishes every commit to the host's event bus; a real host would
write to its own tables. Run the suite with:

    pytest examples/custom_store.py
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from commlink.records import SyncBatch
from commlink.stores.memory import MemoryStore
from commlink.testing.conformance import StoreConformance, fail_memory_after_writes


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

    def break_commit(self, store: PublishingStore, after: int) -> AbstractContextManager[None]:
        """Fail inside the next commit after ``after`` writes (atomicity test)."""
        return fail_memory_after_writes(store, after)
