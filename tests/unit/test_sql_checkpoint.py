"""WAL checkpoints of a SQLite file store run on a thread of their own."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from commlink.stores import sql_checkpoint
from commlink.stores.sql import SqlStore
from commlink.stores.sql_checkpoint import Checkpointer, checkpointer, segment_pages
from commlink.stores.sql_schema import WAL_FILE_LIMIT, empty_log
from commlink.testing.conformance_data import batch, channel, message

THREAD = "commlink-sqlite-checkpoint"


@pytest.fixture(autouse=True)
def _short_quiet_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_checkpoint, "QUIET_PAUSE_SECONDS", 0.05)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path}/store.sqlite")
    opened.save_channel(channel())
    yield opened
    opened.close()


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _commit(store: SqlStore, start: int, count: int = 20) -> None:
    records = tuple(message(f"m{n}", body="words " * 400) for n in range(start, start + count))
    store.commit(batch(messages=records))


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def test_the_log_is_copied_by_the_checkpoint_thread(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran_on: list[str] = []
    original = Checkpointer.checkpoint

    def recording(self: Checkpointer) -> tuple[int, int, int] | None:
        ran_on.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(Checkpointer, "checkpoint", recording)
    found = checkpointer(store.engine)
    _until(lambda: found.last is not None)  # the channel's commit
    before = found.last
    _commit(store, 0)
    _until(lambda: found.last is not None and found.last[1] > 0 and found.last != before)
    _until(lambda: found.last is not None and found.last[1] == found.last[2])
    assert ran_on
    assert set(ran_on) == {THREAD}
    assert found.last is not None
    assert found.last[0] == 0
    # nothing is left for anyone else to copy
    with sqlite3.connect(str(store.engine.url.database)) as raw:
        busy, log, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, log) == (0, copied)


def test_the_thread_ends_when_idle_and_a_commit_starts_it_again(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_checkpoint, "IDLE_SECONDS", 0.05)
    found = checkpointer(store.engine)
    _commit(store, 0)
    _until(lambda: found.last is not None)
    _until(lambda: not found.running)
    first = found.last
    _commit(store, 100)
    _until(lambda: found.last != first)
    assert found.last is not None
    assert found.last[1] == found.last[2]


def test_closing_the_store_stops_its_thread(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path}/store.sqlite")
    store.save_channel(channel())
    found = checkpointer(store.engine)
    _until(lambda: found.running or found.last is not None)
    store.close()
    assert not found.running
    assert store.engine not in sql_checkpoint._CHECKPOINTERS


def test_a_store_in_memory_has_no_checkpoint_thread() -> None:
    before = set(_threads())  # other tests' idle threads may end meanwhile
    store = SqlStore("sqlite://")
    store.save_channel(channel())
    _commit(store, 0)
    assert store.engine not in sql_checkpoint._CHECKPOINTERS
    assert set(_threads()) <= before
    store.close()


def test_reads_do_not_wake_the_thread(store: SqlStore) -> None:
    found = checkpointer(store.engine)
    _until(lambda: found.last is not None)  # the channel's commit
    sql_checkpoint.stop(store.engine)
    again = checkpointer(store.engine)
    store.channel(channel().id)
    store.channel_state(channel().id)
    time.sleep(0.1)
    assert again.last is None
    assert not again.running


def test_a_checkpoint_that_cannot_run_is_reported_as_none(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/store.sqlite")
    assert Checkpointer(engine).checkpoint() is None
    engine.dispose()


def test_a_forked_child_starts_its_own_thread(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = checkpointer(store.engine)
    _until(lambda: found.last is not None)
    parent_lock = found._lock
    monkeypatch.setattr(sql_checkpoint.os, "getpid", lambda: -42)
    _commit(store, 0)
    assert found._lock is not parent_lock
    _until(lambda: found.running or found.last is not None)


def test_writers_bound_the_log_themselves(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == WAL_FILE_LIMIT


def test_many_commits_leave_every_row_and_a_sound_file(store: SqlStore) -> None:
    for start in range(0, 600, 60):
        _commit(store, start, 60)
    sql_checkpoint.stop(store.engine)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("SELECT count(*) FROM commlink_messages").scalar() == 600


def test_a_memory_database_behind_another_pool_gets_no_thread() -> None:
    engine = sa.create_engine("sqlite://")  # SingletonThreadPool, not StaticPool
    store = SqlStore(engine)
    store.save_channel(channel())
    assert engine not in sql_checkpoint._CHECKPOINTERS
    store.close()
    engine.dispose()


def test_small_commits_are_copied_at_most_once_a_quiet_pause(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_checkpoint, "QUIET_PAUSE_SECONDS", 0.5)
    found = checkpointer(store.engine)
    _until(lambda: found.last is not None)  # the schema's and the channel's commits
    for name in ("c2", "c3"):  # small ones: the last two rounds then found few pages
        rounds = found.rounds
        store.save_channel(channel(name))
        _until(lambda: found.rounds > rounds)  # noqa: B023 (called at once)
    rounds = found.rounds
    store.save_channel(channel("c4"))
    _until(lambda: found.rounds > rounds)
    copied = time.monotonic()  # at or after the end of that round: its pause runs
    store.save_channel(channel("c5"))
    _until(lambda: found.rounds > rounds + 1)
    # the next round waits out the pause (less the time seen late on a busy machine)
    assert time.monotonic() - copied >= 0.25


def test_the_pause_is_short_while_checkpoints_copy_much() -> None:
    few, short, quiet = (
        sql_checkpoint.FEW_PAGES,
        sql_checkpoint.PAUSE_SECONDS,
        sql_checkpoint.QUIET_PAUSE_SECONDS,
    )
    assert sql_checkpoint.pause_after((0, few)) == short
    assert sql_checkpoint.pause_after((10_000, 1)) == short  # an import's cursor commit between
    assert sql_checkpoint.pause_after((3, 0)) == quiet
    assert sql_checkpoint.pause_after((few - 1, few - 1)) == quiet


def test_a_privacy_checkpoint_waits_for_the_threads_checkpoint(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite answers a checkpoint "busy" at once while another connection
    runs one, so the log a removal must clear would keep removed pages: the
    removal's checkpoint waits for the thread's to end instead."""
    started, release = threading.Event(), threading.Event()
    original = Checkpointer._checkpoint

    def slow(self: Checkpointer) -> tuple[int, int, int] | None:
        started.set()
        release.wait(5)
        return original(self)

    monkeypatch.setattr(Checkpointer, "_checkpoint", slow)
    _commit(store, 0)
    assert started.wait(5)  # the thread's checkpoint is under way
    emptied: list[bool] = []
    clearing = threading.Thread(target=lambda: emptied.append(empty_log(store.engine)))
    clearing.start()
    clearing.join(0.3)
    assert clearing.is_alive()  # waiting, rather than failing as busy
    release.set()
    clearing.join(5)
    assert emptied == [True]
    assert (tmp_path / "store.sqlite-wal").stat().st_size == 0


