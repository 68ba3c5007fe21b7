"""Attachment sources of the SQL store on PostgreSQL against the public suite.
A fresh database per module; rows are deleted between tests."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance_sources import SourcesConformance

pytestmark = pytest.mark.postgres


class TestPostgresSources(SourcesConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        with pg_engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name != "commlink_schema":
                    conn.execute(table.delete())
        return SqlStore(pg_engine)
