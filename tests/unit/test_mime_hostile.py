"""parse_message on hostile input: structure, storability, limits and dates.

Everything in a message is attacker-controlled (DESIGN §9). The parser must
never take the process down, must hand on only values every store can hold,
must bound what one message costs, and must date a message stably.
"""

from __future__ import annotations

import base64
import quopri
import random
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import fast_mail_parser as fmp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.calendar.ical import parse_calendar
from commlink.mime.content import MAX_FORWARD_DEPTH
from commlink.mime.parse import MAX_DATE_AHEAD, parse_message
from commlink.mime.parts import stdlib_content
from commlink.mime.storable import (
    HASHED_DOMAIN,
    MAX_ID_BYTES,
    MAX_REFERENCES,
    clean_text,
    storable_id,
    text_is_clean,
)
from commlink.mime.structure import (
    MAX_DEPTH,
    MAX_PARTS,
    few_delimiters,
    few_encoded_words,
    multipart_count,
    native_refusal,
    native_safe,
)
from commlink.model import Detail, Limits, Message, Role
from commlink.testing.mail_strategies import mutated, raw_messages

HEAD = (
    b"From: Ann <ann@x.example>\r\nTo: bob@y.example\r\nSubject: deep\r\n"
    b"Message-ID: <deep@x.example>\r\nDate: Mon, 3 Feb 2025 11:00:00 +0100\r\n"
)
DATE = datetime(2025, 2, 3, 10, tzinfo=timezone.utc)


def nested(depth: int, *, style: str = "plain", eol: bytes = b"\r\n", close: bool = True) -> bytes:
    """A message of ``depth`` nested multiparts around one text part."""
    levels = []
    for i in range(depth):
        if style == "case":
            levels.append(f"cOnTeNt-TyPe: MuLtIpArT/Mixed; BOUNDARY={i}\r\n\r\n--{i}\r\n")
        elif style == "folded":
            levels.append(f"Content-Type:\r\n multipart/mixed;\r\n boundary={i}\r\n\r\n--{i}\r\n")
        else:
            levels.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n')
    sep = "" if style in ("case", "folded") else "b"
    closing = "".join(f"\r\n--{sep}{i}--\r\n" for i in reversed(range(depth))) if close else ""
    body = "".join(levels) + "Content-Type: text/plain\r\n\r\ninnermost\r\n" + closing
    return (HEAD + body.encode()).replace(b"\r\n", eol)


def storable(m: Message) -> None:
    """What every store can hold (DESIGN §9)."""
    texts = [m.subject, m.snippet, m.body or "", m.list_id, m.list_unsubscribe, m.precedence]
    texts += [m.auto_submitted, *m.folders, m.thread_hint or "", *m.calendar_parts]
    for a in m.addresses():
        texts += [a.name, a.raw, a.email, a.key]
    for at in m.attachments:
        texts += [at.filename, at.content_type, at.content_id]
    for text in texts:
        assert text_is_clean(text), repr(text[:80])
        text.encode("utf-8")
    ids = [m.message_id, *m.in_reply_to, *m.references, m.thread_hint or ""]
    for value in ids:
        assert len(value.encode("utf-8")) <= MAX_ID_BYTES
        assert not any(ord(c) < 32 or c == "\x7f" for c in value), repr(value)
    assert m.message_id
    assert len(m.references) <= MAX_REFERENCES


# --- structure: the native parser never sees what it cannot survive ----------------


@pytest.mark.parametrize(
    ("style", "eol", "close"),
    [
        ("plain", b"\r\n", True),
        ("plain", b"\n", True),
        ("plain", b"\r", True),
        ("case", b"\r\n", True),
        ("folded", b"\r\n", False),
    ],
)
def test_a_40000_deep_message_returns_quickly_with_a_warning(
    style: str, eol: bytes, close: bool
) -> None:
    raw = nested(40_000, style=style, eol=eol, close=close)
    for detail in Detail:
        start = time.perf_counter()
        m = parse_message(raw, provider_id="x", detail=detail)
        assert time.perf_counter() - start < 3  # ~0.2 s here; the native parser crashes
        assert (m.message_id, m.subject, m.date) == ("deep@x.example", "deep", DATE)
        assert [a.key for a in m.addresses()] == ["ann@x.example", "bob@y.example"]
        assert "fallback-parser:deep-mime" in m.warnings
        if detail is Detail.FULL:
            assert "mime-too-deep" in m.warnings
            assert m.body == ""
        storable(m)