def _segments(store: SqlStore) -> list[int]:
    """The pages of each segment of the search index."""
    with sqlite3.connect(str(store.engine.url.database)) as raw:
        row = raw.execute("SELECT block FROM commlink_search_text_data WHERE id = 10").fetchone()
    return segment_pages(row[0])


def _search_finds(store: SqlStore, word: str) -> int:
    from commlink.records import SearchQuery, Viewer

    return len(store.search(SearchQuery(word), Viewer(channel().user_id)).items)


def test_once_commits_stop_the_search_index_is_merged_into_one_segment(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_checkpoint, "MERGE_PAGES", 2)  # many small steps
    monkeypatch.setattr(sql_checkpoint, "IDLE_SECONDS", 0.05)
    found = checkpointer(store.engine)
    with found.held():  # no merging while the segments are made
        for n in range(6):  # one segment per commit, below FTS5's automerge
            _commit(store, 100 * n, 5)
        assert len(_segments(store)) >= 6
        steps = found.merge_steps
    _until(lambda: found.merged)
    assert found.merge_steps > steps
    assert len(_segments(store)) == 1
    assert _search_finds(store, "words") == 30
    _until(lambda: not found.running, 10)  # merged: the thread ends as before


def test_merging_stops_when_a_commit_comes(store: SqlStore) -> None:
    found = checkpointer(store.engine)
    with found.held():
        for n in range(4):
            _commit(store, 100 * n, 5)
        steps = found.merge_steps
        found._wake.set()  # a commit arrived: its checkpoint comes first
        assert found.merge_index(10.0) is False
        assert found.merge_steps == steps
    _until(lambda: found.merged)
    assert len(_segments(store)) == 1


