"""``DjangoStore`` on SQLite (a file, ``transaction_mode`` IMMEDIATE)
against the public conformance suite."""

from __future__ import annotations

import contextlib

import pytest

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store, fail_after_writes
from commlink.testing.conformance import StoreConformance


class TestDjangoSqliteStore(StoreConformance):
    @pytest.fixture
    def store(self) -> DjangoStore:
        clear_store("default")
        return DjangoStore("default")

    def break_commit(
        self, store: DjangoStore, after: int
    ) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.using, after)
