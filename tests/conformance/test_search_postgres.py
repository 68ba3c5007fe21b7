"""Search in the SQL store on PostgreSQL (tsvector + GIN) against the public
search suite. A fresh database per module; rows are deleted between tests."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from commlink.stores import sql_search
from commlink.stores.sql import SqlStore
from commlink.testing.conformance_search import SearchConformance
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


class TestPostgresSearch(SearchConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        emptied(pg_engine)
        return SqlStore(pg_engine)


class TestPostgresSearchWalking(TestPostgresSearch):
    """Nothing counts as few rows: every query walks the date index, the
    plan a large mailbox takes for common words and phrases of them."""

    @pytest.fixture(autouse=True)
    def large_mailbox_plans(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sql_search, "_FEW_ROWS", 0)
        monkeypatch.setattr(sql_search, "_PHRASE_ROWS", 0)


class TestPostgresSearchManyMatches(TestPostgresSearch):
    """One matching row is many: a phrase's rows are read and counted, and
    any match sends the query down the date index (none: no page at all)."""

    @pytest.fixture(autouse=True)
    def dense_phrase_plans(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sql_search, "_FEW_ROWS", 1)
