"""``DjangoStore`` on PostgreSQL (psycopg 3) against the public conformance
suite. The ``pg`` database is created for the session; tables are
truncated between tests."""

from __future__ import annotations

import contextlib

import pytest

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store, fail_after_writes
from commlink.testing.conformance import StoreConformance

pytestmark = pytest.mark.postgres


class TestDjangoPostgresStore(StoreConformance):
    @pytest.fixture
    def store(self, pg_alias: str) -> DjangoStore:
        clear_store(pg_alias)
        return DjangoStore(pg_alias)

    def break_commit(
        self, store: DjangoStore, after: int
    ) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.using, after)
