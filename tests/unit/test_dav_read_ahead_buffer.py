"""``ReadAhead``: an answer read by a thread of its own, at most
``AHEAD_CHUNKS`` chunks ahead of its consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.errors import ProviderError, TransientError
from commlink.providers.caldav import transport
from commlink.providers.caldav.transport import AHEAD_CHUNKS, ReadAhead


class Source:
    """Chunks handed out one by one, recording how far they were read and
    whether the answer was closed."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.read = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        try:
            for n, chunk in enumerate(self.chunks):
                if n == self.fail_at:
                    raise ProviderError("connection reset halfway")
                self.read += 1
                yield chunk
        finally:
            self.closed.set()


def _settle(source: Source, expected: int) -> None:
    deadline = time.monotonic() + 5
    while source.read < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # a reader that would go further has had time to


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=3 * AHEAD_CHUNKS))
def test_the_consumer_gets_every_chunk_in_order(chunks: list[bytes]) -> None:
    source = Source(chunks)
    assert list(ReadAhead(iter(source))) == chunks
    assert source.closed.wait(5)


def test_reads_no_further_ahead_than_its_bound() -> None:
    source = Source([b"x"] * (4 * AHEAD_CHUNKS))
    ahead = ReadAhead(iter(source))
    _settle(source, AHEAD_CHUNKS)
    # the bound in the queue, plus the one chunk the thread holds while it waits
    assert AHEAD_CHUNKS <= source.read <= AHEAD_CHUNKS + 1
    assert len(list(ahead)) == 4 * AHEAD_CHUNKS


def test_an_error_of_the_request_is_raised_to_the_consumer() -> None:
    source = Source([b"a", b"b", b"c"], fail_at=2)
    chunks = iter(ReadAhead(iter(source)))
    assert [next(chunks), next(chunks)] == [b"a", b"b"]
    with pytest.raises(ProviderError, match="halfway"):
        next(chunks)


def test_cancel_stops_the_reader_and_closes_the_answer() -> None:
    source = Source([b"x"] * (10 * AHEAD_CHUNKS))
    ahead = ReadAhead(iter(source))
    _settle(source, AHEAD_CHUNKS)
    ahead.cancel()
    assert source.closed.wait(5)
    assert source.read < 10 * AHEAD_CHUNKS


def test_leaving_the_loop_early_closes_the_answer() -> None:
    source = Source([b"x"] * (10 * AHEAD_CHUNKS))
    for _chunk in ReadAhead(iter(source)):
        break
    assert source.closed.wait(5)


def test_an_answer_left_unread_too_long_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "AHEAD_IDLE_SECONDS", 0.2)
    source = Source([b"x"] * (3 * AHEAD_CHUNKS))
    ahead = ReadAhead(iter(source))
    assert source.closed.wait(5)
    with pytest.raises(TransientError, match="left unread"):
        list(ahead)
