"""Attachment sources of the in-memory reference store against the public suite."""

from __future__ import annotations

import pytest

from commlink.stores.memory import MemoryStore
from commlink.testing.conformance_sources import SourcesConformance


class TestMemorySources(SourcesConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()