def test_the_native_parser_descends_only_at_delimiter_lines() -> None:
    """The hyphen bound of ``native_safe`` rests on this: the native parser
    enters a nested part only after a delimiter line, ``--`` and the boundary.
    Without the hyphens, 40,000 levels are one flat part; were it otherwise,
    this test would take the process down."""
    deep = nested(40_000, close=False)
    flat = deep.replace(b"\r\n--b", b"\r\nb").replace(b"Content-Type", b"ContentType")
    assert few_delimiters(flat, 100)
    assert native_safe(flat)
    assert fmp.parse_email_tree(nested(50), mode="metadata").children
    assert not fmp.parse_email_tree(flat, mode="metadata").children
    m = parse_message(flat, provider_id="x")
    assert (m.message_id, m.subject, m.date) == ("deep@x.example", "deep", DATE)
    assert not any(w.startswith("fallback-parser") for w in m.warnings)
    storable(m)


def test_ordinary_nesting_stays_on_the_fast_path() -> None:
    m = parse_message(nested(30), provider_id="x")
    assert m.body == "innermost\n"
    assert not any(w.startswith("fallback-parser") for w in m.warnings)


def forwarding(inner: bytes, encoding: str = "base64", body: bytes = b"see attached") -> bytes:
    """A message with a text part and ``inner`` forwarded in ``encoding``."""
    if encoding == "base64":
        encoded = base64.encodebytes(inner).replace(b"\n", b"\r\n")
    else:  # quoted-printable that hides every hyphen and "multipart"
        encoded = quopri.encodestring(inner).replace(b"-", b"=2D").replace(b"multi", b"=6Dulti")
    return HEAD + (
        b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n'
        b"--out\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n" + body + b"\r\n"
        b"--out\r\nContent-Type: message/rfc822\r\n"
        b"Content-Transfer-Encoding: "
        + encoding.encode()
        + b"\r\n\r\n"
        + encoded
        + b"\r\n--out--\r\n"
    )


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_deep_message_forwarded_in_an_encoding_is_not_walked(encoding: str) -> None:
    """Base64 and quoted-printable hide a forward's hyphens and "multipart"
    from the check of the message's own bytes, while the fast parser's
    structure walk decodes the forward and parses it natively: 40,000 levels
    inside took the process down (SIGSEGV)."""
    inner = nested(40_000).replace(b"Subject: deep", b"Subject: inner")
    raw = forwarding(inner, encoding)
    assert native_safe(raw)  # nothing to see from outside
    m = parse_message(raw, provider_id="x")
    assert m.body == "see attached"
    assert [(a.filename, a.content_type, a.part) for a in m.attachments] == [
        ("inner.eml", "message/rfc822", "")
    ]
    assert "attachment-parts-unknown" in m.warnings
    # a forward of that forward, and a body whose charset is repaired (which
    # walks the structure again to decode its bytes)
    onion = forwarding(raw, "base64", body="\u00e9t\u00e9 \u00e0 la plage".encode())
    m = parse_message(onion, provider_id="x")
    assert m.body == "\u00e9t\u00e9 \u00e0 la plage".encode().decode("latin-1")
    assert "attachment-parts-unknown" in m.warnings
    storable(m)


def test_a_forward_with_a_huge_header_is_not_walked() -> None:
    """The fast parser's time grows with the square of the encoded words it
    decodes: a top-level header over 64 KiB is read without it, and so now
    is a forward's (its structure walk took 7 s on this 1 MB one)."""
    words = " ".join(f"=?utf-8?q?w{i}?=" for i in range(40_000))
    inner = HEAD.replace(b"Subject: deep", b"Subject: " + words.encode()) + b"\r\nhello"
    raw = forwarding(inner)
    started = time.perf_counter()
    m = parse_message(raw, provider_id="x")
    assert time.perf_counter() - started < 1  # about 10 ms
    assert m.body == "see attached"
    assert [a.content_type for a in m.attachments] == ["message/rfc822"]
    assert m.attachments[0].filename.startswith("w0w1w2")  # adjacent encoded words join
    assert "attachment-parts-unknown" in m.warnings


