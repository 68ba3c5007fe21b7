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

Writers keep their automatic checkpoint at ``sql_schema.WAL_CHECKPOINT_PAGES``
as the bound on the log should the thread fall behind or fail (it opens
the database from the engine's URL: one only a custom ``creator`` can open
is left to the writers). The thread ends after ``IDLE_SECONDS`` without a
commit (so a quiet store holds no thread) and starts again on the next; a
forked child starts its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine

__all__ = [
    "FEW_PAGES",
    "IDLE_SECONDS",
    "PAUSE_SECONDS",
    "QUIET_PAUSE_SECONDS",
    "Checkpointer",
    "checkpointer",
    "pause_after",
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

    def nudge(self) -> None:
        """A write committed: checkpoint soon."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            self._wake.set()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="commlink-sqlite-checkpoint", daemon=True
                )
                self._thread.start()

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
                woken = self._wake.wait(IDLE_SECONDS)
                with self._lock:
                    if self._stop.is_set() or not woken:
                        # closed before a nudge can start the next thread,
                        # which opens a connection of its own
                        self._close()
                        self._thread = None
                        return
                    self._wake.clear()
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

    def _checkpoint(self) -> tuple[int, int, int] | None:
        try:
            if self._conn is None:
                engine = self._engine()
                if engine is None:
                    return None
                # a connection of its own, outside the pool: a pool of one
                # must never wait for the checkpoint
                args, options = engine.dialect.create_connect_args(engine.url)
                self._conn = engine.dialect.connect(*args, **options)
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
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