def test_merging_never_waits_for_a_writer(store: SqlStore) -> None:
    found = checkpointer(store.engine)
    for n in range(4):
        _commit(store, 100 * n, 5)
    sql_checkpoint.stop(store.engine)  # no thread: steps run here
    writer = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a writer holds the lock
    try:
        started = time.monotonic()
        assert found._merge_step() is None  # busy: merged later, not waited for
        assert time.monotonic() - started < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert found._merge_step() is True
    while found._merge_step():
        pass
    assert len(_segments(store)) == 1
    assert _search_finds(store, "words") == 20


def test_small_commits_are_merged_only_once_they_add_up(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = checkpointer(store.engine)
    for n in range(6):
        _commit(store, 100 * n, 100)
    _until(lambda: found.merged)
    (pages,) = _segments(store)
    writes = found.merge_writes
    for n in range(3):  # small segments: merging would rewrite the large one for little
        _commit(store, 1_000 + n, 1)
        _until(lambda: found.merged)
    assert found.merge_writes == writes
    found_pages = _segments(store)
    assert len(found_pages) == 4
    assert sum(found_pages) - max(found_pages) < pages * sql_checkpoint.MERGE_SHARE
    _commit(store, 2_000, 100)  # now the small ones hold an eighth of the pages
    _until(lambda: found.merged)
    assert found.merge_writes > writes
    assert len(_segments(store)) == 1
    assert _search_finds(store, "words") == 50  # a page


def test_segment_pages_reads_both_forms_of_the_structure_record() -> None:
    # SQLite 3.40: cookie, 2 levels, 3 segments, 9 writes; level 0: 2
    # segments (pages 1-4 and 5-5); level 1: 1 segment (pages 6-105)
    v1 = bytes([0, 0, 0, 7, 2, 3, 9, 0, 2, 1, 1, 4, 2, 5, 5, 0, 1, 3, 6, 105])
    assert segment_pages(v1) == [4, 1, 100]
    # 3.44 and newer: a marker after the cookie, five more numbers a segment
    v2 = bytes([0, 0, 0, 7, 0xFF, 0, 0, 1, 1, 1, 3, 0, 1, 1, 0x81, 0x00, 0x81, 0x7F])
    v2 += bytes([1, 1, 0, 0, 5])
    assert segment_pages(v2) == [0xFF - 0x80 + 1]


def test_merging_that_keeps_failing_waits_for_the_next_commit(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_checkpoint, "IDLE_SECONDS", 0.05)
    monkeypatch.setattr(sql_checkpoint, "MERGE_TRIES", 3)
    monkeypatch.setattr(Checkpointer, "_merge_step", lambda self: None)  # always busy
    found = checkpointer(store.engine)
    _commit(store, 0)
    _until(lambda: found.merged)  # given up, so the thread can end
    _until(lambda: not found.running)
    _commit(store, 100)
    assert not found.merged  # a commit: tried again