@pytest.mark.parametrize("header", ["Content-Disposition: attachment; filename=", "X-Note: "])
def test_thousands_of_encoded_words_in_a_part_keep_away_from_the_fast_parser(header: str) -> None:
    """The fast parser decodes a part's encoded words in time that grows
    with their square: 40,000 in a file name took 7 s, in a description 2 s."""
    words = " ".join(f"=?utf-8?q?w{i}?=" for i in range(40_000))
    raw = (
        HEAD
        + (
            'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
            "--p\r\nContent-Type: text/plain\r\n\r\nthe file\r\n"
            f"--p\r\nContent-Type: application/pdf\r\n{header}{words}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--p--\r\n"
        ).encode()
    )
    for detail in Detail:
        started = time.perf_counter()
        m = parse_message(raw, provider_id="x", detail=detail)
        assert time.perf_counter() - started < 1  # about 60 ms
        assert "fallback-parser:many-encoded-words" in m.warnings
        assert (m.message_id, m.subject, m.date) == ("deep@x.example", "deep", DATE)
    assert m.body == "the file"
    (pdf,) = m.attachments
    assert (pdf.content_type, pdf.size, pdf.part) == ("application/pdf", 5, "2")


def test_encoded_words_are_counted_cheaply() -> None:
    word = b"=?a?q??= "
    assert few_encoded_words(word * 4, 4)
    assert few_encoded_words(b"=?" * 16, 4)  # 32 bytes cannot hold 5 encoded words
    assert not few_encoded_words(word * 5, 4)
    assert few_encoded_words(b"x" * 100_000 + word * 40, 40)  # found one by one
    assert not few_encoded_words(b"x" * 100_000 + word * 41, 40)
    assert not few_encoded_words(b"?" * 1_000 + word * 41, 40)  # counted outright
    assert native_refusal(b"x" * 40_000 + word * 4_097) == "many-encoded-words"
    assert native_refusal(b"x" * 40_000 + word * 4_096) is None
    assert native_refusal(nested(40_000)) == "deep-mime"


def test_forwards_are_walked_to_a_depth() -> None:
    inner = HEAD + b"Content-Type: text/plain\r\n\r\ncore"
    for _ in range(3):
        inner = forwarding(inner)
    m = parse_message(inner, provider_id="x")
    assert [a.part for a in m.attachments] == ["2"]
    assert "attachment-parts-unknown" not in m.warnings
    for _ in range(MAX_FORWARD_DEPTH):
        inner = forwarding(inner)
    m = parse_message(inner, provider_id="x")
    assert [a.part for a in m.attachments] == [""]
    assert "attachment-parts-unknown" in m.warnings


def test_parts_read_before_a_deep_chain_are_kept() -> None:
    chain = nested(3000).split(b"\r\n", 5)[5]  # the nested body without the top headers
    raw = HEAD + (
        b'Content-Type: multipart/mixed; boundary="top"\r\n\r\n'
        b"--top\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--top\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
        b"--top\r\n" + chain + b"\r\n--top--\r\n"
    )
    m = parse_message(raw, provider_id="x")
    assert m.body == "hello"
    assert [(a.filename, a.size) for a in m.attachments] == [("a.pdf", 5)]
    assert {"fallback-parser:deep-mime", "mime-too-deep"} <= set(m.warnings)


def test_the_standard_library_reader_is_bounded_too() -> None:
    warnings: list[str] = []
    content = stdlib_content(nested(MAX_DEPTH + 5), warnings)
    assert content.plain is None
    assert warnings == ["mime-too-deep"]
    warnings = []
    assert stdlib_content(nested(MAX_DEPTH - 1), warnings).plain == "innermost\r\n"
    assert warnings == []
    many = HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    many += b"".join(
        f"--m\r\nContent-Type: application/x-{i}\r\n\r\n{i}\r\n".encode()
        for i in range(MAX_PARTS + 50)
    )
    content = stdlib_content(many, warnings)
    assert len(content.attachments) == MAX_PARTS
    assert warnings == ["mime-parts-truncated"]


