"""The IMAP fetch worker (``Prefetcher``): messages wait in a queue bounded
by bytes, jobs run in order, errors reach the taker, a cancel stops the
worker after its current command and drops what it fetched ahead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from commlink.errors import TransientError
from commlink.ports import FetchedMessage
from commlink.providers.imap.prefetch import Prefetcher

SIZE = 1000


def message(job: str, n: int) -> FetchedMessage:
    return FetchedMessage(f"{job}:{n}", raw=b"x" * SIZE)


class Source:
    """Jobs named ``"<name>"`` or ``"<name>!"`` (fails after two messages) of
    ``count`` messages; records how far each got."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.produced: dict[str, int] = {}
        self.stopped_at: dict[str, int] = {}

    def __call__(self, job: str, stopped: Callable[[], bool]) -> Iterator[FetchedMessage]:
        self.produced[job] = 0
        for n in range(self.count):
            if stopped():
                self.stopped_at[job] = n
                return
            if job.endswith("!") and n == 2:
                raise TransientError("connection lost twice")
            self.produced[job] = n + 1
            yield message(job, n)


def test_the_queue_is_bounded_by_bytes() -> None:
    source = Source(40)
    prefetcher: Prefetcher[str] = Prefetcher(source, budget=3 * SIZE)
    prefetcher.submit("a")
    taken = 0
    for fetched in prefetcher.take("a"):
        taken += 1
        time.sleep(0.002)  # a slow consumer: the worker must wait for it
        # three waiting in the queue, one read and waiting to be queued
        assert source.produced["a"] <= taken + 3 + 1
        assert fetched.provider_id == f"a:{taken - 1}"
    assert taken == 40
    assert prefetcher.pending() == []


def test_jobs_run_in_order_and_leftovers_are_dropped() -> None:
    source = Source(5)
    prefetcher: Prefetcher[str] = Prefetcher(source, budget=100 * SIZE)
    prefetcher.submit("a")
    prefetcher.submit("b")
    assert prefetcher.pending() == ["a", "b"]
    first = prefetcher.take("a")
    assert next(first).provider_id == "a:0"
    del first  # the caller stopped early: the rest of "a" is not wanted
    assert prefetcher.pending() == ["b"]  # nor handed out again, incomplete
    with pytest.raises(RuntimeError, match="already taken"):
        next(prefetcher.take("a"))
    assert [m.provider_id for m in prefetcher.take("b")] == [f"b:{n}" for n in range(5)]
    assert prefetcher.pending() == []


def test_the_workers_error_reaches_the_taker() -> None:
    prefetcher: Prefetcher[str] = Prefetcher(Source(5), budget=100 * SIZE)
    prefetcher.submit("bad!")
    taken = prefetcher.take("bad!")
    assert [next(taken).provider_id, next(taken).provider_id] == ["bad!:0", "bad!:1"]
    with pytest.raises(TransientError, match="lost twice"):
        next(taken)
    prefetcher.submit("good")  # the worker goes on with the next job
    assert len(list(prefetcher.take("good"))) == 5


def test_cancel_stops_the_worker_and_drops_what_it_fetched_ahead() -> None:
    source = Source(10_000)
    prefetcher: Prefetcher[str] = Prefetcher(source, budget=5 * SIZE)
    prefetcher.submit("ahead")
    prefetcher.submit("later")
    deadline = time.monotonic() + 5
    while source.produced.get("ahead", 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.001)
    prefetcher.cancel()
    assert prefetcher.pending() == []
    assert 5 <= source.stopped_at["ahead"] < 10_000
    assert "later" not in source.produced
    assert not [t for t in threading.enumerate() if t.name == "imap-prefetch"]
    with pytest.raises(RuntimeError, match="not pending"):
        next(prefetcher.take("ahead"))
    prefetcher.submit("again")  # usable after a cancel
    assert len(list(prefetcher.take("again"))) == 10_000


def test_a_cancel_from_another_thread_interrupts_the_taker() -> None:
    prefetcher: Prefetcher[str] = Prefetcher(Source(10_000), budget=2 * SIZE)
    prefetcher.submit("long")
    taken = prefetcher.take("long")
    next(taken)
    canceller = threading.Thread(target=prefetcher.cancel)

    def take_all() -> None:
        for n, _ in enumerate(taken):
            if n == 5:  # the connection is wanted elsewhere
                canceller.start()

    with pytest.raises(TransientError, match="interrupted"):
        take_all()
    canceller.join()
