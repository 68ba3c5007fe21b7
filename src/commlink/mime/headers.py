"""Header-level helpers for MIME parsing: header blocks, encoded words, address lists, ids, dates.

These work on raw header text and never raise. They back the fast parser
wherever its output cannot be trusted, and serve the fallback parser.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache

from ..addresses import parse_address
from ..model import Participant, Role
from .text import collapse, decode_8bit, decode_bytes

__all__ = [
    "EPOCH",
    "ROLE_HEADERS",
    "decode_words",
    "header_block",
    "lenient_b64decode",
    "mime_headers_only",
    "msg_ids",
    "participant",
    "participants",
    "parse_date",
    "raw_headers",
    "raw_values",
    "split_addresses",
    "synthetic_id",
    "token",
]

#: The date of a message that has none, from neither its headers nor its provider.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

SYNTHETIC_DOMAIN = "synthetic.commlink.invalid"


def header_block(raw: bytes) -> bytes:
    """The header section of a message: everything before the first empty line.

    Without an empty line the whole input is taken to be headers (a message
    fetched headers-only); input that starts with an empty line has none.
    """
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return b""
    end = _BLANK_LINE.search(raw)
    return raw if end is None else raw[: end.start() + 1]


_BLANK_LINE = re.compile(rb"\n\r?\n")
_NAME = re.compile(rb"[!-9;-~]+")


def raw_headers(block: bytes) -> tuple[dict[str, list[str]], bool]:
    """Parse a header block into lower-cased names and unfolded, decoded values.

    Values are decoded as UTF-8 (RFC 6532), else Windows-1252; the second
    item says whether any value needed that repair. Lines that are neither a
    header nor a continuation are skipped. Encoded words are left as they are.
    """
    headers: dict[str, list[str]] = {}
    repaired = False
    name = ""
    value: list[bytes] = []

    def flush() -> None:
        nonlocal repaired
        if not name:
            return
        data = b"".join(value)
        text, fixed = decode_8bit(data)
        repaired = repaired or fixed
        headers.setdefault(name, []).append(text.strip())

    for line in block.splitlines():
        if line[:1] in (b" ", b"\t"):
            if name:
                value.append(line)
            continue
        flush()
        field, sep, rest = line.partition(b":")
        field = field.rstrip(b" \t")
        if sep and _NAME.fullmatch(field):
            name = field.decode("ascii").lower()
            value = [rest]
        else:
            name = ""
            value = []
    flush()
    return headers, repaired


@lru_cache(maxsize=64)
def _field(name: str) -> re.Pattern[bytes]:
    return re.compile(
        rb"^" + re.escape(name.encode("ascii")) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
        re.IGNORECASE | re.MULTILINE,
    )


_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def raw_values(block: bytes, name: str) -> list[str]:
    """Every value of one header in a header block, unfolded and decoded like ``raw_headers``."""
    values = []
    for match in _field(name).finditer(block):
        data = _FOLD.sub(b"", match.group(1)).rstrip(b"\r")
        values.append(decode_8bit(data)[0].strip())
    return values


_MIME_FIELD = re.compile(rb"(?:content-|mime-version)", re.IGNORECASE)


def mime_headers_only(block: bytes) -> bytes:
    """The MIME-Version and Content-* fields of a header block (with folded lines)."""
    kept: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        keep = _MIME_FIELD.match(line) is not None
        if keep:
            kept.append(line)
    return b"".join(kept)


# RFC 2047 encoded word; the text may not contain "?" or whitespace.
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_GAP = re.compile(r"\s*")


def decode_words(text: str) -> tuple[str, str | None]:
    """Decode RFC 2047 encoded words in ``text``.

    Whitespace between adjacent encoded words is dropped, and adjacent words
    in one charset are decoded together (mailers split multi-byte characters
    across words). Returns the text and the label of a repair charset if one
    was needed. Never raises.
    """
    if "=?" not in text:
        return text, None
    return _decode_words(text)


@lru_cache(maxsize=8192)
def _decode_words(text: str) -> tuple[str, str | None]:
    out: list[str] = []
    repair: str | None = None
    pending: list[bytes] = []
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal repair, pending_charset
        if pending:
            decoded, used = decode_bytes(b"".join(pending), pending_charset)
            out.append(decoded)
            repair = repair or used
            pending.clear()
        pending_charset = ""

    for match in _WORD.finditer(text):
        gap = text[pos : match.start()]
        if gap and not (pending and _GAP.fullmatch(gap)):
            flush()
            out.append(gap)
        charset = match.group(1).lower()
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(_word_bytes(match.group(2), match.group(3)))
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out), repair


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    return lenient_b64decode(data)


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def lenient_b64decode(data: bytes) -> bytes:
    """Base64 decoding that skips invalid characters and repairs padding."""
    data = _B64_JUNK.sub(b"", data)
    if len(data) % 4 == 1:  # a lone trailing character carries no whole byte
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # pragma: no cover - the input is sanitised above
        return b""


# --- address lists ---------------------------------------------------------

_SPECIALS = frozenset('"(<,;:')


@lru_cache(maxsize=4096)
def split_addresses(value: str) -> tuple[tuple[str, str], ...]:
    """Split an address-list header value into ``(address, display name)`` pairs.

    Follows RFC 5322 loosely: quoted strings, comments, angle addresses,
    source routes and groups (``Team: a@x, b@y;``, whose name is dropped).
    Semicolons outside a group separate like commas. Encoded words in names
    are decoded. An entry without a recognisable address comes back with its
    text as the address, so that validation marks it invalid rather than
    losing it; empty entries are skipped. Never raises.
    """
    entries: list[tuple[str, str]] = []
    phrase: list[str] = []  # display-name words, or the bare address pieces
    spaced: list[bool] = []  # whether whitespace preceded each piece
    comments: list[str] = []
    angle: str | None = None
    raw_start = 0
    in_group = False
    i, n = 0, len(value)
    space = False

    def finish(end: int) -> None:
        nonlocal angle, raw_start
        raw = value[raw_start:end].strip()
        if angle is not None:
            name = _phrase_text(phrase) or _phrase_text(comments)
            entries.append((_strip_route(angle) or raw, name))
        elif phrase:
            if not any(spaced[1:]):
                entries.append(("".join(phrase), _phrase_text(comments)))
            else:
                entries.append((raw, ""))
        elif comments:
            entries.append((raw, ""))
        phrase.clear()
        spaced.clear()
        comments.clear()
        angle = None
        raw_start = end + 1

    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            space = True
            i += 1
            continue
        if ch == '"':
            j, text = _quoted(value, i)
            phrase.append(text if angle is not None or _looks_name(value, j) else f'"{text}"')
            spaced.append(space)
            i = j
        elif ch == "(":
            j, text = _comment(value, i)
            comments.append(text)
            i = j
            space = True
            continue
        elif ch == "<":
            end = value.find(">", i + 1)
            j = n if end < 0 else end + 1
            angle = value[i + 1 : j - 1 if end >= 0 else n].strip()
            i = j
        elif ch == ",":
            finish(i)
            i += 1
        elif ch == ";":
            finish(i)
            in_group = False
            i += 1
        elif ch == ":" and angle is None and not in_group and phrase:
            # A group: the phrase so far was its name.
            phrase.clear()
            spaced.clear()
            comments.clear()
            raw_start = i + 1
            in_group = True
            i += 1
        else:
            j = i
            while j < n and value[j] not in _SPECIALS and value[j] not in " \t\r\n":
                j += 1
            if j == i:  # a stray ":" or ">"
                j += 1
            phrase.append(value[i:j])
            spaced.append(space)
            i = j
        space = False
    finish(n)
    return tuple(entries)


def _quoted(value: str, start: int) -> tuple[int, str]:
    """The unescaped text of the quoted string at ``start`` and the index after it."""
    out: list[str] = []
    i = start + 1
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return i + 1, "".join(out)
        out.append(ch)
        i += 1
    return n, "".join(out)


def _comment(value: str, start: int) -> tuple[int, str]:
    """The text of the (possibly nested) comment at ``start`` and the index after it."""
    depth = 0
    out: list[str] = []
    i = start
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
            if depth > 1:
                out.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1, "".join(out)
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return n, "".join(out)


def _looks_name(value: str, after: int) -> bool:
    """Whether a quoted string is a display name rather than a quoted local part."""
    return value[after : after + 1] != "@"


def _phrase_text(words: Sequence[str]) -> str:
    text = " ".join(w.strip() for w in words if w.strip())
    return collapse(decode_words(text)[0]) if text else ""


def _strip_route(addr: str) -> str:
    """Drop an obsolete source route: ``@a,@b:user@host`` -> ``user@host``."""
    if addr.startswith("@") and ":" in addr:
        return addr.rpartition(":")[2].strip()
    return addr


# --- ids, tokens, dates ----------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)>")


def msg_ids(value: str) -> tuple[str, ...]:
    """Message ids in a Message-ID, In-Reply-To or References value, in order, deduped."""
    if not value:
        return ()
    found = _ANGLE_ID.findall(value)
    if not found:
        found = value.replace(",", " ").split()
    seen: dict[str, None] = {}
    for item in found:
        item = "".join(item.split())
        if item and item not in seen:
            seen[item] = None
    return tuple(seen)


def token(value: str) -> str:
    """The first token of a structured value, lower-cased: ``Bulk; x`` -> ``bulk``."""
    return value.partition(";")[0].strip().lower()


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 (or ISO 8601) date as an aware UTC datetime; naive means UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    try:
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


_ID_HEADERS = ("date", "from", "to", "cc", "subject")


def synthetic_id(raw: bytes, headers: Mapping[str, Sequence[str]] | None = None) -> str:
    """A stable id for a message without a Message-ID.

    Derived from the header section only (Date, From, To, Cc and Subject,
    else the whole header section), so a headers-only fetch and a full fetch
    of one message agree.
    """
    block = header_block(raw)
    if headers is None:
        headers = raw_headers(block)[0]
    parts = [collapse(headers[name][0]) if headers.get(name) else "" for name in _ID_HEADERS]
    if any(parts):
        material = "\x00".join(parts).encode("utf-8", "surrogatepass")
    else:
        lines = [line.rstrip() for line in block.splitlines()]
        material = b"\n".join(line for line in lines if line) if block else raw
    digest = hashlib.sha256(material).hexdigest()[:32]
    return f"{digest}@{SYNTHETIC_DOMAIN}"


# --- participants ------------------------------------------------------------


#: Address headers, lower-cased, and the role of their mailboxes.
ROLE_HEADERS: dict[str, Role] = {
    "from": Role.FROM,
    "sender": Role.SENDER,
    "to": Role.TO,
    "cc": Role.CC,
    "bcc": Role.BCC,
    "reply-to": Role.REPLY_TO,
}


# Keyed by header name rather than Role: enum hashing runs Python code.
@lru_cache(maxsize=8192)
def participant(address: str, name: str, header: str) -> Participant:
    """A participant for one mailbox of an address header (lower-cased name).

    Cached: the same people write again and again.
    """
    return Participant(parse_address(address, collapse(name)), ROLE_HEADERS[header])


def participants(header: str, values: Sequence[str]) -> list[Participant]:
    """Participants from raw values of an address header (every occurrence of it)."""
    return [
        participant(addr, name, header) for value in values for addr, name in split_addresses(value)
    ]
