"""Fetch in the background while the caller parses and commits.

``Prefetcher`` runs fetch jobs one after another on a worker thread and
hands their messages over through a queue bounded by bytes: the worker
waits while the messages not yet taken hold ``budget`` bytes or more
(``Limits.fetch_batch_bytes``), so a prefetch never holds more than about
one batch besides what the caller is working on. The connection belongs to
the worker while a job is pending: the caller ``cancel``s before using it
for anything else. A cancelled job finishes the command it is reading (the
connection stays in step) and its messages are dropped.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ...errors import TransientError
from ...ports import FetchedMessage

__all__ = ["Prefetcher"]

J = TypeVar("J")

#: What the worker runs: a job's messages, asked to stop when the callable says so.
Produce = Callable[[J, Callable[[], bool]], Iterator[FetchedMessage]]


class _End:
    """The last entry of a job in the queue."""


_END = _End()
_Entry = FetchedMessage | _End | BaseException


class Prefetcher(Generic[J]):
    """A worker thread for fetch jobs and the byte-bounded queue it fills."""

    def __init__(self, produce: Produce[J], budget: int, *, name: str = "imap-prefetch") -> None:
        self._produce = produce
        self._budget = max(1, budget)
        self._name = name
        self._lock = threading.Condition()
        self._waiting: collections.deque[J] = collections.deque()
        self._running: J | None = None
        self._queue: collections.deque[tuple[J, _Entry]] = collections.deque()
        self._queued = 0
        self._taken: set[J] = set()
        self._cancelled = False
        self._thread: threading.Thread | None = None

    def pending(self) -> list[J]:
        """Jobs submitted and not yet taken, oldest first (a job is taken
        once: what an abandoned ``take`` handed out is not handed out again)."""
        with self._lock:
            jobs = [job for job, _ in self._queue]
            if self._running is not None:
                jobs.append(self._running)
            jobs.extend(self._waiting)
            return [job for job in dict.fromkeys(jobs) if job not in self._taken]

    def submit(self, job: J) -> None:
        """Run ``job`` after those already submitted."""
        with self._lock:
            self._waiting.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def take(self, job: J) -> Iterator[FetchedMessage]:
        """The messages of a submitted ``job`` as the worker reads them; the
        worker's error, if it failed (``TransientError`` when a ``cancel``
        from another thread interrupted it). Entries of earlier jobs still
        queued are dropped."""
        with self._lock:
            if job in self._taken:
                raise RuntimeError("take() of a job already taken")
            self._taken.add(job)
        while True:
            with self._lock:
                while not self._queue:
                    if job not in self._taken:  # cancelled while being taken
                        raise TransientError("the fetch was interrupted by another command")
                    if self._running != job and job not in self._waiting:
                        raise RuntimeError("take() of a job that is not pending")
                    self._lock.wait()
                owner, entry = self._queue.popleft()
                self._queued -= _size(entry)
                self._lock.notify_all()
            # identity first: comparing two jobs compares their UIDs
            if owner is not job and owner != job:
                continue
            if isinstance(entry, _End):
                with self._lock:
                    self._taken.discard(job)
                return
            if isinstance(entry, BaseException):
                raise entry
            yield entry
            del entry

    def cancel(self) -> None:
        """Drop every pending job and queued message; returns once the worker
        has finished the command it was reading."""
        with self._lock:
            thread = self._thread
            if thread is None and not self._queue:
                return
            self._cancelled = True
            self._waiting.clear()
            self._queue.clear()
            self._queued = 0
            self._taken.clear()
            self._lock.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._cancelled = False

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or self._cancelled:
                    self._thread = None
                    self._lock.notify_all()
                    return
                job = self._running = self._waiting.popleft()
            try:
                for message in self._produce(job, self._stopped):
                    self._put(job, message)
                self._put(job, _END)
            except Exception as exc:  # handed to the taker, who raises it
                self._put(job, exc)
            finally:
                with self._lock:
                    self._running = None
                    self._lock.notify_all()

    def _stopped(self) -> bool:
        return self._cancelled

    def _put(self, job: J, entry: _Entry) -> None:
        size = _size(entry)
        with self._lock:
            while self._queued and self._queued + size > self._budget and not self._cancelled:
                self._lock.wait()
            if self._cancelled:
                return
            self._queue.append((job, entry))
            self._queued += size
            self._lock.notify_all()


def _size(entry: _Entry) -> int:
    if isinstance(entry, FetchedMessage) and entry.raw is not None:
        return len(entry.raw)
    return 0
