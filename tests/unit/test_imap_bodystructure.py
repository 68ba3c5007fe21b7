"""Fetching IMAP messages without their file attachments: reading a
``BODYSTRUCTURE``, planning the sections, and putting the message back
together so that the MIME parser reads it as it reads the whole message."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Iterator

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.mime.parse import parse_message
from commlink.mime.part_kinds import estimate_size
from commlink.mime.parts import fill_left_out
from commlink.model import Message
from commlink.providers.imap import bodystructure
from commlink.providers.imap.bodystructure import (
    LEAN_MIN_BYTES,
    Part,
    assemble,
    plan,
    read_structure,
)
from commlink.providers.imap.fetch_stream import (
    Fetch,
    ResponseReader,
    String,
    Value,
    command_responses,
)

#: What Dovecot 2.3 sends for ``attachment_samples.rich_message()``.
RICH = b" ".join(
    [
        b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 16 1 NIL NIL NIL NIL)',
        b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 46 1 NIL NIL NIL NIL)',
        b'"alternative" ("boundary" "===============0715381793340675607==") NIL NIL NIL)',
        b'("image" "png" NIL "<logo@x>" NIL "base64" 4118 NIL',
        b'("inline" ("filename" "logo.png")) NIL NIL)',
        b'("application" "pdf" NIL NIL NIL "base64" 273698 NIL',
        b'("attachment" ("filename" "report.pdf")) NIL NIL)',
        b'("text" "csv" ("charset" "us-ascii") NIL NIL "quoted-printable" 5325 68 NIL',
        b'("attachment" ("filename" "data.csv")) NIL NIL)',
        b'("message" "rfc822" NIL NIL NIL "8bit" 165',
        b'(NIL "Earlier note" ((NIL NIL "ann" "client.example"))',
        b'((NIL NIL "ann" "client.example")) ((NIL NIL "ann" "client.example"))',
        b"NIL NIL NIL NIL NIL)",
        b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 19 1 NIL NIL NIL NIL) 7 NIL',
        b'("attachment" NIL) NIL NIL)',
        b'("application" "octet-stream" NIL NIL NIL "base64" 14016 NIL',
        b'("attachment" ("filename*" "utf-8\'\'r%C3%A9sum%C3%A9.bin")) NIL NIL)',
        b'"mixed" ("boundary" "===============0750743095812521928==") NIL NIL NIL)',
    ]
)


def structure(text: bytes) -> Value:
    """The BODYSTRUCTURE value as the response reader parses it."""
    data = b"* 1 FETCH (UID 7 BODYSTRUCTURE " + text + b")\r\nt1 OK done\r\n"
    reader = ResponseReader(io.BufferedReader(io.BytesIO(data)), max_literal=1 << 20)
    (found,) = list(command_responses(reader, b"t1"))
    assert isinstance(found, Fetch)
    return found.items["BODYSTRUCTURE"]


def test_a_rich_message_is_fetched_without_its_files() -> None:
    root = read_structure(structure(RICH))
    assert root is not None
    lean = plan(root, 299_049)
    assert lean is not None
    # every part's MIME header; the content of the text parts, the CSV and
    # the forwarded message; none of the picture, the PDF or the binary file
    assert lean.sections == (
        "HEADER",
        "1.MIME",
        "1.1.MIME",
        "1.1",
        "1.2.MIME",
        "1.2",
        "2.MIME",
        "3.MIME",
        "4.MIME",
        "4",
        "5.MIME",
        "5",
        "6.MIME",
    )
    assert lean.left_out == (
        ("2", estimate_size(4118)),
        ("3", estimate_size(273_698)),
        ("6", estimate_size(14_016)),
    )
    assert lean.size == 299_049
    assert lean.fetch_bytes == 299_049 - 4118 - 273_698 - 14_016


def test_small_files_are_not_worth_the_sections() -> None:
    small = RICH.replace(b"273698", b"2736")
    root = read_structure(structure(small))
    assert root is not None
    assert plan(root, 30_000) is None


def _single(kind: bytes, subtype: bytes, rest: bytes = b"NIL") -> bytes:
    return b'("%s" "%s" NIL NIL NIL "base64" 200000 NIL %s NIL NIL)' % (kind, subtype, rest)


def test_a_message_that_is_one_file_is_its_header() -> None:
    root = read_structure(structure(_single(b"application", b"pdf")))
    assert root is not None
    lean = plan(root, 200_300)
    assert lean is not None
    assert lean.sections == ("HEADER",)
    assert lean.left_out == (("1", estimate_size(200_000)),)
    header = b"From: a@b.example\r\nContent-Type: application/pdf\r\n\r\n"
    assert assemble(lean, {"HEADER": header}) == header


@pytest.mark.parametrize(
    "part",
    [
        _single(b"text", b"plain"),
        _single(b"application", b"ics"),
        _single(b"text", b"calendar"),
        _single(b"application", b"octet-stream", b'("attachment" ("filename" "Invite.ICS"))'),
        _single(b"image", b"png", b'("inline" ("filename*" "utf-8\'\'x.ics"))'),
        _single(
            b"application", b"octet-stream", b'("attachment" ("filename*" "utf-8\'\'x%2EICS"))'
        ),
        _single(
            b"application", b"octet-stream", b'("attachment" ("filename" "=?utf-8?q?x=2Eics?="))'
        ),
        _single(
            b"application", b"octet-stream", b'("attachment" ("filename" "=?utf-8?b?eC5pY3M=?="))'
        ),
        b'("message" "rfc822" NIL NIL NIL "8bit" 200000 NIL NIL NIL 7)',
        b'("multipart-ish" "x" NIL NIL NIL "base64" 200000)',
    ],
)
def test_what_may_hold_text_or_an_invitation_is_fetched(part: bytes) -> None:
    root = read_structure(structure(part))
    assert root is not None
    assert plan(root, 200_300) is None


@pytest.mark.parametrize(
    "text",
    [
        b"NIL",
        b"()",
        b'"text"',
        b'("text" "plain")',
        b'("text" "plain" NIL NIL NIL "7bit" many)',
        b'(("text" "plain" NIL NIL NIL "7bit" 1) "mixed")',  # no boundary
        b'(("text" "plain" NIL NIL NIL "7bit" 1) "mixed" ("boundary" ""))',
        b'(("text" "plain" NIL NIL NIL "7bit" 1) "mixed" ("boundary" {3}\r\na\r\n))',
        b'(("text" "plain" NIL NIL NIL "7bit" 1) "mixed" ("boundary" "' + b"b" * 71 + b'"))',
        b'(("text" "plain" NIL NIL NIL "7bit" 1))',  # no subtype
        b'(("text" "plain" NIL NIL NIL "7bit" 1) "mixed" ("boundary"))',
    ],
)
def test_unreadable_descriptions_mean_the_whole_message(text: bytes) -> None:
    assert read_structure(structure(text)) is None


def _nested(depth: int) -> bytes:
    text = _single(b"application", b"pdf")
    for n in range(depth):
        text = b'(%s "mixed" ("boundary" "b%d"))' % (text, n)
    return text


def test_depth_and_width_are_bounded() -> None:
    assert read_structure(structure(_nested(bodystructure.LEAN_MAX_DEPTH))) is not None
    assert read_structure(structure(_nested(bodystructure.LEAN_MAX_DEPTH + 1))) is None
    many = _single(b"application", b"pdf") * bodystructure.LEAN_MAX_PARTS
    assert read_structure(structure(b'(%s "mixed" ("boundary" "b"))' % many)) is not None
    more = many + _single(b"image", b"png")
    assert read_structure(structure(b'(%s "mixed" ("boundary" "b"))' % more)) is None


# -- a message built here, its sections cut as a server cuts them ------------------------


@attrs.frozen
class Built:
    """A generated message: its bytes, its structure and the server's sections."""

    raw: bytes
    root: Part
    pieces: dict[str, bytes]


