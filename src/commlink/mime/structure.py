"""MIME structure guards: what the native parser may see, line ends, a bounded walker.

fast-mail-parser recurses natively into nested multiparts before it checks
its own limit (256 levels): at about 30,000 levels on an 8 MiB stack, 3,300
on 1 MiB and 340 on 128 KiB it overflows the stack and takes the process
down (SIGSEGV, namecheap/fast_mail_parser#21). ``native_safe`` decides what
it may be given, from the size of a message, its hyphens or its
``multipart`` declarations; it also keeps away messages with thousands of
encoded words, which it decodes in quadratic time. The standard library's parser recurses too (a
``RecursionError`` at a few hundred levels, after reading everything), so
``walk`` splits multiparts itself, without recursion, to a bounded depth and
part count, and hands the standard library single parts only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message as StdMessage
from email.parser import HeaderParser
from email.policy import compat32

__all__ = [
    "MAX_DEPTH",
    "MAX_NATIVE_ENCODED_WORDS",
    "MAX_NATIVE_MULTIPARTS",
    "MAX_PARTS",
    "NATIVE_SAFE_BYTES",
    "crlf_line_ends",
    "few_delimiters",
    "few_encoded_words",
    "multipart_count",
    "native_refusal",
    "native_safe",
    "sections",
    "walk",
]

#: Messages up to this size go to the native parser without a scan. A
#: nesting level takes at least 38 bytes ("Content-Type:multipart/;boundary=a"
#: and its delimiter lines), so they hold at most ~320 levels, which the native
#: parser survives on a 128 KiB thread stack (measured: 342) and refuses
#: itself past 256.
NATIVE_SAFE_BYTES = 12 * 1024
#: Larger messages go to the native parser only when they nest at most this
#: many multiparts by one of two upper bounds: fewer hyphen pairs than this
#: (each level the parser descends into starts after a delimiter line, ``--``
#: and the boundary), or at most this many ``multipart`` declarations.
MAX_NATIVE_MULTIPARTS = 100
#: Larger messages go to the native parser only with at most this many
#: encoded words (``=?``): it decodes those in a part's header in time that
#: grows with their square (40,000 in one file name: 7 s).
MAX_NATIVE_ENCODED_WORDS = 4_096
#: How deep ``walk`` descends into nested multiparts.
MAX_DEPTH = 32
#: How many single parts ``walk`` yields at most.
MAX_PARTS = 1000

_WORD = b"multipart"
_CHUNK = 1 << 20
_PROBE = 64 * 1024
_LONE_CR = re.compile(rb"\r(?!\n)")


def multipart_count(data: bytes, stop: int) -> int:
    """Occurrences of ``multipart`` in any letter case, counted up to just past ``stop``.

    Reads the data in 1 MiB slices, so it never holds a lower-cased copy of
    all of it.
    """
    found = 0
    overlap = len(_WORD) - 1
    for start in range(0, len(data), _CHUNK):
        found += data[start : start + _CHUNK + overlap].lower().count(_WORD)
        if found > stop:
            break
    return found


def _pairs(data: bytes, mark: bytes, pair: bytes, stop: int) -> int | None:
    """Occurrences of the two bytes ``pair`` in ``data``, without overlap,
    found by a ``find`` per ``mark`` (one of the two; ``memchr``), up to
    ``stop``; ``None`` past one look per 2 KiB (a pair is one look)."""
    offset = pair.index(mark)
    budget = len(data) >> 11
    found = 0
    find = data.find
    at = find(mark)
    while at >= 0:
        budget -= 1
        if budget < 0:
            return None
        start = at - offset
        if start >= 0 and data.startswith(pair, start):
            found += 1
            if found >= stop:
                return found
            at = start + 1
        at = find(mark, at + 1)
    return found


def few_delimiters(data: bytes, limit: int) -> bool:
    """Whether ``data`` surely holds fewer than ``limit`` hyphen pairs (``--``,
    counted without overlap), each the possible start of a delimiter line.

    A ``find`` per hyphen (``memchr``): base64, most of a large message, has
    none, so a file attachment is passed over at memory speed, where a count
    or a lower-cased copy takes ten times as long. Past one look per 2 KiB
    (a pair is one look) the answer is ``False``, so that text full of
    hyphens costs little more than the count it falls back to.
    """
    found = _pairs(data, b"-", b"--", limit)
    return found is not None and found < limit


def few_encoded_words(data: bytes, limit: int) -> bool:
    """Whether ``data`` holds at most ``limit`` encoded-word openings (``=?``).

    A ``find`` per question mark (``memchr``; base64 has none), counted
    outright past one look per 2 KiB. Data of at most ``8 * limit`` bytes
    passes unread: an encoded word takes 8 bytes at least (``=?a?q??=``).
    """
    if len(data) <= 8 * limit:
        return True
    found = _pairs(data, b"?", b"=?", limit + 1)
    return (data.count(b"=?") if found is None else found) <= limit


def native_refusal(data: bytes) -> str | None:
    """Why the native parser may not be given ``data``: ``"deep-mime"`` (see
    ``NATIVE_SAFE_BYTES`` and ``MAX_NATIVE_MULTIPARTS``), ``"many-encoded-words"``
    (``MAX_NATIVE_ENCODED_WORDS``), or ``None`` when it may."""
    if len(data) <= NATIVE_SAFE_BYTES:
        return None
    if not (
        few_delimiters(data, MAX_NATIVE_MULTIPARTS)
        or multipart_count(data, MAX_NATIVE_MULTIPARTS) <= MAX_NATIVE_MULTIPARTS
    ):
        return "deep-mime"
    if not few_encoded_words(data, MAX_NATIVE_ENCODED_WORDS):
        return "many-encoded-words"
    return None


def native_safe(data: bytes) -> bool:
    """Whether the native parser may be given ``data`` (``native_refusal``)."""
    return native_refusal(data) is None


def crlf_line_ends(raw: bytes) -> bytes:
    """``raw`` with CR-only line ends (classic Mac OS) made CRLF; other input as it is.

    A message counts as CR-only when its first 64 KiB hold a CR and no LF.
    Cheap for ordinary mail: one ``find`` that stops at the first line end.
    """
    if raw.find(b"\n", 0, _PROBE) >= 0 or raw.find(b"\r", 0, _PROBE) < 0:
        return raw
    return _LONE_CR.sub(b"\r\n", raw)


# --- a bounded multipart walker for the standard-library reader ------------------

# Header lines as the standard library's feed parser recognises them; the
# header section ends at an empty line or at the first line that is not one.
_HEADER_LINES = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_DELIMITER_TAIL = re.compile(rb"[ \t]*(?:\r\n|\r|\n|\Z)")


def walk(raw: bytes, warnings: list[str]) -> Iterator[StdMessage]:
    """The single parts of a message, in order, as standard-library messages.

    Multiparts are split here the way the standard library's feed parser
    splits them (delimiter lines, an outer boundary ending inner parts,
    preamble and epilogue dropped), without recursion: multiparts deeper
    than ``MAX_DEPTH`` are skipped (warning ``mime-too-deep``) and no more
    than ``MAX_PARTS`` parts are read (``mime-parts-truncated``). Each part
    is parsed by the standard library's ``compat32`` header parser with its
    body as a text payload; ``message/*`` parts are not descended into.
    """
    for _section, part in sections(raw, warnings):
        yield part


def sections(raw: bytes, warnings: list[str]) -> Iterator[tuple[str, StdMessage]]:
    """``walk``, each part with its IMAP section path (``"1"`` for a single-part message)."""
    parser = HeaderParser(policy=compat32)
    stack = [(0, len(raw), 0, "")]
    parts = 0
    while stack:
        start, end, depth, path = stack.pop()
        head_end, body_start = _head(raw, start, end)
        msg = parser.parsestr(raw[start:head_end].decode("ascii", "surrogateescape"))
        if msg.get_content_maintype() == "multipart":
            boundary = msg.get_boundary()
            if boundary:
                if depth >= MAX_DEPTH:
                    warnings.append("mime-too-deep")
                    continue
                children = _split(raw, body_start, end, boundary)
                if children is not None:
                    numbered = [
                        (s, e, depth + 1, f"{path}.{i}" if path else str(i))
                        for i, (s, e) in enumerate(children, 1)
                    ]
                    stack.extend(reversed(numbered))
                    continue
        if parts >= MAX_PARTS:
            warnings.append("mime-parts-truncated")
            return
        parts += 1
        msg.set_payload(raw[body_start:end].decode("ascii", "surrogateescape"))
        yield path or "1", msg


def _head(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """The end of the header section of ``raw[start:end]`` and where its body starts."""
    match = _HEADER_LINES.match(raw, start, end)
    head_end = match.end() if match is not None else start
    blank = _LINE_END.match(raw, head_end, end)
    return head_end, blank.end() if blank is not None else head_end


def _split(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]] | None:
    """The spans of the parts of a multipart body; ``None`` when no delimiter line is found."""
    sep = b"--" + boundary.encode("utf-8", "surrogateescape")
    spans: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        at = raw.find(sep, pos, end)
        if at < 0:
            break
        pos = at + len(sep)
        if at > start and raw[at - 1] not in b"\r\n":
            continue  # not at the start of a line
        close = raw.startswith(b"--", pos, end)
        tail = _DELIMITER_TAIL.match(raw, pos + 2 if close else pos, end)
        if tail is None and close:
            close = False
            tail = _DELIMITER_TAIL.match(raw, pos, end)
        if tail is None:
            continue  # a longer boundary that starts with this one
        if part_start >= 0:
            spans.append((part_start, _before_line_end(raw, part_start, at)))
        part_start = tail.end()
        pos = part_start
        if close:
            return spans
    if part_start < 0:
        return None
    spans.append((part_start, end))  # no close delimiter: the last part runs to the end
    return spans


def _before_line_end(raw: bytes, start: int, at: int) -> int:
    """``at`` less the line end before it (it belongs to the delimiter line)."""
    if at - 2 >= start and raw[at - 2 : at] == b"\r\n":
        return at - 2
    if at - 1 >= start and raw[at - 1] in b"\r\n":
        return at - 1
    return at
