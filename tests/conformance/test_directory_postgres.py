"""SqlDirectory on PostgreSQL (psycopg 3) against the conformance suite.

A fresh database is created for this module and dropped afterwards; tables
are emptied between tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlDirectory
from commlink.testing.directory_conformance import (
    CompanySeed,
    DirectoryConformance,
    OpportunitySeed,
    PersonSeed,
)
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


class TestPostgresDirectory(DirectoryConformance):
    @pytest.fixture
    def directory(self, pg_engine: Engine) -> SqlDirectory:
        emptied(pg_engine)
        return SqlDirectory(pg_engine)

    def populate(
        self,
        directory: SqlDirectory,
        people: Sequence[PersonSeed],
        companies: Sequence[CompanySeed],
        opportunities: Sequence[OpportunitySeed],
    ) -> None:
        for c in companies:
            directory.add_company(c.id, c.name, c.domains)
        for p in people:
            directory.add_person(p.id, p.name, p.addresses, p.company_id)
        for o in opportunities:
            directory.add_opportunity(o.id, o.name, o.company_id, o.contacts)
