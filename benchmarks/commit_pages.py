"""Which tables and indexes one commit writes, counted in pages (SQLite).

Wall-clock figures of a bulk import move by 10% or more between runs on a
shared machine; the pages a commit writes to the write-ahead log do not.
This script commits ``--messages`` generated messages and one more batch
in batches of ``--batch`` (parsed and run through the policy beforehand,
as in ``store_commit.py``), emptying the log before each commit, and
counts the frames each commit adds to the ``-wal`` file (one page each).
The last commit's pages are named after the table or index that owns
them (SQLite's ``dbstat``). Pages on the
free list (zeroed by ``secure_delete`` as merges of the search index free
them) are counted as such.

Use it to see what a schema or write-path change saves before timing it:
an index dropped, a column moved, an FTS5 option.

    python benchmarks/commit_pages.py [--messages 45000] [--batch 500] [--sqlite pysqlite3]
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

sys.path.insert(0, str(Path(__file__).parent))

from store_commit import CHANNEL, build_batches

from commlink.stores.sql import SqlStore

_WAL_HEADER = 32
_FRAME_HEADER = 24


def wal_pages(wal: bytes) -> list[int]:
    """The page number of every frame in a write-ahead log."""
    if len(wal) < _WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    step = _FRAME_HEADER + page_size
    return [
        struct.unpack(">I", wal[at : at + 4])[0]
        for at in range(_WAL_HEADER, len(wal) - step + 1, step)
    ]


def owners(conn: sa.Connection) -> dict[int, str]:
    """The table or index owning each page in use."""
    rows = conn.exec_driver_sql("SELECT name, pageno FROM dbstat").all()
    return {int(page): str(name) for name, page in rows}


def restart_log(engine: sa.Engine) -> None:
    """Copy the log into the database and cut it to nothing (one connection:
    the store's own helper leaves a pool of one alone)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("COMMIT")  # out of the implicit BEGIN
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=45_000, help="committed before")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--sqlite", choices=["stdlib", "pysqlite3"], default="stdlib")
    args = parser.parse_args()

    started = time.perf_counter()
    batches = build_batches(args.messages + args.batch, args.people, args.batch)
    print(f"prepared {len(batches)} batches in {time.perf_counter() - started:.1f}s")
    options: dict[str, Any] = {"poolclass": StaticPool}  # one connection, no checkpoint thread
    if args.sqlite == "pysqlite3":
        import pysqlite3.dbapi2

        options["module"] = pysqlite3.dbapi2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pages.sqlite"
        engine = sa.create_engine(f"sqlite:///{path}", **options)
        store = SqlStore(engine)
        store.save_channel(CHANNEL)
        wal = Path(f"{path}-wal")
        written = 0
        started = time.perf_counter()
        for batch in batches:
            restart_log(engine)
            store.commit(batch)
            pages = wal_pages(wal.read_bytes())
            written += len(pages)
        print(
            f"committed {args.messages + args.batch:,} messages in "
            f"{time.perf_counter() - started:.1f}s: {written:,} log pages in all, "
            f"{written / (args.messages + args.batch):.1f} per message"
        )
        last = batches[-1]
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        with engine.connect() as conn:
            owner = owners(conn)
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        store.close()
        engine.dispose()
    frames = Counter(owner.get(page, "(free list)") for page in pages)
    distinct = Counter(owner.get(page, "(free list)") for page in set(pages))
    held = Counter(owner.values())
    print(
        f"one commit of {len(last.messages)} messages ({len(last.skipped)} skipped) after "
        f"{args.messages:,}: {len(pages):,} log frames, {len(set(pages)):,} distinct pages "
        f"(SQLite {version}; {free:,} pages on the free list)"
    )
    print(f"{'frames':>8} {'pages':>7} {'of held':>8}  table or index")
    for name, count in frames.most_common():
        print(f"{count:8,} {distinct[name]:7,} {held.get(name, free):8,}  {name}")


if __name__ == "__main__":
    main()
