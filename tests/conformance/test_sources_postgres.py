"""Attachment sources of the SQL store on PostgreSQL against the public suite.
A fresh database per module; rows are deleted between tests."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.testing.conformance_sources import SourcesConformance
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


class TestPostgresSources(SourcesConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        emptied(pg_engine)
        return SqlStore(pg_engine)
