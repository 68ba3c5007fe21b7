"""Reading IMAP responses off the wire (``fetch_stream``) against hostile
streams: random literal sizes and bytes, interleaved untagged responses,
item orders, truncation anywhere, garbage. The reader hands out exactly what
was sent, or raises a ``ProviderError``; it never hangs (the stream ends)
and never holds more than its bounds."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.errors import ProviderError
from commlink.model import Detail
from commlink.providers.imap.fetch_stream import (
    CommandRefused,
    ConnectionLost,
    Discarded,
    Fetch,
    ResponseReader,
    String,
    Vanished,
    command_responses,
)
from commlink.providers.imap.responses import from_stream, parse_internaldate

TAG = b"A7"
LIMIT = 64 * 1024

#: What a server may interleave with the responses to a FETCH.
NOISE = [
    b"* 12 EXISTS\r\n",
    b"* 3 EXPUNGE\r\n",
    b"* 0 RECENT\r\n",
    b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n",
    b"* 4 FETCH (FLAGS (\\Seen $Label1))\r\n",  # unsolicited: no UID
    b"* 5 FETCH (MODSEQ (12) FLAGS ())\r\n",
    b"* NO [ALERT] the disk is almost full\r\n",
    b"* VANISHED 41,43:45\r\n",
]


def reader(data: bytes, *, limit: int = LIMIT, max_line: int = 10_000) -> ResponseReader:
    return ResponseReader(io.BufferedReader(io.BytesIO(data)), max_literal=limit, max_line=max_line)


def fetch_response(seq: int, uid: int, body: bytes, order: list[str], date: bytes) -> bytes:
    items = {
        "UID": b"UID %d" % uid,
        "BODY": b"BODY[] {%d}\r\n" % len(body) + body,
        "DATE": b'INTERNALDATE "' + date + b'"',
        "FLAGS": b"FLAGS (\\Seen \\Flagged)",
        "SIZE": b"RFC822.SIZE %d" % len(body),
    }
    return b"* %d FETCH (" % seq + b" ".join(items[k] for k in order) + b")\r\n"


#: Messages of a FETCH: body, the order of its items, untagged responses before it.
Batch = list[tuple[bytes, list[str], list[bytes]]]
messages = st.lists(
    st.tuples(
        st.binary(max_size=3000),
        st.permutations(["UID", "BODY", "DATE", "FLAGS", "SIZE"]),
        st.lists(st.sampled_from(NOISE), max_size=2),
    ),
    max_size=12,
)


def stream_of(batch: Batch) -> tuple[bytes, dict[int, bytes]]:
    parts: list[bytes] = []
    expected: dict[int, bytes] = {}
    for n, (body, order, noise) in enumerate(batch, start=1):
        parts.extend(noise)
        parts.append(fetch_response(n, 100 + n, body, order, b"02-Mar-2026 09:30:00 +0100"))
        expected[100 + n] = body
    parts.append(TAG + b" OK Fetch completed (0.001 + 0.000 secs).\r\n")
    return b"".join(parts), expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_every_body_is_handed_out_as_sent(batch: Batch) -> None:
    data, expected = stream_of(batch)
    got: dict[int, bytes] = {}
    for response in command_responses(reader(data), TAG):
        if isinstance(response, Fetch) and response.uid is not None:
            body = response.items["BODY[]"]
            assert isinstance(body, String)
            assert response.uid not in got
            got[response.uid] = body.data
            assert response.items["FLAGS"] == [b"\\Seen", b"\\Flagged"]
            assert response.items["RFC822.SIZE"] == b"%d" % len(body.data)
        else:
            assert isinstance(response, Vanished) or response.uid is None
    assert got == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.integers(min_value=0))
def test_a_truncated_stream_is_a_clean_error(batch: Batch, cut: int) -> None:
    data, expected = stream_of(batch)
    data = data[: cut % len(data)]
    got: set[int | None] = set()

    def read_all() -> None:
        for response in command_responses(reader(data), TAG):
            if isinstance(response, Fetch) and response.uid is not None:
                got.add(response.uid)

    with pytest.raises(ProviderError):
        read_all()
    assert got <= set(expected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_a_provider_error_or_nothing(data: bytes) -> None:
    try:
        for _ in command_responses(reader(data + b"\r\n" + TAG + b" OK done\r\n"), TAG):
            pass
    except ProviderError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=LIMIT + 1, max_value=4 * LIMIT))
def test_a_literal_over_the_limit_is_read_and_dropped(size: int) -> None:
    data = (
        b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % size
        + b"x" * size
        + b")\r\n* 2 FETCH (UID 8 BODY[] {3}\r\nabc)\r\n"
        + TAG
        + b" OK done\r\n"
    )
    first, second = command_responses(reader(data), TAG)
    assert isinstance(first, Fetch)
    assert isinstance(second, Fetch)
    assert first.items["BODY[]"] == Discarded(size)
    assert second.items["BODY[]"] == String(b"abc")  # the stream stayed in step
    fetched = from_stream(9, 7, first.items, Detail.FULL)
    assert fetched is not None
    assert fetched.raw is None
    assert fetched.error is not None
    assert str(size) in fetched.error


def test_bounds_hold_without_reading_what_is_announced() -> None:
    with pytest.raises(ProviderError, match="announced"):  # never allocated
        list(command_responses(reader(b"* 1 FETCH (UID 1 BODY[] {99999999999}\r\n"), TAG))
    with pytest.raises(ProviderError, match="longer than"):
        list(command_responses(reader(b"* 1 FETCH (UID " + b"1" * 20_000 + b")\r\n"), TAG))
    many = b"* 1 FETCH (X-GM-LABELS (" + b"{1}\r\nx " * 10_001 + b"))\r\n"
    with pytest.raises(ProviderError, match="too many literals"):
        list(command_responses(reader(many, max_line=10**6), TAG))
    short = b"* 1 FETCH (UID 1 BODY[] {10}\r\n" + b"y" * 5
    with pytest.raises(ConnectionLost):
        list(command_responses(reader(short), TAG))
    unbalanced = b"* 1 FETCH (UID 1 BODY[] {10}\r\n" + b"y" * 10 + b"\r\n"
    with pytest.raises(ProviderError, match="parentheses"):
        list(command_responses(reader(unbalanced), TAG))


def test_completions() -> None:
    ok = list(command_responses(reader(b"* 3 EXPUNGE\r\nA7 OK [READ-ONLY] done\r\n"), TAG))
    assert ok == []
    issued = (
        b"* 1 FETCH (UID 4 BODY[] NIL)\r\n"
        b"A7 NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n"
    )
    [gone] = command_responses(reader(issued), TAG)
    assert isinstance(gone, Fetch)
    nil = from_stream(1, 4, gone.items, Detail.FULL)
    assert nil is not None
    assert nil.raw is None
    assert "NIL" in (nil.error or "")
    with pytest.raises(CommandRefused, match="Mailbox does not exist"):
        list(command_responses(reader(b"A7 NO Mailbox does not exist\r\n"), TAG))
    with pytest.raises(CommandRefused, match="BAD"):
        list(command_responses(reader(b"A7 BAD Error in IMAP command\r\n"), TAG))
    with pytest.raises(ConnectionLost, match="BYE"):
        list(command_responses(reader(b"* BYE Disconnected for inactivity.\r\n"), TAG))
    with pytest.raises(ProviderError, match="unexpected"):
        list(command_responses(reader(b"A6 OK an older command\r\n"), TAG))
    with pytest.raises(ProviderError, match="unexpected"):
        list(command_responses(reader(b"+ go ahead\r\n"), TAG))


def test_vanished_and_nested_values() -> None:
    data = (
        b"* VANISHED (EARLIER) 41,43:116\r\n"
        b'* 2 FETCH (UID 9 X-GM-THRID 1278455344230334865 X-GM-LABELS (\\Inbox "Clients/Acme"'
        b" {12}\r\nEntw&APw-rfe) BODY[HEADER.FIELDS (FROM TO)] {2}\r\n\r\n"
        b' INTERNALDATE " 2-Mar-2026 09:30:00 -0700" BODY[] "Subject: q\\"uoted\\\\")\r\n'
        b"A7 OK done\r\n"
    )
    vanished, fetch = command_responses(reader(data), TAG)
    assert vanished == Vanished(b"(EARLIER) 41,43:116")
    assert isinstance(fetch, Fetch)
    assert fetch.items["BODY[HEADER.FIELDS (FROM TO)]"] == String(b"\r\n")
    fetched = from_stream(42, 9, fetch.items, Detail.FULL, gmail=True)
    assert fetched is not None
    assert fetched.provider_id == "42:9"
    assert fetched.raw == b'Subject: q"uoted\\'
    assert fetched.thread_hint == "1278455344230334865"
    assert fetched.folders == ("\\Inbox", "Clients/Acme", "Entwürfe")
    assert fetched.date == datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=-7)))
    # a FETCH of flags only is no message
    assert from_stream(42, 9, {"UID": b"9", "FLAGS": []}, Detail.FULL) is None


@pytest.mark.parametrize(
    "raw",
    [b"", b"02-Foo-2026 09:30:00 +0000", b"31-Feb-2026 09:30:00 +0000", b"02-Mar-2026 9:30:00"],
)
def test_unreadable_internaldates(raw: bytes) -> None:
    assert parse_internaldate(raw) is None
