"""Search in the in-memory reference store against the public search suite."""

from __future__ import annotations

import pytest

from commlink.ports import SearchableStore
from commlink.stores.memory import MemoryStore
from commlink.testing.conformance_search import SearchConformance


class TestMemorySearch(SearchConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        store = MemoryStore()
        assert isinstance(store, SearchableStore)
        return store
