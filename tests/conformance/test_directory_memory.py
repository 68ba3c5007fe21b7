"""The in-memory reference directory against the public conformance suite."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from commlink.testing.directory import InMemoryDirectory
from commlink.testing.directory_conformance import (
    CompanySeed,
    DirectoryConformance,
    OpportunitySeed,
    PersonSeed,
)


class TestMemoryDirectory(DirectoryConformance):
    @pytest.fixture
    def directory(self) -> InMemoryDirectory:
        return InMemoryDirectory()

    def populate(
        self,
        directory: InMemoryDirectory,
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
