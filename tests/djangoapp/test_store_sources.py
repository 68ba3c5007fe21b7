"""``DjangoStore.message_source`` (``MessageSources``) on SQLite and
PostgreSQL against the public conformance suite."""

from __future__ import annotations

import pytest

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store
from commlink.testing.conformance_sources import SourcesConformance


class TestDjangoSqliteSources(SourcesConformance):
    @pytest.fixture
    def store(self) -> DjangoStore:
        clear_store("default")
        return DjangoStore("default")


@pytest.mark.postgres
class TestDjangoPostgresSources(SourcesConformance):
    @pytest.fixture
    def store(self, pg_alias: str) -> DjangoStore:
        clear_store(pg_alias)
        return DjangoStore(pg_alias)
