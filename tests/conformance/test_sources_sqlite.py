"""Attachment sources of the SQL store on SQLite against the public suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commlink.stores.sql import SqlStore
from commlink.testing.conformance_sources import SourcesConformance


class TestSqliteSources(SourcesConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield store
        store.close()
