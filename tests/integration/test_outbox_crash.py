"""Host events survive a crash: processes are killed (SIGKILL) between the
commit and the delivery, and between the delivery and its acknowledgement,
then restarted; on SQLite and on PostgreSQL.

- in-process hook (``on_events``): a crash after the commit loses events;
- outbox + plain sink: nothing is lost; the batch delivered before the crash
  is delivered again with the same ids, and a sink that remembers the last
  id it applied applies each event once;
- outbox + transactional sink (``deliver_in``, same database): each event
  takes effect exactly once, with no filtering by the sink.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.events import MESSAGE_CREATED
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance_data import channel

#: Run in a child process: ``python -c CHILD URL MODE DIR``. Kills itself
#: with SIGKILL where the mode says, as a crash would. The relay restarts
#: under the same holder name, so it resumes at once instead of waiting for
#: the dead worker's lease to expire.
CHILD = r"""
import json, os, signal, sys
from pathlib import Path
import sqlalchemy as sa
from commlink.events import OutboxRelay
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import metadata
from commlink.testing.conformance_data import batch, message

url, mode, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def crash():
    os.kill(os.getpid(), signal.SIGKILL)

class HookSink:  # the in-process hook: the process dies before it records anything
    def deliver(self, events):
        crash()

class FileSink:  # an external system: a JSON-lines index, idempotent by event id
    def __init__(self, crash_after):
        self.crash_after = crash_after
        applied = folder / "applied.jsonl"
        lines = applied.read_text().splitlines() if applied.exists() else []
        self.last = max((json.loads(l)["id"] for l in lines), default=0)
    def deliver(self, events):
        with open(folder / "delivered.log", "a") as log, open(folder / "applied.jsonl", "a") as out:
            for e in events:
                log.write(f"{e.id}\n")
                if e.id > self.last:
                    out.write(json.dumps({"id": e.id, "message_id": e.message_id}) + "\n")
                    self.last = e.id
            log.flush(); out.flush(); os.fsync(out.fileno())
        if self.crash_after:
            crash()  # delivered, not acknowledged

class TableSink:  # writes to the store's own database, in the outbox's transaction
    def __init__(self, crash_after):
        self.crash_after = crash_after
    def deliver_in(self, conn, events):
        conn.execute(
            sa.text("INSERT INTO host_index (event_id, message_id) VALUES (:id, :mid)"),
            [{"id": e.id, "mid": e.message_id} for e in events],
        )
        if self.crash_after:
            crash()  # written, not committed

if mode == "commit-hook":
    store = SqlStore(url, on_events=HookSink())
    store.commit(batch(messages=(message("hook"),)))
elif mode == "commit":
    store = SqlStore(url, outbox=True)
    for n in range(10):
        store.commit(batch(messages=(message(str(n)),)))
    crash()  # committed, nothing delivered
elif mode.startswith("file"):
    relay = OutboxRelay(SqlStore(url, outbox=True).outbox(), FileSink(mode == "file-crash"),
                        consumer="file", batch=4, holder="worker-1")
    print(relay.drain())
elif mode.startswith("table"):
    relay = OutboxRelay(SqlStore(url, outbox=True).outbox(), TableSink(mode == "table-crash"),
                        consumer="table", batch=4, holder="worker-1")
    print(relay.drain())
"""


def _run(url: str, mode: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _killed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == -9, result.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
        engine = sa.create_engine(url)
        yield url, engine
        engine.dispose()
        return
    pg_engine: Engine = request.getfixturevalue("pg_engine")
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS host_index")
        for table in reversed(metadata.sorted_tables):
            if table.name != "commlink_schema":
                conn.execute(table.delete())
    yield pg_engine.url.render_as_string(hide_password=False), pg_engine


@pytest.fixture
def store(database: tuple[str, Engine]) -> Iterator[SqlStore]:
    url, engine = database
    with SqlStore(url, outbox=True) as store:
        yield _prepare(store, engine)


def _prepare(store: SqlStore, engine: Engine) -> SqlStore:
    store.save_channel(channel())
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE host_index (event_id BIGINT PRIMARY KEY, message_id TEXT NOT NULL)"
        )
    return store


def test_the_in_process_hook_loses_events_in_a_crash_and_the_outbox_does_not(
    database: tuple[str, Engine], store: SqlStore, tmp_path: Path
) -> None:
    url, _engine = database
    _killed(_run(url, "commit-hook", tmp_path))
    # the commit stood, the hook never ran: nothing recorded it (no outbox in that process)
    assert store.known_ids("c1", "INBOX", ["hook"]) == {"hook"}
    assert store.outbox().pending("file") == []
    _killed(_run(url, "commit", tmp_path))
    events = store.outbox().pending("file", 100)
    assert [e.type for e in events] == [MESSAGE_CREATED] * 10


def test_a_crash_between_delivery_and_ack_redelivers_and_the_sink_applies_once(
    database: tuple[str, Engine], store: SqlStore, tmp_path: Path
) -> None:
    url, _engine = database
    _killed(_run(url, "commit", tmp_path))
    _killed(_run(url, "file-crash", tmp_path))  # delivered 4, died before the ack
    assert store.outbox().position("file") == 0
    done = _run(url, "file", tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 10  # the relay delivered everything again, from its position
    outbox_ids = [e.id for e in store.outbox().pending("check", 100)]
    delivered = [int(line) for line in (tmp_path / "delivered.log").read_text().split()]
    applied = [json.loads(line) for line in (tmp_path / "applied.jsonl").read_text().splitlines()]
    assert delivered == outbox_ids[:4] + outbox_ids  # duplicates: the same ids, in order
    assert [a["id"] for a in applied] == outbox_ids  # applied once each
    assert [a["message_id"] for a in applied] == [f"{n}@mail.example" for n in range(10)]
    assert store.outbox().position("file") == outbox_ids[-1]


def test_a_transactional_sink_takes_each_event_exactly_once_across_a_crash(
    database: tuple[str, Engine], store: SqlStore, tmp_path: Path
) -> None:
    url, engine = database
    _killed(_run(url, "commit", tmp_path))
    _killed(_run(url, "table-crash", tmp_path))  # wrote 4 rows, died before the commit
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM host_index").scalar() == 0
    assert store.outbox().position("table") == 0
    done = _run(url, "table", tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 10
    outbox_ids = [e.id for e in store.outbox().pending("check", 100)]
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT event_id, message_id FROM host_index ORDER BY event_id"
        ).all()
    assert [r[0] for r in rows] == outbox_ids
    assert [r[1] for r in rows] == [f"{n}@mail.example" for n in range(10)]
    assert store.outbox().position("table") == outbox_ids[-1]
