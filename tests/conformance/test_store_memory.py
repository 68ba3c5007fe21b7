"""The in-memory reference store against the public conformance suite."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from commlink.stores.memory import MemoryStore
from commlink.testing.conformance import StoreConformance, fail_memory_after_writes


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    def break_commit(self, store: MemoryStore, after: int) -> AbstractContextManager[None]:
        return fail_memory_after_writes(store, after)