_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=300)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    """A part: ``("multipart", subtype, children)`` or ``(kind, payload)``."""
    if depth < 3 and draw(st.booleans()):
        subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
        children = draw(st.lists(trees(depth + 1), min_size=1, max_size=4))
        return ("multipart", (subtype, children))
    kind = draw(st.sampled_from(["plain", "html", "pdf", "png", "ics", "csv", "forward"]))
    if kind in ("pdf", "png"):
        size = draw(st.sampled_from([0, 10, 3_000, 70_000]))
        return (kind, (size, draw(st.integers(0, 2**32))))
    return (kind, draw(_TEXT))


def _leaf(kind: str, payload: object, n: int) -> tuple[bytes, bytes, bool, bytes]:
    """Header, content, whether it is a file, transfer encoding."""
    if kind in ("pdf", "png"):
        size, seed = payload  # type: ignore[misc]
        data = base64.encodebytes(random.Random(seed).randbytes(size)).replace(b"\n", b"\r\n")
        ctype = b"application/pdf" if kind == "pdf" else b"image/png"
        header = (
            b"Content-Type: " + ctype + b"\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="f%d.%s"\r\n\r\n' % (n, kind.encode())
        )
        return header, data, True, b"base64"
    text = str(payload).replace("\n", "\r\n").encode()
    if kind == "forward":
        inner = b"From: x@y.example\r\nSubject: inner %d\r\n\r\n" % n + text
        return b"Content-Type: message/rfc822\r\n\r\n", inner, False, b"8bit"
    ctype = {
        "plain": b"text/plain",
        "html": b"text/html",
        "ics": b"text/calendar",
        "csv": b"text/csv",
    }[kind]
    disposition = b'Content-Disposition: attachment; filename="d.csv"\r\n' if kind == "csv" else b""
    header = b"Content-Type: " + ctype + b'; charset="utf-8"\r\n' + disposition
    header += b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    return header, text, False, b"8bit"


