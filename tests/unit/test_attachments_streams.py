"""Attachment streams and part numbers under hostile input: transfer decoding
in chunks of any size equals decoding the whole; the size cap holds; part
numbers are only ever plain section paths; a bogus part, a missing part or
a wrong encoding never crashes a reader."""

from __future__ import annotations

import base64
import binascii
import quopri
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attachment_samples import EXPECTED, rich_message
from commlink.attachments import AttachmentTooLarge, MemoryAttachmentCache, cache_key
from commlink.attachments.cache import DirectoryAttachmentCache
from commlink.mime.parse import parse_message
from commlink.mime.parts import stdlib_content, valid_part
from commlink.model import Attachment
from commlink.providers.attachment_matching import match_attachment
from commlink.providers.attachment_streams import capped, decoded, transfer_encoding
from commlink.providers.files.attachments import part_body
from commlink.stores.sql_rows import attachments_from_json
from commlink.testing.hostile import corpus


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        yield data[last:cut]
        last = cut
    yield data[last:]


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0), max_size=12))
def test_base64_in_any_chunks_is_the_whole_decoded(data: bytes, cuts: list[int]) -> None:
    encoded = base64.encodebytes(data)  # 76-column lines
    assert b"".join(decoded(_split(encoded, cuts), "base64")) == data


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0), max_size=12))
def test_broken_base64_never_raises(data: bytes, cuts: list[int]) -> None:
    out = b"".join(decoded(_split(data, cuts), "BASE64 "))
    assert len(out) <= len(data)


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0), max_size=12))
def test_quoted_printable_in_any_chunks_is_the_whole_decoded(data: bytes, cuts: list[int]) -> None:
    encoded = quopri.encodestring(data)
    whole = binascii.a2b_qp(encoded)
    assert b"".join(decoded(_split(encoded, cuts), "quoted-printable")) == whole == data


@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=8))
def test_hostile_quoted_printable_never_raises(data: bytes, cuts: list[int]) -> None:
    b"".join(decoded(_split(data, cuts), "quoted-printable"))


@given(st.text(max_size=60))
def test_odd_encodings_pass_the_bytes_through(name: str) -> None:
    token = transfer_encoding(name)
    if token not in ("base64", "quoted-printable"):
        assert b"".join(decoded([b"abc", b"", b"=41"], name)) == b"abc=41"


def test_the_cap_stops_a_stream_past_its_limit() -> None:
    assert b"".join(capped([b"ab", b"cd"], 4)) == b"abcd"
    chunks = capped(iter([b"ab", b"cd", b"e"]), 4)
    assert next(chunks) + next(chunks) == b"abcd"
    with pytest.raises(AttachmentTooLarge) as caught:
        next(chunks)
    assert caught.value.limit == 4


@given(st.text(max_size=80))
def test_only_plain_section_paths_are_parts(text: str) -> None:
    if valid_part(text):
        numbers = text.split(".")
        assert all(n.isascii() and n.isdigit() and not n.startswith("0") for n in numbers)
        assert len(text) < 250


@pytest.mark.parametrize(
    "bogus", ["", "0", "1.0", "01", "1..2", "1 BODY[]", "2]\r\nA1 LOGOUT", "-1"]
)
def test_bogus_parts_are_refused(bogus: str) -> None:
    assert not valid_part(bogus)


def test_both_parsers_number_the_parts_alike() -> None:
    raw = rich_message()
    fast = parse_message(raw, provider_id="1").attachments
    slow = stdlib_content(raw, []).attachments
    assert [(a.filename, a.part) for a in fast] == [(a.filename, a.part) for a in slow]
    assert [a.part for a in fast] == ["2", "3", "4", "5", "6"]
    for attachment in fast:
        found = part_body(raw, attachment.part)
        assert found is not None
        encoding, body = found
        if attachment.filename in EXPECTED:
            assert b"".join(decoded([body], encoding)) == EXPECTED[attachment.filename]


