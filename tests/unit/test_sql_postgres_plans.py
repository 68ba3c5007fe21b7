"""PostgreSQL plans the store's per-batch lookups for their own parameters.

A driver prepares a statement it has run five times, and PostgreSQL may then
keep one generic plan for it, made for the table sizes of that moment and
blind to which channel a query names. An import's lookups, planned while its
tables were nearly empty, then scanned them whole for every batch.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.testing.conformance_data import T0, batch, channel, message
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.postgres


def test_an_import_runs_its_lookups_with_plans_for_their_parameters(pg_engine: Engine) -> None:
    emptied(pg_engine)
    url = pg_engine.url.render_as_string(hide_password=False)
    # one pooled connection: every statement below is prepared on it
    store = SqlStore(url, engine_options={"pool_size": 1, "max_overflow": 0})
    try:
        store.save_channel(channel("c1"))
        store.save_channel(channel("c2", "u2"))
        for n in range(12):
            ids = [f"m{n}-{i}" for i in range(40)]
            earlier = [f"m{n - 1}-{i}@mail.example" for i in range(40)]
            records = tuple(
                message(pid, date=T0 + timedelta(minutes=n), references=(earlier[i],) if n else ())
                for i, pid in enumerate(ids)
            )
            assert store.known_ids("c1", "INBOX", ids) == set()
            store.thread_links("c1", earlier)
            store.commit(batch("c1", messages=records, cursor=f"k{n}", generation=1))
            store.commit(batch("c2", messages=records[:5], cursor=f"k{n}", generation=1))
            assert store.known_ids("c1", "INBOX", ids) == set(ids)
        with store.engine.connect() as conn:
            prepared = conn.exec_driver_sql(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            ).all()
    finally:
        store.close()
    lookups = {
        "known ids": [
            p for p in prepared if "SELECT provider_id FROM commlink_message_assocs" in p[0]
        ],
        "references elsewhere": [p for p in prepared if "r.channel_id <>" in p[0]],
    }
    for name, found in lookups.items():
        # prepared and run again and again: the case a generic plan is made for
        assert found, (name, prepared)
        assert all(custom >= 5 for _, _, custom in found), (name, found)
        assert all(generic == 0 for _, generic, _ in found), (name, found)
