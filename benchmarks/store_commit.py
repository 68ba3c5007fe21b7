"""Store write path and directory lookups on SQLite and PostgreSQL.

Commit: N generated messages (default 20,000) are parsed and run through the
policy once (outside the timing) into ``SyncBatch``es of 500, which are then
committed into a fresh ``SqlStore``; it prints messages/s and SQL statements
per commit (an executemany counts once), for a first import and for
re-committing the same batches.

Lookup: ``SqlDirectory.people_by_addresses`` for 1,000 keys (four in five
known) against P people (default 200,000), time per call.

PostgreSQL is used when reachable on 127.0.0.1:5432 (a temporary database).

    python benchmarks/store_commit.py [--messages N] [--people P] [--no-postgres]
"""

from __future__ import annotations

import argparse
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).parent))

from corpus import OWNER, messages, person

from commlink.mime.parse import parse_message
from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.policy.pipeline import evaluate
from commlink.records import SyncBatch
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.testing.directory import InMemoryDirectory

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
CHANNEL = Channel(
    "bench",
    "owner",
    ChannelKind.MAIL,
    "bench",
    ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
)


def build_batches(count: int, people: int, size: int) -> list[SyncBatch]:
    """Real batches: parsed, filtered, matched and threaded messages."""
    directory = InMemoryDirectory()
    for i in range(0, people, 10):  # every tenth person is known to the CRM
        name, address = person(i)
        directory.add_person(f"p{i}", name, [address])
    raws = list(messages(count, people))
    batches: list[SyncBatch] = []
    for start in range(0, len(raws), size):
        parsed = [
            parse_message(raw, provider_id=str(start + i))
            for i, raw in enumerate(raws[start : start + size])
        ]
        result = evaluate(parsed, CHANNEL, {}, directory, {})
        batches.append(
            SyncBatch(
                CHANNEL.id,
                "INBOX",
                messages=result.records,
                links=result.links,
                skipped=result.skipped,
                thread_merges=result.merges,
                cursor=f"page-{start}",
                generation=1,
            )
        )
    return batches


@contextmanager
def counting(engine: Engine) -> Iterator[list[int]]:
    """Counts statements sent to the database (an executemany counts once)."""
    counter = [0]

    def count(*_args: Any) -> None:
        counter[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


#: Most statements per 500-message commit. A first import took 18.0 (SQLite)
#: and 20.1 (PostgreSQL: an advisory lock more, and ANALYZE once) before new
#: messages got their primary keys without a query of their own; on SQLite
#: the search index (schema 8) adds two, its rows and their words.
STATEMENT_TARGETS = {
    ("SQLite", "first import"): 19.0,
    ("SQLite", "re-commit"): 8.0,
    ("PostgreSQL", "first import"): 19.1,
    ("PostgreSQL", "re-commit"): 8.0,
}


def bench_commit(name: str, store: SqlStore, batches: Sequence[SyncBatch]) -> None:
    store.save_channel(CHANNEL)
    total = sum(len(b.messages) + len(b.skipped) for b in batches)
    for label in ("first import", "re-commit"):
        most = STATEMENT_TARGETS[name, label]
        with counting(store.engine) as statements:
            started = time.perf_counter()
            for batch in batches:
                store.commit(batch)
            elapsed = time.perf_counter() - started
        print(
            f"{name:<10} commit {label:<12}: {total / elapsed:9,.0f} msg/s "
            f"({elapsed:5.2f}s for {total:,} in {len(batches)} batches; "
            f"{statements[0] / len(batches):5.1f} statements per commit, target <= {most:.1f})"
        )


def bench_lookup(name: str, directory: SqlDirectory, people: int, calls: int = 30) -> None:
    rng = random.Random(3)
    t = time.perf_counter()
    directory.add_people_bulk((f"p{i}", person(i)[0], [person(i)[1]], None) for i in range(people))
    load = time.perf_counter() - t

    def keys() -> list[str]:
        found = [person(rng.randrange(people))[1] for _ in range(800)]
        return found + [f"nobody.{rng.randrange(10**9)}@unknown.example" for _ in range(200)]

    directory.people_by_addresses(keys())  # warm caches
    times: list[float] = []
    hits = 0
    for _ in range(calls):
        wanted = keys()
        started = time.perf_counter()
        result = directory.people_by_addresses(wanted)
        times.append(time.perf_counter() - started)
        hits += len(result)
    print(
        f"{name:<10} people_by_addresses(1,000 keys) against {people:,} people "
        f"(loaded in {load:.1f}s): median {statistics.median(times) * 1000:6.2f} ms, "
        f"best {min(times) * 1000:6.2f} ms per call ({hits / calls:.0f} found per call)"
    )


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def pg_database() -> Iterator[Engine]:
    name = f"commlink_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"{PG_SERVER}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run(name: str, open_engine: Callable[[], Any], args: argparse.Namespace, batches: Any) -> None:
    with open_engine() as engine:
        store = SqlStore(engine)
        bench_commit(name, store, batches)
        bench_lookup(name, SqlDirectory(store), args.people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    t = time.perf_counter()
    batches = build_batches(args.messages, args.people, args.batch)
    kept = sum(len(b.messages) for b in batches)
    print(
        f"prepared {args.messages:,} messages ({kept:,} kept) in {len(batches)} batches "
        f"in {time.perf_counter() - t:.1f}s"
    )

    @contextmanager
    def sqlite_engine() -> Iterator[Engine]:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqlStore(f"sqlite:///{tmp}/bench.sqlite")
            try:
                yield store.engine
            finally:
                store.close()

    run("SQLite", sqlite_engine, args, batches)
    if args.no_postgres:
        return
    if not pg_reachable():
        print("PostgreSQL is not reachable on 127.0.0.1:5432; skipped")
        return
    run("PostgreSQL", pg_database, args, batches)


if __name__ == "__main__":
    main()
