"""WAL checkpoints of a SQLite file database, off the committing thread.

In WAL mode a commit appends pages to the ``-wal`` log; a checkpoint
copies them into the database file and syncs both files. SQLite runs it
on the connection that committed, once the log passes
``wal_autocheckpoint`` pages, so a bulk import pays the copy and two
fsyncs between its batches. Here a thread of the engine's own runs a
passive checkpoint (``PRAGMA wal_checkpoint(PASSIVE)``) after commits
instead: it never waits for a reader or a writer, and the driver releases
the interpreter lock while it runs, so the copy and the syncs overlap the
next batch's fetching and parsing. Crash safety is SQLite's own either way.

When no commit has come for ``QUIET_PAUSE_SECONDS``, the same thread
merges the search index's segments into one (FTS5 ``merge``, a few pages
per step and at most ``MERGE_SECONDS`` at a time), once those besides the
largest hold ``MERGE_SHARE`` of its pages. Every commit adds a
segment, and a bulk import leaves a dozen or more: each search then seeks
every segment for every word, which made a person's mail with a common word
take tens of milliseconds at 100,000 messages (docs/search.md). Merging
while importing would slow the import; merging once it is over took 7 s
after 100,000 messages were stored (an ``optimize`` in one go: 1.2 s), in
steps that hold the write lock a few milliseconds each and give way to any
writer (they do not wait for the lock: a busy database is merged later).

Writers keep their automatic checkpoint at ``sql_schema.WAL_CHECKPOINT_PAGES``
as the bound on the log should the thread fall behind or fail (it opens
the database from the engine's URL: one only a custom ``creator`` can open
is left to the writers). The thread ends after ``IDLE_SECONDS`` without a
commit, once it has nothing to merge (so a quiet store holds no thread), and
starts again on the next; a forked child starts its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine

__all__ = [
    "FEW_PAGES",
    "IDLE_SECONDS",
    "MERGE_PAGES",
    "MERGE_SECONDS",
    "MERGE_SHARE",
    "MERGE_TRIES",
    "PAUSE_SECONDS",
    "QUIET_PAUSE_SECONDS",
    "Checkpointer",
    "checkpointer",
    "pause_after",
    "segment_pages",
    "stop",
]

_log = logging.getLogger("commlink.stores")

#: the thread ends after this long without a commit
IDLE_SECONDS = 5.0
#: at least this long between two checkpoints while commits write much
#: (a bulk import: the log is copied in step with it) ...
PAUSE_SECONDS = 0.05
#: ... and this long when fewer than ``FEW_PAGES`` were written in each of
#: the last two rounds (small commits, such as quiet passes, cost two
#: fsyncs a second, not two each)
QUIET_PAUSE_SECONDS = 1.0
FEW_PAGES = 256
#: pages one step of merging the search index writes (a few milliseconds)
MERGE_PAGES = 64
#: at most this long merging at a time (a commit ends it sooner)
MERGE_SECONDS = 0.25
#: quiet moments in a row in which merging could not run (a writer held the
#: lock, or the index failed) before it waits for the next commit
MERGE_TRIES = 30

_SEARCH_TEXT = "commlink_search_text"
#: a negative ``merge`` works towards one segment (an ``optimize`` in steps)
_MERGE = f"INSERT INTO {_SEARCH_TEXT}({_SEARCH_TEXT}, rank) VALUES ('merge', ?)"
#: merging starts once the segments besides the largest hold this share of
#: the index's pages: each merge then writes the index once after it grew by
#: an eighth, about nine pages written per page gained, however many small
#: commits bring them (a merge at every second segment would rewrite the
#: largest one after each commit)
MERGE_SHARE = 1 / 8


def pause_after(written: tuple[int, int]) -> float:
    """Seconds to wait after rounds of checkpoints that found ``written``
    pages added to the log (the last two rounds: a bulk import's commits
    alternate with small ones, such as its cursor's)."""
    return PAUSE_SECONDS if max(written) >= FEW_PAGES else QUIET_PAUSE_SECONDS


class Checkpointer:
    """Runs passive checkpoints on ``engine``'s database after its commits."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._pid = -1
        #: the last checkpoint's (busy, log pages, copied pages), if one ran
        self.last: tuple[int, int, int] | None = None
        self.rounds = 0  # checkpoints run (for tests)
        self.merge_steps = 0  # steps that merged part of the search index (for tests)
        self.merge_writes = 0  # rows those steps wrote (for tests)
        self._start()

    def _start(self) -> None:
        # a fork may have copied the lock held: the child takes fresh ones
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._checkpointing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None  # the thread's DBAPI connection
        #: whether the search index may hold segments to merge (a commit may
        #: have added one; ``False`` once a merge step found nothing to do)
        self._unmerged = True
        self._merging = False  # a merge into one segment is under way
        self._failed = 0  # quiet moments in a row merging could not run

    def nudge(self) -> None:
        """A write committed: checkpoint soon."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            self._wake.set()
            self._unmerged = True
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="commlink-sqlite-checkpoint", daemon=True
                )
                self._thread.start()

    @property
    def merged(self) -> bool:
        """Whether the search index was found with nothing to merge since the
        last commit (merging goes on while the thread runs)."""
        return not self._unmerged

    @property
    def running(self) -> bool:
        """Whether this process has the thread now."""
        thread = self._thread if self._pid == os.getpid() else None
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        """End the thread (after its checkpoint in flight) and start no other."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        copied = -1
        logged = 0  # the log's pages when the last round of checkpoints ended
        written = (0, 0)  # pages the last two rounds found added to the log
        try:
            while True:
                # while the search index may need merging, a second without a
                # commit is quiet enough to merge some of it
                woken = self._wake.wait(QUIET_PAUSE_SECONDS if self._unmerged else IDLE_SECONDS)
                with self._lock:
                    if self._stop.is_set() or not (woken or self._unmerged):
                        # closed before a nudge can start the next thread,
                        # which opens a connection of its own
                        self._close()
                        self._thread = None
                        return
                    self._wake.clear()
                if not woken:
                    self.merge_index(MERGE_SECONDS)
                    continue
                found = self.checkpoint()
                if found is not None and found[1] > found[2] > copied:
                    # pages committed while it ran: taken next, while that gains
                    self._wake.set()
                    copied = found[2]
                    pause = PAUSE_SECONDS
                else:
                    log = 0 if found is None else found[1]
                    written = (written[1], log - logged if log >= logged else log)  # or restarted
                    pause = pause_after(written)
                    copied, logged = -1, log
                self._stop.wait(pause)
        finally:
            with self._lock:
                if self._thread is threading.current_thread():  # ended by an error
                    self._close()
                    self._thread = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No background checkpoint runs while inside: SQLite answers another
        connection's checkpoint (a ``TRUNCATE`` after a privacy removal)
        "busy" at once, without waiting, while one is running."""
        if self._pid != os.getpid():
            self._start()
        with self._checkpointing:
            yield

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One passive checkpoint: SQLite's (busy, log pages, copied pages),
        or ``None`` when it could not run (the writers' bound still holds)."""
        with self._checkpointing:
            return self._checkpoint()

    def merge_index(self, seconds: float) -> bool:
        """Merge the search index's segments for at most about ``seconds``,
        stopping early when a commit comes; ``True`` once nothing is left to
        merge (or the database has no such index)."""
        deadline = time.monotonic() + seconds
        while not self._wake.is_set() and not self._stop.is_set():
            with self._checkpointing:
                merged = self._merge_step()
            if merged is None:  # busy or failing: later, or after the next commit
                self._failed += 1
                if self._failed >= MERGE_TRIES:
                    self._failed = 0
                    self._unmerged = False
                return False
            self._failed = 0
            if not merged:
                self._unmerged = False
                return True
            if time.monotonic() >= deadline:
                break
        return False

    def _merge_step(self) -> bool | None:
        """One step of FTS5's ``merge``: whether it merged anything (``None``:
        it could not run now)."""
        try:
            conn = self._connection()
            if conn is None:
                return None
            if not self._merging and not self._worth_merging(conn):
                return False
            before = conn.total_changes
            conn.execute(_MERGE, (-MERGE_PAGES,))
            conn.commit()
        except Exception as exc:  # busy (a writer holds the lock), locked or failing
            _log.debug("search index merge not run: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                if self._conn is not None:
                    self._conn.rollback()
            return None
        # a step with nothing to merge rewrites at most the index's structure
        written = conn.total_changes - before
        self._merging = written > 1
        if not self._merging:
            return False
        self.merge_steps += 1
        self.merge_writes += written
        return True

    def _worth_merging(self, conn: Any) -> bool:
        """Whether the segments besides the largest hold ``MERGE_SHARE`` of
        the search index's pages (``False`` without an index)."""
        data = f"{_SEARCH_TEXT}_data"
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (data,)).fetchone() is None:
            return False  # a database without the search index
        row = conn.execute(f"SELECT block FROM {data} WHERE id = 10").fetchone()
        if row is None:
            return False
        sizes = segment_pages(bytes(row[0]))
        total = sum(sizes)
        return len(sizes) > 1 and total - max(sizes) >= total * MERGE_SHARE

    def _connection(self) -> Any:
        """The thread's own connection, opened on first use (``None`` when
        the engine is gone)."""
        if self._conn is None:
            engine = self._engine()
            if engine is None:
                return None
            # a connection of its own, outside the pool: a pool of one
            # must never wait for the checkpoint
            args, options = engine.dialect.create_connect_args(engine.url)
            conn = engine.dialect.connect(*args, **options)
            # a merge step never waits for a writer (a passive checkpoint
            # never does anyway): a busy database is merged later
            conn.execute("PRAGMA busy_timeout = 0")
            self._conn = conn
        return self._conn

    def _checkpoint(self) -> tuple[int, int, int] | None:
        try:
            conn = self._connection()
            if conn is None:
                return None
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except Exception as exc:  # a locked, moved or failing file: the next commit tries again
            _log.debug("background checkpoint failed: %s", type(exc).__name__)
            self._close()
            return None
        if row is None:
            return None
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.rounds += 1
        return self.last

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing left to do
                conn.close()


def segment_pages(structure: bytes) -> list[int]:
    """The leaf pages of each segment of an FTS5 index, from its structure
    record (the ``_data`` row with id 10; fts5_index.c describes it)."""
    at = 4  # the cookie
    v2 = structure[4:8] == b"\xff\x00\x00\x01"  # SQLite 3.44 and newer: more per segment
    if v2:
        at = 8

    def varint() -> int:
        nonlocal at
        value = 0
        for n in range(9):
            byte = structure[at]
            at += 1
            if n == 8:  # the ninth byte holds eight bits
                return (value << 8) | byte
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value
        return value  # pragma: no cover - the loop always returns

    levels, _segments, _writes = varint(), varint(), varint()
    pages = []
    for _level in range(levels):
        _merging, segments = varint(), varint()
        for _segment in range(segments):
            _id, first, last = varint(), varint(), varint()
            pages.append(last - first + 1)
            if v2:  # origins, tombstone pages and entries, entries
                for _field in range(5):
                    varint()
    return pages


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, Checkpointer] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def checkpointer(engine: Engine) -> Checkpointer:
    """The engine's checkpointer (made on first use)."""
    with _GUARD:
        found = _CHECKPOINTERS.get(engine)
        if found is None:
            found = _CHECKPOINTERS[engine] = Checkpointer(engine)
        return found


def stop(engine: Engine) -> None:
    """Stop ``engine``'s checkpoint thread, if it has one (before ``dispose``)."""
    with _GUARD:
        found = _CHECKPOINTERS.pop(engine, None)
    if found is not None:
        found.stop()