def build(tree: tuple[str, object]) -> Built:
    pieces: dict[str, bytes] = {}
    counter = iter(range(10_000))

    def part(node: tuple[str, object], path: str) -> tuple[bytes, bytes, Part]:
        """Header and body of a node, and its structure."""
        kind, payload = node
        n = next(counter)
        if kind == "multipart":
            subtype, children = payload  # type: ignore[misc]
            boundary = b"bnd-%d-x" % n
            header = b'Content-Type: multipart/%s; boundary="%s"\r\n\r\n' % (
                subtype.encode(),
                boundary,
            )
            body: list[bytes] = []
            parts = []
            for i, child in enumerate(children, 1):
                child_path = f"{path}.{i}" if path else str(i)
                child_header, child_body, child_part = part(child, child_path)
                pieces[f"{child_path}.MIME"] = child_header
                if not child_part.multipart:
                    pieces[child_path] = child_body
                body += [b"--" + boundary + b"\r\n", child_header, child_body, b"\r\n"]
                parts.append(child_part)
            body.append(b"--" + boundary + b"--\r\n")
            return header, b"".join(body), Part(path, tuple(parts), boundary=boundary)
        header, content, file, encoding = _leaf(kind, payload, n)
        return header, content, Part(path or "1", size=len(content), encoding=encoding, file=file)

    top_header, body, root = part(tree, "")
    header = (
        b"From: Ann <ann@client.example>\r\nTo: owner@home.example\r\nSubject: Files\r\n"
        b"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n"
        + top_header
    )
    pieces["HEADER"] = header
    return Built(header + body, root, pieces)


def parsed(raw: bytes) -> Message:
    return parse_message(raw, provider_id="m")


def without_sizes(message: Message) -> Message:
    return attrs.evolve(
        message, size=0, attachments=tuple(attrs.evolve(a, size=0) for a in message.attachments)
    )


@given(trees())
@settings(max_examples=300, deadline=None)
def test_the_assembled_message_reads_as_the_whole_one(tree: tuple[str, object]) -> None:
    built = build(tree)
    lean = plan(built.root, len(built.raw))
    whole = parsed(built.raw)
    if lean is None:
        assert sum(leaf.size for leaf in _files(built.root)) < LEAN_MIN_BYTES
        return
    assert set(lean.sections) <= set(built.pieces)
    raw = assemble(lean, {s: built.pieces[s] for s in lean.sections})
    if raw is None:  # a text happened to hold a delimiter: fetched whole instead
        assert any(b"--bnd-" in content for content in built.pieces.values())
        return
    assert len(raw) < len(built.raw)
    found = fill_left_out(parsed(raw), lean.left_out, lean.size)
    assert without_sizes(found) == without_sizes(whole)
    assert found.size == len(built.raw)
    for mine, theirs in zip(found.attachments, whole.attachments, strict=True):
        assert abs(mine.size - theirs.size) <= 2, (mine, theirs)


def _files(root: Part) -> Iterator[Part]:
    stack = [root]
    while stack:
        part = stack.pop()
        stack.extend(part.children)
        if part.file:
            yield part


def test_a_text_holding_a_delimiter_is_not_assembled() -> None:
    tree = (
        "multipart",
        ("mixed", [("plain", "see --bnd-0-x here"), ("pdf", (70_000, 1))]),
    )
    built = build(tree)
    lean = plan(built.root, len(built.raw))
    assert lean is not None
    assert assemble(lean, built.pieces) is None


def test_a_missing_section_or_a_foreign_boundary_is_not_assembled() -> None:
    built = build(("multipart", ("mixed", [("plain", "hello"), ("pdf", (70_000, 1))])))
    lean = plan(built.root, len(built.raw))
    assert lean is not None
    assert assemble(lean, built.pieces) is not None
    for section in lean.sections:
        assert assemble(lean, {s: p for s, p in built.pieces.items() if s != section}) is None
    other = dict(built.pieces, HEADER=built.pieces["HEADER"].replace(b"bnd-0-x", b"other"))
    assert assemble(lean, other) is None


_ATOMS = st.one_of(
    st.none(),
    st.sampled_from([b"text", b"plain", b"application", b"pdf", b"base64", b"mixed", b"99999"]),
    st.binary(max_size=12),
    st.builds(String, st.binary(max_size=12)),
    st.builds(String, st.sampled_from([b"boundary", b"b1", b"x.ics", b"=?utf-8?q?a?=", b"%2e"])),
)
_VALUES = st.recursive(_ATOMS, lambda inner: st.lists(inner, max_size=12), max_leaves=120)


@given(_VALUES, st.integers(0, 10**9))
@settings(max_examples=300, deadline=None)
def test_any_description_is_read_or_refused(value: Value, size: int) -> None:
    root = read_structure(value)
    if root is None:
        return
    lean = plan(root, size)
    if lean is not None:
        assert lean.sections[0] == "HEADER"
        assert sum(s for _, s in lean.left_out) >= 0
        assert assemble(lean, {}) is None
