"""SqlDirectory on SQLite (a file in WAL mode) against the conformance suite."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.testing.directory_conformance import (
    CompanySeed,
    DirectoryConformance,
    OpportunitySeed,
    PersonSeed,
)


class TestSqliteDirectory(DirectoryConformance):
    @pytest.fixture
    def directory(self, tmp_path: Path) -> Iterator[SqlDirectory]:
        store = SqlStore(f"sqlite:///{tmp_path / 'crm.sqlite'}")
        yield SqlDirectory(store)
        store.close()

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
