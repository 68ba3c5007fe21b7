"""Host events and the outbox of the memory store against the conformance suite."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from commlink.stores.memory import MemoryStore
from commlink.testing.conformance import fail_memory_after_writes
from commlink.testing.conformance_events import OutboxConformance


class TestMemoryOutbox(OutboxConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore(outbox=True)

    def break_commit(self, store: MemoryStore, after: int) -> AbstractContextManager[None]:
        return fail_memory_after_writes(store, after)