def test_too_many_attachments_are_cut_on_the_fast_path() -> None:
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n\r\ntext\r\n'
    raw += b"".join(
        f'--m\r\nContent-Type: application/pdf; name="{i}.pdf"\r\n\r\nx\r\n'.encode()
        for i in range(MAX_PARTS + 10)
    )
    m = parse_message(raw + b"--m--\r\n", provider_id="x")
    assert len(m.attachments) == MAX_PARTS
    assert f"attachments-truncated:{MAX_PARTS + 10}" in m.warnings


def test_the_structure_check() -> None:
    small = b"multipart --b\r\n" * 700
    assert len(small) < 12 * 1024
    assert native_safe(small)  # too small to nest deep enough to matter
    assert not native_safe(b"MuLtIpArT/x\r\n--b\r\n" * 101 + b"x" * 12 * 1024)
    assert native_safe(b"multipart/x\r\n--b\r\n" * 100 + b"x" * 12 * 1024)
    # Fewer than 100 hyphen pairs cannot make 100 delimiter lines, however
    # many times "multipart" is written.
    many = b"multipart/x\r\n" * 30_000  # 420 KB: 205 hyphens may be looked at
    assert native_safe(many + b"--" * 99 + b"-")
    assert not native_safe(many + b"--" * 100)
    room = b"x" * 20_000  # 9 hyphens may be looked at
    assert few_delimiters(b"", 1)
    assert few_delimiters(b"a--b-c---d" + room, 3)  # pairs without overlap: "--", "--"
    assert not few_delimiters(b"a--b-c----d" + room, 3)
    # more than one hyphen per 2 KiB is not looked at further
    assert few_delimiters(b"-" + b"x" * 4096 + b"-", 100)
    assert not few_delimiters(b"-" + b"x" * 4096 + b"-x-", 100)
    assert few_delimiters(b"x" * 100, 100)
    assert not few_delimiters(b"-" + b"x" * 100, 100)
    # A word across the 1 MiB slices is counted once.
    data = b"x" * (2**20 - 4) + b"MULTIPART" + b"x" * 10
    assert multipart_count(data, 5) == 1


# --- storable: what the stores cannot hold never leaves the parser -------------------


def test_nul_in_an_encoded_subject_is_removed() -> None:
    raw = HEAD.replace(b"Subject: deep", b"Subject: =?utf-8?q?hello=00world?=")
    m = parse_message(raw, provider_id="x")
    assert m.subject == "helloworld"
    assert "nul-removed" in m.warnings
    storable(m)


def test_nul_and_controls_in_ids_are_removed() -> None:
    raw = HEAD.replace(b"<deep@x.example>", b"<de\x00ep@x.example>")
    raw += b"In-Reply-To: <pa\x01rent@x.example>\r\nReferences: <a@x> <b\x00@x>\r\n\r\nhi"
    m = parse_message(raw, provider_id="x")
    assert m.message_id == "deep@x.example"
    assert m.in_reply_to == ("parent@x.example",)
    assert m.references == ("a@x", "b@x")
    assert "id-repaired" in m.warnings
    storable(m)


def test_a_long_random_message_id_is_hashed_stably() -> None:
    rng = random.Random(7)
    long_id = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
    long_id += "@x.example"
    parent = HEAD.replace(b"<deep@x.example>", f"<{long_id}>".encode()) + b"\r\nhi"
    reply = HEAD.replace(b"<deep@x.example>", b"<reply@x.example>")
    reply += f"In-Reply-To: <{long_id}>\r\nReferences: <{long_id}>\r\n\r\nre".encode()
    first = parse_message(parent, provider_id="a")
    again = parse_message(parent, provider_id="b", detail=Detail.METADATA)
    child = parse_message(reply, provider_id="c")
    assert first.message_id == again.message_id
    assert first.message_id.endswith("@" + HASHED_DOMAIN)
    assert child.in_reply_to == child.references == (first.message_id,)  # threading holds
    assert not first.synthetic_id
    assert "id-hashed" in first.warnings
    storable(first)
    storable(child)


def test_references_keep_the_newest() -> None:
    refs = " ".join(f"<r{i}@x.example>" for i in range(250)).encode()
    m = parse_message(HEAD + b"References: " + refs + b"\r\n\r\nhi", provider_id="x")
    assert m.references == tuple(f"r{i}@x.example" for i in range(150, 250))
    assert "references-truncated:250" in m.warnings


