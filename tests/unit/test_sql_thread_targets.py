"""The SQL store's timeline index (``commlink_thread_targets``): kept in step
with every write (through any channel's copy), and what the timeline query
reads on PostgreSQL. Its migrations are in ``test_sql_migrations``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores import sql_read
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import thread_targets
from commlink.testing.conformance_data import ALICE, BOB, CAROL, T0, batch, channel, links, message
from commlink.testing.postgres import emptied

U1 = Viewer("u1")
ACME = Target(TargetKind.COMPANY, "acme")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        found = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield found
        found.close()
        return
    engine: Engine = request.getfixturevalue("pg_engine")
    emptied(engine)
    yield SqlStore(engine)


def rows(store: SqlStore) -> set[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(thread_targets.c.kind, thread_targets.c.target_id, thread_targets.c.thread_id)
        )
        return {tuple(r) for r in found}  # type: ignore[misc]


def last_at(store: SqlStore, thread_id: str) -> object:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(thread_targets.c.last_at)).where(
                thread_targets.c.thread_id == thread_id
            )
        ).scalar()


def company_links(*keys: str) -> tuple[object, ...]:
    return tuple(links(k, "acme", kind=TargetKind.COMPANY) for k in keys)


def test_rows_follow_commits_links_merges_and_deletions(store: SqlStore) -> None:
    store.save_channel(channel())
    first = message("m1", thread="t1", sender=ALICE)
    later = message("m2", thread="t1", sender=CAROL, date=T0 + timedelta(days=1))
    other = message("m3", thread="t2", sender=BOB)
    store.commit(batch(messages=(first, later, other), links=company_links(ALICE)))
    assert rows(store) == {("company", "acme", "t1")}
    assert last_at(store, "t1") == T0 + timedelta(days=1)  # the thread's latest, any sender
    store.relink(company_links(ALICE, BOB))
    assert rows(store) == {("company", "acme", "t1"), ("company", "acme", "t2")}
    store.commit(batch(thread_merges=(("t2", "t1"),)))
    assert rows(store) == {("company", "acme", "t1")}
    store.commit(batch(deleted=("m2",)))
    assert last_at(store, "t1") == T0
    store.relink((links(ALICE),))  # alice unlinked: t1 stays through bob's merged message
    assert rows(store) == {("company", "acme", "t1")}
    store.commit(batch(deleted=("m3",)))
    assert rows(store) == set()
    store.remove_channel("c1")
    assert rows(store) == set()


@pytest.mark.postgres
def test_postgres_reads_a_timeline_page_from_the_index(pg_engine: Engine) -> None:
    store = SqlStore(pg_engine)
    emptied(pg_engine)
    store.save_channel(channel())
    records = tuple(
        message(f"p{i}", thread=f"pt{i}", date=T0 + timedelta(minutes=i)) for i in range(3000)
    )
    store.commit(batch(messages=records, links=company_links(ALICE)))
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {thread_targets.name}")
    captured: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(pg_engine, "before_cursor_execute", capture)
    try:
        with pg_engine.connect() as conn:
            page = sql_read.timeline(conn, ACME, U1, PageRequest(limit=50))
    finally:
        sa.event.remove(pg_engine, "before_cursor_execute", capture)
    assert [t.thread_id for t in page.items][:2] == ["pt2999", "pt2998"]
    statement, params = captured[0]
    with pg_engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "commlink_thread_targets_recent" in plan, plan
    assert "Sort" not in plan, plan  # the index gives the order
