"""Host events and the outbox of the SQL store on PostgreSQL against the conformance suite."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.testing.conformance import fail_after_writes
from commlink.testing.conformance_events import OutboxConformance
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


class TestPostgresOutbox(OutboxConformance):
    @pytest.fixture
    def store(self, pg_engine: Engine) -> SqlStore:
        emptied(pg_engine)
        return SqlStore(pg_engine, outbox=True)

    def break_commit(self, store: SqlStore, after: int) -> contextlib.AbstractContextManager[None]:
        return fail_after_writes(store.engine, after)