def test_lone_surrogates_from_broken_encoded_words_are_replaced() -> None:
    # A charset label Python reads with a codec that makes lone surrogates.
    raw = (
        b"From: =?unicode-escape?q?=E9=5Cud800Ann?= <ann@x.example>\r\n"
        b"Subject: =?unicode-escape?q?=E9=5Cud800?=\r\nMessage-ID: <s@x.example>\r\n\r\nhi"
    )
    m = parse_message(raw, provider_id="x")
    assert m.subject == "é\ufffd"
    assert [a.name for a in m.addresses(Role.FROM)] == ["é\ufffdAnn"]
    assert "surrogate-replaced" in m.warnings
    storable(m)


def test_controls_in_the_body_and_attachment_names_are_removed() -> None:
    raw = HEAD + (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"a=00b=01c\tok\r\n"
        b"--m\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''x%00y%07.pdf\r\n\r\nz\r\n--m--\r\n"
    )
    m = parse_message(raw, provider_id="x", folders=("In\x00box",), thread_hint="t\x00h")
    assert m.body == "abc\tok"
    assert m.snippet == "abc ok"
    assert [a.filename for a in m.attachments] == ["xy.pdf"]
    assert (m.folders, m.thread_hint) == (("Inbox",), "th")
    assert {"nul-removed", "control-removed"} <= set(m.warnings)
    storable(m)


def test_storable_helpers() -> None:
    assert clean_text("a\x00b\x1bc\td\ne\rf\ud800") == "abc\td\ne\rf\ufffd"
    assert text_is_clean("fine\ttext\r\n" * 100)
    assert not text_is_clean("x" * 1000 + "\x0c")
    assert not text_is_clean("é" * 1000 + "\udc80")
    assert storable_id("a\x00b@x") == ("ab@x", ["id-repaired"])
    long_id = "é" * 300  # 300 characters, 600 bytes
    hashed, repairs = storable_id(long_id)
    assert repairs == ["id-hashed"]
    assert storable_id(long_id)[0] == hashed
    assert storable_id("é" * 256) == ("é" * 256, [])  # 512 bytes: kept


def test_calendar_uids_are_storable_and_stable() -> None:
    long_uid = "u" * 3000 + "@x.example"

    def ics(uid: str) -> bytes:
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTART:20250203T100000Z\r\nSUMMARY:s\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()

    first = parse_calendar(ics(long_uid))
    again = parse_calendar(ics(long_uid))
    (event,) = first.events
    assert event.uid == again.events[0].uid
    assert event.uid.endswith("@" + HASHED_DOMAIN)
    assert f"id-hashed:{event.uid}" in first.warnings
    (nul,) = parse_calendar(ics("a\x00b@x.example")).events
    assert nul.uid == "ab@x.example"


_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(mutated(raw_messages()), st.sampled_from(Detail))
def test_every_parse_is_storable(raw: bytes, detail: Detail) -> None:
    storable(parse_message(raw, provider_id="p", detail=detail))


@_SETTINGS
@given(st.binary(max_size=3000), st.sampled_from(Detail))
def test_arbitrary_bytes_are_storable(raw: bytes, detail: Detail) -> None:
    storable(parse_message(raw, provider_id="p", detail=detail))


@_SETTINGS
@given(
    st.lists(
        st.sampled_from(
            [b"\x00", b"\x01", b"=?utf-8?q?=00?=", b"=?utf-7?q?+2D0-?=", b"\xe9", b"<", b">",
             b"a@b.example", b" ", b",", b"(", b")", b'"', b"\r\n ", b"=?utf-8?b?AA==?="]
        ),
        max_size=40,
    ).map(b"".join),
    st.sampled_from(["Subject", "From", "To", "Message-ID", "References", "List-Id"]),
)  # fmt: skip
def test_hostile_header_values_are_storable(value: bytes, header: str) -> None:
    raw = b"From: a@x.example\r\n" + header.encode() + b": " + value + b"\r\n\r\nbody"
    storable(parse_message(raw, provider_id="p"))


# --- limits -----------------------------------------------------------------------


