"""parse_message on a hand-made corpus of tricky messages (tests/data/mail)."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.mime import parse as mime
from commlink.mime.content import body_text
from commlink.mime.headers import (
    decode_words,
    header_block,
    msg_ids,
    parse_date,
    split_addresses,
    synthetic_id,
)
from commlink.mime.parse import parse_message
from commlink.mime.part_kinds import estimate_size
from commlink.mime.parts import stdlib_content
from commlink.mime.text import decode_bytes, html_to_text, snippet
from commlink.model import Detail, Limits, Message, Role

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def raw(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def parse(name: str, **kwargs: object) -> Message:
    return parse_message(raw(name), provider_id=name, **kwargs)  # type: ignore[arg-type]


def people(message: Message, role: Role) -> list[tuple[str, str]]:
    return [(a.key, a.name) for a in message.addresses(role)]


def test_multipart_alternative_uses_the_plain_part_and_reads_every_header() -> None:
    m = parse("alternative.eml", folders=("INBOX",), thread_hint="t-1")
    assert m.provider_id == "alternative.eml"
    assert m.message_id == "alt-1@client.example"
    assert not m.synthetic_id
    assert m.date == datetime(2025, 2, 4, 8, 30, tzinfo=timezone.utc)
    assert m.subject == "Quarterly review and next steps"
    assert people(m, Role.FROM) == [("ana.lopez@client.example", "Ana Lopez")]
    assert people(m, Role.TO) == [
        ("owner@northwind.example", "Owner"),
        ("bob@client.example", "Smith, Bob"),
    ]
    assert people(m, Role.CC) == [("carol@client.example", "Carol C.")]  # name from a comment
    assert people(m, Role.REPLY_TO) == [("replies@client.example", "")]
    assert m.in_reply_to == ("prev-2@northwind.example",)
    assert m.references == ("root-1@client.example", "prev-2@northwind.example")
    assert m.body is not None
    assert "quarterly review \u2014 see you on Monday" in m.body
    assert "encoding and joined again" in m.body  # quoted-printable soft break undone
    assert "HTML version" not in m.body
    assert "\r" not in m.body
    assert m.snippet.startswith("Hello, Here is the plan")
    assert len(m.snippet) <= 200
    assert (m.folders, m.thread_hint, m.size) == (("INBOX",), "t-1", len(raw("alternative.eml")))
    assert m.warnings == ()


def test_html_only_body_is_converted_to_readable_text() -> None:
    m = parse("html_only.eml")
    assert m.body == (
        "Big news\n\nFirst & foremost: prices drop by 10 \u20ac.\n\nLine one\nLine two\n\n"
        "- Alpha\n- Beta\n\nCell A Cell B"
    )
    for hidden in ("Title is not text", "color: red", "script text", "a comment"):
        assert hidden not in m.body
    assert m.snippet == " ".join(m.body.split())


def test_encoded_words_in_names_and_subject() -> None:
    m = parse("encoded_words.eml")
    assert m.subject == "Grüße aus Zürich and café"
    assert people(m, Role.FROM) == [("joerg@beispiel.example", "Jörg Müller")]
    assert people(m, Role.TO) == [
        ("renee@exemple.example", "Renée Dupont"),
        ("john@example.com", "Doe, John"),  # a comma inside an encoded word is not a separator
        ("li@example.cn", "李小龙"),  # one character split across two words
    ]
    assert m.warnings == ()


def test_rfc2231_and_encoded_attachment_names() -> None:
    m = parse("rfc2231_filename.eml")
    assert [(a.filename, a.content_type, a.inline) for a in m.attachments] == [
        ("résumé final.pdf", "application/pdf", False),
        ("données 2024.xls", "application/vnd.ms-excel", False),
        ("logo été.png", "image/png", True),
    ]
    pdf = b"%PDF-1.4 fake pdf content for the size check"
    assert [a.size for a in m.attachments] == [len(pdf), len(pdf), 8]
    assert m.attachments[2].content_id == "logo@files.example"
    assert m.body == "See attachments."


def test_rfc6532_utf8_headers() -> None:
    m = parse("utf8_headers.eml")
    assert m.subject == "Grüße — 日本語"
    (sender,) = m.addresses(Role.FROM)
    assert (sender.name, sender.email) == ("Jörg Müller", "jörg@bücher.example")
    assert sender.key == "jörg@xn--bcher-kva.example"
    assert people(m, Role.TO) == [
        ("zoe@example.com", "Zoë Ångström"),
        ("li@xn--r8jz45g.jp", "李小龙"),
    ]
    assert m.message_id == "utf8-1@bücher.example"
    assert m.date == datetime(2025, 2, 7, 23, 0, tzinfo=timezone.utc)
    assert m.warnings == ()


def test_group_syntax() -> None:
    m = parse("groups.eml")
    assert m.addresses(Role.TO) == ()  # undisclosed-recipients:;
    assert m.addresses(Role.BCC) == ()
    assert people(m, Role.CC) == [
        ("a@team.example", ""),
        ("b@team.example", "B. Person"),
        ("outside@other.example", ""),
    ]
    assert m.warnings == ()


def test_several_from_addresses_sender_duplicates_and_invalid_entries() -> None:
    m = parse("multiple_from.eml")
    assert people(m, Role.FROM) == [
        ("alice@authors.example", "Alice"),
        ("bob@authors.example", "Bob"),
        ("carol@authors.example", "Carol"),  # from the second From header
    ]
    assert people(m, Role.SENDER) == [("secretary@authors.example", "Secretary")]
    to = m.addresses(Role.TO)
    assert [a.key for a in to if a.valid] == ["reader@readers.example"]  # deduped
    invalid = [a for a in to if not a.valid]
    assert [(a.key, a.raw) for a in invalid] == [("", "not an address")]  # kept, not dropped
    assert "bad-address:to" in m.warnings
    assert m.sender == m.addresses(Role.FROM)[0]


def test_missing_message_id_is_synthesised_stably_from_headers() -> None:
    full = parse("no_message_id.eml")
    data = raw("no_message_id.eml")
    headers_only = parse_message(header_block(data), provider_id="x", detail=Detail.METADATA)
    metadata_of_full = parse_message(data, provider_id="y", detail=Detail.METADATA)
    assert full.synthetic_id
    assert headers_only.synthetic_id
    assert metadata_of_full.synthetic_id
    assert full.message_id == headers_only.message_id == metadata_of_full.message_id
    assert full.message_id.endswith("@synthetic.commlink.invalid")
    assert "missing-message-id" in full.warnings
    # A different header gives a different id; the body does not matter.
    other = data.replace(b"Subject: No id here", b"Subject: No id there")
    assert parse_message(other, provider_id="z").message_id != full.message_id
    rebodied = data.replace(b"Body without", b"A body without")
    assert parse_message(rebodied, provider_id="z").message_id == full.message_id


def test_synthetic_id_without_any_identifying_header_uses_the_header_section() -> None:
    a = synthetic_id(b"X-Custom: 1\r\n\r\nbody one")
    assert a == synthetic_id(b"X-Custom: 1\r\n") == synthetic_id(b"X-Custom: 1\n\nbody two")
    assert a != synthetic_id(b"X-Custom: 2\r\n\r\nbody one")


def test_empty_message_id_counts_as_missing() -> None:
    data = raw("bad_date.eml").replace(b"<bad-date@dates.example>", b"<>")
    m = parse_message(data, provider_id="x")
    assert m.synthetic_id
    assert "bad-message-id" in m.warnings


@pytest.mark.parametrize(
    ("name", "warning"), [("bad_date.eml", "bad-date"), ("no_date.eml", "missing-date")]
)
def test_unusable_date_falls_back_to_the_provider_date(name: str, warning: str) -> None:
    naive = datetime(2025, 3, 1, 12, 0)
    m = parse(name, fallback_date=naive)
    assert m.date == datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)  # naive means UTC
    assert warning in m.warnings
    assert "date-unknown" not in m.warnings
    aware = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse(name, fallback_date=aware).date == datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "warning"), [("bad_date.eml", "bad-date"), ("no_date.eml", "missing-date")]
)
def test_unusable_date_without_fallback_is_the_epoch(name: str, warning: str) -> None:
    m = parse(name)
    assert m.date == EPOCH
    assert m.date.tzinfo is not None
    assert {warning, "date-unknown"} <= set(m.warnings)


@pytest.mark.parametrize(
    "value", ["Tue, 4 Feb 202500 +0100", "Tue, 4 Feb 2025 99:99:99 +9999", "32 Foo 2025"]
)
def test_out_of_range_dates_are_bad_dates(value: str) -> None:
    data = raw("naive_date.eml").replace(b"Wed, 12 Feb 2025 13:14:15 -0000", value.encode())
    m = parse_message(data, provider_id="x", fallback_date=datetime(2025, 1, 1))
    assert m.date == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert "bad-date" in m.warnings


def test_date_without_zone_is_utc() -> None:
    m = parse("naive_date.eml")
    assert m.date == datetime(2025, 2, 12, 13, 14, 15, tzinfo=timezone.utc)
    assert m.warnings == ()


def test_forwarded_message_is_an_attachment_and_its_participants_do_not_leak() -> None:
    m = parse("forwarded.eml")
    keys = {a.key for a in m.addresses()}
    assert keys == {"outer@fwd.example", "owner@northwind.example"}
    assert not any(k.endswith("@inner.example") for k in keys)
    assert m.message_id == "outer-1@fwd.example"
    assert m.body == "Forwarding this, see below."
    assert m.calendar_parts == ()  # the forwarded message's invitation is not this message's
    assert [(a.filename, a.content_type) for a in m.attachments] == [
        ("Contract détails.eml", "message/rfc822"),
        ("forwarded.eml", "message/rfc822"),
    ]
    assert all(a.size > 0 for a in m.attachments)


def test_calendar_invitation() -> None:
    m = parse("invite.eml")
    (calendar,) = m.calendar_parts  # inline and attached copies are one invitation
    assert calendar.startswith("BEGIN:VCALENDAR\nPRODID")
    assert "SUMMARY:Kick-off — Zürich" in calendar
    assert "UID:evt-1@cal.example" in calendar
    # The inline text/calendar alternative is not an attachment; the .ics file is.
    assert [(a.filename, a.content_type) for a in m.attachments] == [
        ("invite.ics", "application/ics")
    ]
    assert m.body == "You have been invited to Kick-off."


def test_broken_base64_in_the_body_falls_back_and_keeps_what_decodes() -> None:
    m = parse("broken_base64_body.eml")
    assert m.body == "Hello world!"
    assert "fallback-parser:decode-error" in m.warnings
    assert m.message_id == "b64-body@b64.example"
    assert people(m, Role.TO) == [("b@b64.example", "")]
    # Headers read through the fallback agree with a headers-only parse.
    meta = parse_message(raw("broken_base64_body.eml"), provider_id="m", detail=Detail.METADATA)
    assert (meta.subject, meta.participants, meta.date) == (m.subject, m.participants, m.date)


def test_broken_base64_in_an_attachment_keeps_the_message_and_estimates_the_size() -> None:
    m = parse("broken_base64_attachment.eml")
    assert m.body == "The body is fine."
    (photo,) = m.attachments
    assert (photo.filename, photo.content_type) == ("photo.jpg", "image/jpeg")
    encoded = len(b"!!!this is $$$ not base64 at all###")
    assert 0 < photo.size <= encoded
    assert "bad-attachment-encoding" in m.warnings


@given(
    size=st.integers(min_value=0, max_value=5_000),
    sep=st.sampled_from([b"\r\n", b"\n"]),
    trailing=st.booleans(),
)
def test_the_base64_size_estimate_is_never_low_and_at_most_2_bytes_high(
    size: int, sep: bytes, trailing: bool
) -> None:
    encoded = base64.b64encode(bytes(size))
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    body = sep.join(lines) + (sep if trailing and lines else b"")
    assert 0 <= estimate_size(len(body), len(sep)) - size <= 2


def _with_files(eol: bytes, files: list[tuple[str, str, str, bytes]]) -> bytes:
    """A message with a text part and ``files`` (name, type, transfer
    encoding, encoded content), every line ending in ``eol``."""
    parts = [b"--f\nContent-Type: text/plain\n\nSee the files.\n"]
    for name, ctype, encoding, body in files:
        head = (
            f'--f\nContent-Type: {ctype}; name="{name}"\nContent-Disposition: attachment\n'
            f"Content-Transfer-Encoding: {encoding}\n\n"
        )
        parts.append(head.encode() + body.replace(b"\r\n", b"\n") + b"\n")
    raw = (
        b"From: a@x.example\nTo: b@y.example\nSubject: files\nMessage-ID: <files@x.example>\n"
        b'Content-Type: multipart/mixed; boundary="f"\n\n' + b"".join(parts) + b"--f--\n"
    )
    return raw.replace(b"\n", eol)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_large_base64_file_is_measured_from_its_encoded_size(eol: bytes) -> None:
    rng = random.Random(5)
    sizes = [40_000, 40_001, 100_000, 300_001, 300_002]
    files = [
        (f"f{i}.pdf", "application/pdf", "base64", base64.encodebytes(rng.randbytes(n)))
        for i, n in enumerate(sizes)
    ]
    # the last line without its line end (the delimiter's line end follows)
    files[4] = (*files[4][:3], files[4][3].rstrip(b"\n"))
    ics = b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:big\nSUMMARY:Big\nDTSTART:20250301T100000Z\n"
    ics += b"DESCRIPTION:" + b"x" * 70_000 + b"\nEND:VEVENT\nEND:VCALENDAR\n"
    text = b"a line of a long text file\n" * 4_000
    files += [
        ("big.ics", "text/calendar", "base64", base64.encodebytes(ics)),
        ("notes.txt", "text/plain", "7bit", text),
        ("raw.bin", "application/octet-stream", "quoted-printable", b"abc=3D\n" * 20_000),
    ]
    m = parse_message(_with_files(eol, files), provider_id="x")
    got = {a.filename: a.size for a in m.attachments}
    # under 64 KiB encoded: decoded and counted; larger: within 2 bytes high
    assert (got["f0.pdf"], got["f1.pdf"]) == (40_000, 40_001)
    for name, size in zip(["f2.pdf", "f3.pdf", "f4.pdf"], sizes[2:], strict=True):
        assert 0 <= got[name] - size <= 2, (name, got[name], size)
    # a calendar is still read; other encodings are still counted as decoded
    assert any("UID:big" in part for part in m.calendar_parts)
    assert got["notes.txt"] == len(text.replace(b"\n", eol))
    assert got["raw.bin"] == len(b"abc=\r\n" * 20_000)
    assert [a.part for a in m.attachments] == [str(n) for n in range(2, 10)]
    assert not any(w.startswith(("fallback-parser", "bad-")) for w in m.warnings)


def test_a_forward_within_a_forward_in_base64_keeps_its_part_number() -> None:
    m = parse("forwarded_base64.eml")
    assert m.body == "Forwarded again."
    assert [(a.filename, a.content_type, a.part) for a in m.attachments] == [
        ("Fwd: Fwd: Contract.eml", "message/rfc822", "2")
    ]
    assert m.warnings == ()


def test_unknown_charset_is_repaired() -> None:
    m = parse("unknown_charset.eml")
    assert m.body == "Café crème brûlée\n"
    assert "charset-repaired:utf-8" in m.warnings


def test_wrong_charset_is_repaired() -> None:
    m = parse("wrong_charset.eml")
    assert m.body == "Naïve café \u20ac 5 \u2013 \u201cquoted\u201d\n"
    assert "charset-repaired:windows-1252" in m.warnings


def test_us_ascii_label_on_utf8_text_is_repaired() -> None:
    m = parse("ascii_declared.eml")
    assert m.body == "Crème brûlée\n"
    assert "charset-repaired:utf-8" in m.warnings


def test_8bit_latin1_headers_are_decoded_as_windows_1252() -> None:
    m = parse("latin1_headers.eml")
    assert m.subject == "Grüße \u2013 café"
    assert people(m, Role.FROM) == [("joerg@latin.example", "Jörg Müller")]
    assert people(m, Role.TO) == [("renee@latin.example", "Renée \u20acuro")]
    assert m.body == "Grüße \u20ac\n"  # iso-8859-1 label, Windows-1252 bytes
    assert "header-charset-repaired" in m.warnings


def test_truncated_message_keeps_what_arrived() -> None:
    m = parse("truncated.eml")
    assert m.body == "The start of the text survived."
    assert m.message_id == "trunc-1@cut.example"
    assert [a.filename for a in m.attachments] == ["big.pdf"]
    assert m.attachments[0].size > 0
    # Cut anywhere, it still parses.
    data = raw("truncated.eml")
    for end in range(0, len(data), 37):
        cut = parse_message(data[:end], provider_id="cut")
        assert cut.message_id
        assert cut.date.tzinfo is not None


def test_empty_bytes() -> None:
    m = parse_message(b"", provider_id="empty")
    assert m.synthetic_id
    assert m.message_id.endswith("@synthetic.commlink.invalid")
    assert (m.body, m.subject, m.participants, m.size) == ("", "", (), 0)
    assert m.date == EPOCH
    assert parse_message(b"", provider_id="again").message_id == m.message_id


def test_headers_only_bytes_with_metadata_detail() -> None:
    data = raw("alternative.eml")
    full = parse_message(data, provider_id="f")
    for head in (header_block(data), header_block(data) + b"\r\n", header_block(data).rstrip()):
        meta = parse_message(head, provider_id="m", detail=Detail.METADATA)
        assert meta.body is None
        assert meta.snippet == ""
        assert meta.attachments == ()
        assert meta.calendar_parts == ()
        assert meta.size == len(head)
        same = ("message_id", "date", "subject", "participants", "in_reply_to", "references")
        assert all(getattr(meta, f) == getattr(full, f) for f in same)


def test_metadata_detail_ignores_a_body_that_came_along() -> None:
    m = parse("invite.eml", detail=Detail.METADATA)
    assert (m.body, m.snippet, m.attachments, m.calendar_parts) == (None, "", (), ())


def test_newsletter_headers() -> None:
    m = parse("newsletter.eml")
    assert m.list_id == "digest.news.example"
    assert m.list_unsubscribe == (
        "<mailto:unsubscribe@news.example?subject=unsub>, <https://news.example/unsubscribe/42>"
    )
    assert m.precedence == "bulk"
    assert m.auto_submitted == "auto-generated"
    assert m.body == "This week's news.\n"  # LF line endings work as well as CRLF


def test_not_an_email_at_all() -> None:
    for junk in (b"\x00\xff" * 50, b"just some text", b"\r\n\r\n\r\n", b":::\n::", b"\xff" * 3):
        m = parse_message(junk, provider_id="junk")
        assert m.message_id
        assert m.date.tzinfo is not None


def test_internal_failure_still_returns_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(mime, "_parse", boom)
    m = parse_message(raw("alternative.eml"), provider_id="x", folders=("A",))
    assert m.warnings == ("internal-error:RuntimeError", "missing-date", "date-unknown")
    assert m.synthetic_id
    assert (m.folders, m.size) == (("A",), len(raw("alternative.eml")))


def test_an_error_in_the_fast_path_falls_back_to_the_slow_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = parse("alternative.eml")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("unexpected")

    monkeypatch.setattr(mime, "_fast_head", broken)
    m = parse("alternative.eml")
    assert m.warnings == ("fallback-parser:value-error",)
    same = ("message_id", "date", "subject", "participants", "references", "body", "attachments")
    assert all(getattr(m, f) == getattr(expected, f) for f in same)


def test_bytes_like_input_is_accepted() -> None:
    data = raw("alternative.eml")
    from_bytearray = parse_message(bytearray(data), provider_id="x")  # type: ignore[arg-type]
    assert from_bytearray == parse_message(data, provider_id="x")


@pytest.mark.parametrize("name", sorted(p.name for p in MAIL.glob("*.eml")))
def test_fallback_reader_agrees_with_the_fast_path(name: str) -> None:
    """The stdlib reader used on failures finds the same body and attachments."""
    data = raw(name)
    fast = parse_message(data, provider_id="x")
    slow = stdlib_content(data, [])
    assert body_text(slow, Limits().max_text_chars, []) == fast.body
    assert [a.filename for a in slow.attachments] == [a.filename for a in fast.attachments]
    assert slow.calendar_parts == fast.calendar_parts


# --- helpers ---------------------------------------------------------------------


def test_split_addresses_forms() -> None:
    assert split_addresses('"Doe, Jane" <j@x.com>, k@y.com (Kay)') == (
        ("j@x.com", "Doe, Jane"),
        ("k@y.com", "Kay"),
    )
    assert split_addresses("Team: a@x.com, B <b@x.com>;, c@x.com") == (
        ("a@x.com", ""),
        ("b@x.com", "B"),
        ("c@x.com", ""),
    )
    assert split_addresses("a@x.com; b@x.com") == (("a@x.com", ""), ("b@x.com", ""))
    assert split_addresses("<@relay.example:j@x.com>") == (("j@x.com", ""),)
    assert split_addresses('"weird local"@x.com') == (('"weird local"@x.com', ""),)
    assert split_addresses("John Doe j@x.com") == (("John Doe j@x.com", ""),)
    assert split_addresses(", ,undisclosed-recipients:;") == ()


def test_decode_words() -> None:
    assert decode_words("=?utf-8?q?a_b?= =?utf-8?q?c?= d") == ("a bc d", None)
    assert decode_words("=?x-unknown?q?caf=C3=A9?=") == ("café", "utf-8")
    assert decode_words("=?utf-8?b?Y2Fm6Q?=") == ("café", "windows-1252")
    assert decode_words("no words") == ("no words", None)


def test_msg_ids_and_dates() -> None:
    assert msg_ids("<a@x> <b@y>\r\n <a@x>") == ("a@x", "b@y")
    assert msg_ids("a@x, b@y") == ("a@x", "b@y")
    assert msg_ids("<>") == ()
    assert parse_date("2025-02-03T10:00:00Z") == datetime(2025, 2, 3, 10, tzinfo=timezone.utc)
    assert parse_date("Mon, 3 Feb 2025 11:00:00 +0100") == datetime(
        2025, 2, 3, 10, tzinfo=timezone.utc
    )
    assert parse_date("soon") is None


def test_decode_bytes_repairs() -> None:
    assert decode_bytes("é".encode(), "iso-8859-1") == ("é", "utf-8")  # mislabelled UTF-8
    assert decode_bytes(b"\xe9", "iso-8859-1") == ("é", None)
    assert decode_bytes(b"\x80", "latin1") == ("\u20ac", None)  # Latin-1 labels read as 1252
    # UTF-8 cut short keeps its good characters rather than becoming mojibake.
    assert decode_bytes("€€".encode() + "€".encode()[:-1], "utf-8") == ("€€\ufffd", "utf-8")
    text, label = decode_bytes("Привет, как дела? Всё хорошо.".encode("koi8-r"), "bogus")
    assert label is not None  # guessed, never raises
    assert text


def test_html_to_text_and_snippet() -> None:
    assert html_to_text("<div>a<p>b</p>c</div>x<br><br>y") == "a\n\nb\n\nc\nx\n\ny"
    assert html_to_text("<p>&lt;tag&gt; &amp; &quot;q&quot;</p>") == '<tag> & "q"'
    assert html_to_text("") == ""
    assert html_to_text("<div>" * 5000 + "deep") == "deep"
    assert snippet("word " * 100) == ("word " * 40).strip()
    assert snippet("a\n\n\n  b") == "a b"


def test_hostile_shapes_keep_the_headers() -> None:
    head = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n"
    body = b"text"
    for i in range(2000):  # far past any parser's nesting limit
        body = (
            f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
            + body
            + f"\r\n--b{i}--\r\n".encode()
        )
    m = parse_message(head + body, provider_id="x")
    assert (m.message_id, m.subject) == ("deep@x", "deep")
    assert [a.key for a in m.addresses()] == ["a@x.example", "b@y.example"]
    # Not given to the fast parser at all (it can overflow its stack), and read
    # by the bounded reader, which stops descending.
    assert {"fallback-parser:deep-mime", "mime-too-deep"} <= set(m.warnings)


def test_huge_header_sections_are_read_without_the_fast_parser() -> None:
    names = b", ".join(
        b"=?utf-8?q?J=C3=B6rg_" + str(i).encode() + b"?= <j@x.example>" for i in range(4000)
    )
    data = (
        b"From: a@x.example\r\nTo: "
        + names
        + b"\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nQm9keSDDqQ==\r\n"
    )
    m = parse_message(data, provider_id="x")
    assert "fallback-parser:large-header" in m.warnings
    assert m.subject == "café"
    assert people(m, Role.TO) == [("j@x.example", "Jörg 0")]  # one address, first name kept
    assert m.body == "Body é"


def test_deeply_nested_html_is_still_read() -> None:
    html = "<div>" * 50_000 + "<script>hidden</script>hi &amp; bye<br>there"
    assert html_to_text(html) == "hi & bye\nthere"


def test_a_forged_sender_is_reported_from_the_servers_topmost_verdict() -> None:
    # Gmail's own Authentication-Results (with a quoted reason and nested
    # comments) says dmarc=fail; the sender's own "pass" below it is ignored
    message = parse("forged_sender.eml")
    assert message.warnings[0] == "sender-unverified:dmarc"
    assert message.sender_unverified
    assert message.sender is not None
    assert message.sender.key == "ceo@globex.example"