def test_a_message_that_is_one_attachment_is_part_one() -> None:
    raw = (
        b"From: a@x.example\r\nTo: b@y.example\r\nSubject: s\r\nMessage-ID: <one@x>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Disposition: attachment; filename=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"%PDF-1.4 x" * 50)
    )
    (attachment,) = parse_message(raw, provider_id="1").attachments
    assert attachment.part == "1"
    found = part_body(raw, "1")
    assert found is not None
    assert b"".join(decoded([found[1]], found[0])) == b"%PDF-1.4 x" * 50


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=40))
def test_any_part_string_finds_a_part_or_none(part: str) -> None:
    found = part_body(rich_message(), part)
    assert found is None or valid_part(part)


def test_hostile_mail_gets_valid_parts_or_none() -> None:
    for specimen in corpus(large=False):
        message = parse_message(specimen.raw, provider_id="1")
        for attachment in message.attachments:
            assert attachment.part == "" or valid_part(attachment.part), specimen.name


def test_stored_rows_from_before_part_numbers_still_read() -> None:
    old = attachments_from_json('[["a.pdf", "application/pdf", 3, false, ""]]')
    assert old == (Attachment("a.pdf", "application/pdf", 3),)
    new = attachments_from_json('[["a.pdf", "application/pdf", 3, true, "c@x", "1.2"]]')
    assert new == (Attachment("a.pdf", "application/pdf", 3, True, "c@x", "1.2"),)


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["x/y", "x/z"])), max_size=6),
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from(["x/y", "X/Y", "x/z"])), max_size=6
    ),
    st.integers(min_value=-2, max_value=8),
)
def test_matching_finds_a_listed_attachment_or_none(
    stored: list[tuple[str, str]], listed: list[tuple[str, str]], index: int
) -> None:
    attachments = [Attachment(name, ctype, 1) for name, ctype in stored]
    found = match_attachment(attachments, index, listed)
    assert found is None or 0 <= found < len(listed)
    if found is not None and 0 <= index < len(attachments):
        assert listed[found][1].lower() == attachments[index].content_type or len(listed) == len(
            attachments
        )


def test_matching_takes_the_same_named_one_in_order() -> None:
    stored = [Attachment("a.pdf", "application/pdf", 1), Attachment("a.pdf", "application/pdf", 2)]
    listed = [("logo", "image/png"), ("a.pdf", "application/pdf"), ("a.pdf", "application/pdf")]
    assert match_attachment(stored, 0, listed) == 1
    assert match_attachment(stored, 1, listed) == 2
    note = [Attachment("Note.eml", "message/rfc822", 1)]
    assert match_attachment(note, 0, [("Note", "message/rfc822")]) == 0


def test_caches_keep_only_what_was_read_to_the_end(tmp_path: Path) -> None:
    key = cache_key("c1", "p1", "2")
    assert key != cache_key("c2", "p1", "2")
    for cache in (MemoryAttachmentCache(max_bytes=100), DirectoryAttachmentCache(tmp_path)):
        partial = cache.put(key, iter([b"ab", b"cd"]))
        next(partial)
        partial.close()  # abandoned half way: nothing kept
        assert cache.get(key) is None
        assert b"".join(cache.put(key, iter([b"ab", b"cd"]))) == b"abcd"
        kept = cache.get(key)
        assert kept is not None
        assert b"".join(kept) == b"abcd"
    small = MemoryAttachmentCache(max_bytes=10, max_entry_bytes=4)
    assert b"".join(small.put("big", iter([b"abc", b"de"]))) == b"abcde"
    assert small.get("big") is None
    for n in range(5):
        b"".join(small.put(f"k{n}", iter([b"abcd"])))
    assert [k for k in ("k0", "k1", "k2", "k3", "k4") if small.get(k) is not None] == ["k3", "k4"]


def test_an_attachment_keeps_its_part_through_storable_repair() -> None:
    from commlink.mime.storable import storable_message

    message = parse_message(rich_message(), provider_id="1")
    broken = attrs.evolve(message, subject="x\x00y")
    assert [a.part for a in storable_message(broken).attachments] == [
        a.part for a in message.attachments
    ]