def test_body_text_is_cut_to_the_limit() -> None:
    raw = HEAD + b"\r\n" + b"0123456789\r\n" * 1000
    m = parse_message(raw, provider_id="x", limits=Limits(max_text_chars=500))
    assert m.body == ("0123456789\n" * 50)[:500]
    assert "text-truncated" in m.warnings
    assert len(parse_message(raw, provider_id="x").body or "") == 11_000
    html = HEAD + b"Content-Type: text/html\r\n\r\n" + b"<p>word</p>" * 100_000
    m = parse_message(html, provider_id="x", limits=Limits(max_text_chars=100))
    assert m.body is not None
    assert len(m.body) <= 100
    assert "text-truncated" in m.warnings


def test_participants_past_the_limit_are_dropped_and_counted() -> None:
    to = ", ".join(f"p{i}@x.example" for i in range(30)).encode()
    raw = HEAD.replace(b"To: bob@y.example", b"To: " + to) + b"Cc: c@x.example\r\n\r\nhi"
    m = parse_message(raw, provider_id="x", limits=Limits(max_participants=10))
    assert len(m.participants) == 10
    assert m.participants[0].role is Role.FROM
    assert "participants-truncated:32" in m.warnings
    assert "participants-truncated:32" not in parse_message(raw, provider_id="x").warnings


def test_five_thousand_recipients_parse_well_under_a_second() -> None:
    to = ", ".join(f"=?utf-8?q?P=C3=A9rson_{i}?= <p{i}@x{i % 50}.example>" for i in range(5000))
    raw = HEAD.replace(b"To: bob@y.example", b"To: " + to.encode()) + b"\r\nhi"
    parse_message(raw[:2000], provider_id="warm-up")
    start = time.perf_counter()
    m = parse_message(raw, provider_id="x")
    assert time.perf_counter() - start < 1.0
    assert len(m.participants) == Limits().max_participants
    assert "participants-truncated:5001" in m.warnings
    assert m.participants[1].address.name == "Pérson 0"


def test_a_huge_subject_is_cut_cheaply() -> None:
    for subject in (b"word " * 2_000_000, b"=?utf-8?q?" + b"caf=C3=A9_" * 1_000_000 + b"?="):
        raw = HEAD.replace(b"Subject: deep", b"Subject: " + subject) + b"\r\nhi"
        start = time.perf_counter()
        m = parse_message(raw, provider_id="x")
        assert time.perf_counter() - start < 1.0
        assert 0 < len(m.subject) <= 2000
        assert "subject-truncated" in m.warnings


