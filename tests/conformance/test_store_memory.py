"""The in-memory reference store against the public conformance suite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from commlink.stores.memory import MemoryStore
from commlink.testing.conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    @contextlib.contextmanager
    def break_commit(self, store: MemoryStore, after: int) -> Iterator[None]:
        steps = iter(range(after + 1))

        def fail() -> None:
            if next(steps, None) is None:
                raise RuntimeError(f"injected failure after {after} writes")

        store.fault_hook = fail
        try:
            yield
        finally:
            store.fault_hook = None