def test_a_50_mb_text_body_is_not_held_many_times() -> None:
    body = b"some words of text\r\n" * (50 * 2**20 // 20)
    raw = HEAD + b"Content-Type: text/plain\r\n\r\n" + body
    tracemalloc.start()
    try:
        m = parse_message(raw, provider_id="x")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert m.body is not None
    assert len(m.body) == Limits().max_text_chars
    assert "text-truncated" in m.warnings
    # The text the fast parser hands over, once; not copies of it.
    assert peak < 1.5 * len(body)


# --- dates ------------------------------------------------------------------------

RECEIVED = (
    b"Received: from mx.x.example by mx.y.example; Tue, 4 Feb 2025 09:00:00 +0000\r\n"
    b"Received: from a.example by mx.x.example; Mon, 3 Feb 2025 08:00:00 +0000\r\n"
)


def test_without_a_date_the_newest_received_header_dates_the_message() -> None:
    raw = RECEIVED + HEAD.replace(b"Date: Mon, 3 Feb 2025 11:00:00 +0100\r\n", b"") + b"\r\nhi"
    for detail in Detail:
        m = parse_message(raw, provider_id="x", detail=detail)
        assert m.date == datetime(2025, 2, 4, 9, tzinfo=timezone.utc)
        assert {"missing-date", "date-from-received"} <= set(m.warnings)
        assert "date-unknown" not in m.warnings
    bad = raw.replace(b"Mon, 3 Feb", b"Xyz, 99 Foo").replace(b"Tue, 4 Feb 2025 09:00:00", b"soon")
    assert parse_message(bad, provider_id="x").date == datetime(1970, 1, 1, tzinfo=timezone.utc)
    unreadable_first = raw.replace(b"Tue, 4 Feb 2025 09:00:00 +0000", b"not a date")
    assert parse_message(unreadable_first, provider_id="x").date == datetime(
        2025, 2, 3, 8, tzinfo=timezone.utc
    )


def test_the_provider_date_comes_before_received_headers() -> None:
    raw = RECEIVED + HEAD.replace(b"Date: Mon, 3 Feb 2025 11:00:00 +0100", b"Date: someday")
    m = parse_message(raw + b"\r\nhi", provider_id="x", fallback_date=datetime(2025, 3, 1))
    assert m.date == datetime(2025, 3, 1, tzinfo=timezone.utc)
    assert "date-from-received" not in m.warnings


# A Date header is the sender's word: one dated years ahead would head every
# timeline its thread is on, for good.
FUTURE = HEAD.replace(
    b"Date: Mon, 3 Feb 2025 11:00:00 +0100", b"Date: Fri, 31 Dec 9999 23:59:59 +0000"
)


@pytest.mark.parametrize("detail", list(Detail))
def test_a_date_far_ahead_of_arrival_gives_way_to_the_arrival_date(detail: Detail) -> None:
    arrived = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
    m = parse_message(FUTURE + b"\r\nhi", provider_id="x", detail=detail, fallback_date=arrived)
    assert m.date == arrived
    assert "date-after-arrival" in m.warnings
    # without a provider date, the topmost Received header tells when it arrived
    m = parse_message(RECEIVED + FUTURE + b"\r\nhi", provider_id="x", detail=detail)
    assert m.date == datetime(2025, 2, 4, 9, tzinfo=timezone.utc)
    assert "date-after-arrival" in m.warnings


@pytest.mark.parametrize(
    ("ahead", "kept"),
    [(timedelta(hours=23, minutes=59), True), (timedelta(days=1, seconds=1), False)],
)
def test_a_sender_clock_a_little_ahead_is_believed(ahead: timedelta, kept: bool) -> None:
    m = parse_message(HEAD + b"\r\nhi", provider_id="x", fallback_date=DATE - ahead)
    assert m.date == (DATE if kept else DATE - ahead)
    assert ("date-after-arrival" in m.warnings) is not kept


def test_a_date_before_arrival_is_kept_and_no_arrival_keeps_the_header() -> None:
    # mail sent long before it arrived (a migration, a delayed queue) keeps its date
    late = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_message(HEAD + b"\r\nhi", provider_id="x", fallback_date=late).date == DATE
    # nothing says when it arrived: the header is all there is
    m = parse_message(FUTURE + b"\r\nhi", provider_id="x")
    assert m.date == datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert "date-after-arrival" not in m.warnings


@settings(max_examples=200, deadline=None)
@given(
    sent=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 30)),
    arrived=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
)
def test_no_message_is_dated_more_than_a_day_after_it_arrived(
    sent: datetime, arrived: datetime
) -> None:
    header = format_datetime(sent.replace(microsecond=0, tzinfo=timezone.utc)).encode()
    raw = HEAD.replace(b"Mon, 3 Feb 2025 11:00:00 +0100", header) + b"\r\nhi"
    m = parse_message(raw, provider_id="x", fallback_date=arrived)
    arrival = arrived.replace(tzinfo=timezone.utc)
    assert m.date - arrival <= MAX_DATE_AHEAD
    assert m.date in (sent.replace(microsecond=0, tzinfo=timezone.utc), arrival)


@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
        'attachment; filename="=?UTF-8?B?aW52b2ljZeKArmZkcC5leGU=?="',
        "attachment; filename*=UTF-8''%E2%81%A7invoice%E2%80%AEfdp.exe%E2%81%A9",
    ],
)
def test_direction_controls_never_disguise_a_file_name(disposition: str) -> None:
    # U+202E shows "invoice\u202efdp.exe" as "invoiceexe.pdf"
    raw = (
        HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Disposition: {disposition}\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\nTVo=\r\n--b--\r\n"
    )
    m = parse_message(raw, provider_id="x")
    (attachment,) = m.attachments
    assert attachment.filename == "invoicefdp.exe"
    assert "filename-repaired" in m.warnings


def test_right_to_left_file_names_are_kept() -> None:
    raw = (
        HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; "
        b"filename*=UTF-8''%D7%97%D7%A9%D7%91%D7%95%D7%A0%D7%99%D7%AA.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBE\r\n--b--\r\n"
    )
    m = parse_message(raw, provider_id="x")
    assert m.attachments[0].filename == "\u05d7\u05e9\u05d1\u05d5\u05e0\u05d9\u05ea.pdf"
    assert "filename-repaired" not in m.warnings
