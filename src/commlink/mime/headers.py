"""Header-level helpers for MIME parsing: header blocks, encoded words, address lists, ids, dates.

These work on raw header text and never raise. They back the fast parser
wherever its output cannot be trusted, and serve the fallback parser.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache

from ..addresses import parse_address, simple_address
from ..model import Address, Participant, Role
from .addrlist import split_address_list, split_addresses
from .storable import MAX_NAME_CHARS
from .text import collapse, decode_8bit
from .words import decode_words, lenient_b64decode

__all__ = [
    "MAX_ADDRESS_TEXT",
    "MAX_TOKENIZED_TEXT",
    "AddressBudget",
    "EPOCH",
    "LARGE_HEADER",
    "ROLE_HEADERS",
    "as_utc",
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
    "received_date",
    "split_address_list",
    "split_addresses",
    "synthetic_id",
    "token",
]

#: The date of a message that has none, from neither its headers nor its provider.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

SYNTHETIC_DOMAIN = "synthetic.commlink.invalid"


#: Header sections larger than this are read without the fast parser, which
#: slows down with the square of the encoded words it decodes.
LARGE_HEADER = 64 * 1024


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


# --- ids, tokens, dates ----------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)>")


def msg_ids(value: str) -> tuple[str, ...]:
    """Message ids in a Message-ID, In-Reply-To or References value, in order, deduped."""
    if not value:
        return ()
    if value[:1] == "<" and value[-1:] == ">" and value.count("<") == 1 and value.count(">") == 1:
        inner = value[1:-1]  # one id, the common case: no whitespace (isprintable) in it
        if inner.isprintable() and " " not in inner:
            return (inner,) if inner else ()
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
    value = value[:_MAX_DATE].strip()
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return as_utc(parsed)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (naive means UTC); ``None`` when it
    cannot be one (out of range once converted)."""
    if value is None:
        return None
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


# Longest date text read (a longer value is not a date, or has a long comment).
_MAX_DATE = 512
# Received headers looked at for a date, from the top.
_MAX_RECEIVED = 50


def received_date(values: Sequence[str]) -> datetime | None:
    """The date of the topmost Received header that has a readable one.

    Each hop adds its Received header at the top, so the first one is the
    newest: the receiving server's, written when the message arrived. Its
    date is the part after its last ``;``.
    """
    for value in values[:_MAX_RECEIVED]:
        _, sep, stamp = value[-_MAX_DATE:].rpartition(";")
        if sep:
            date = parse_date(stamp)
            if date is not None:
                return date
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


# Address text longer than this is never valid (RFC 5321: 254 octets).
_MAX_ADDRESS = 320
# Names up to this length are cached (split_address_list cuts them to
# storable.MAX_NAME_CHARS).
_CACHED_NAME = 256
#: Longest address-header value read, in characters; the rest is dropped with
#: the warning ``header-truncated:<header>`` (1 MiB is ~25,000 mailboxes).
MAX_ADDRESS_HEADER = 1 << 20
#: Address-header text read per message, every address header and every
#: occurrence together, in the order From, Sender, To, Cc, Bcc, Reply-To.
MAX_ADDRESS_TEXT = 1 << 20
#: Of that, text read by the full tokenizer (values in the common forms, and
#: values of at most 2 KiB, are not counted). It takes up to about 3 µs a
#: character, so this bounds a message's worst at under a second; past it a
#: value gives only the addresses a plain scan finds.
MAX_TOKENIZED_TEXT = 128 << 10


# Keyed by header name rather than Role: enum hashing runs Python code. Sized
# for a mailbox's regular correspondents: each entry is two objects that every
# full garbage collection walks.
@lru_cache(maxsize=2048)
def participant(address: str, name: str, header: str) -> Participant:
    """A participant for one mailbox of an address header (lower-cased name).

    Cached: the same people write again and again. Callers pass only
    short values (at most 320 characters of address text and 256 of name);
    ``participants`` handles long ones.
    """
    name = collapse(name)
    found = simple_address(address, name) or parse_address(address, name)
    return Participant(found, ROLE_HEADERS[header])


def _long_participant(address: str, name: str, header: str) -> Participant:
    text = address.strip()
    name = collapse(name)
    if len(text) > _MAX_ADDRESS:
        invalid = Address(key="", email="", name=name, valid=False, raw=text[:MAX_NAME_CHARS])
        return Participant(invalid, ROLE_HEADERS[header])
    return Participant(parse_address(text, name), ROLE_HEADERS[header])


class AddressBudget:
    """What one message's address headers may still take: ``text``
    characters read in all (``MAX_ADDRESS_TEXT``), of which ``tokenized``
    by the full tokenizer (``MAX_TOKENIZED_TEXT``), and ``mailboxes``
    addresses checked (the participants a message keeps: an international
    domain takes the check about 100 µs). Past them, distinct mailboxes are
    only counted, in ``unread``."""

    def __init__(self, mailboxes: int = 1 << 62) -> None:
        self.text = MAX_ADDRESS_TEXT
        self.tokenized = MAX_TOKENIZED_TEXT
        self.mailboxes = mailboxes
        self.unread = 0


def participants(
    header: str,
    values: Sequence[str],
    warnings: list[str] | None = None,
    budget: AddressBudget | None = None,
) -> list[Participant]:
    """Participants from raw values of an address header (every occurrence of it).

    Names and invalid address text are storable (see ``addrlist``).
    Recovered mistakes and repairs are reported in ``warnings``:
    ``missing-comma`` (two mailboxes with no comma between them, both kept),
    ``header-truncated:<header>`` (a value over ``MAX_ADDRESS_HEADER``, or
    over what ``budget``, shared by a message's address headers, has left),
    ``header-scanned:<header>`` (a value past the budget's tokenizer share,
    read for its addresses alone), and the codes of ``AddressList.repairs``.
    """
    found: list[Participant] = []
    notes = warnings if warnings is not None else []
    budget = budget if budget is not None else AddressBudget()
    seen: set[str] = set()
    unread: set[str] = set()
    for value in values:
        limit = min(MAX_ADDRESS_HEADER, budget.text)
        if len(value) > limit:
            cut = value.rfind(",", 0, limit)
            value = value[: cut if cut > 0 else limit]
            notes.append(f"header-truncated:{header}")
        budget.text -= len(value)
        entries, missing, repairs = split_address_list(value, tokenize=False)
        if "addresses-scanned" in repairs and len(value) <= budget.tokenized:
            budget.tokenized -= len(value)
            entries, missing, repairs = split_address_list(value)
        if missing:
            notes.append("missing-comma")
        if "addresses-scanned" in repairs:
            notes.append(f"header-scanned:{header}")
            repairs = tuple(r for r in repairs if r != "addresses-scanned")
        notes.extend(repairs)
        for addr, name in entries:
            key = addr.strip().lower()
            if key not in seen:
                seen.add(key)
                if budget.mailboxes <= 0:
                    unread.add(key)
                    budget.unread += 1
                    continue
                budget.mailboxes -= 1
            elif key in unread:
                continue
            found.append(
                participant(addr, name, header)
                if len(addr) <= _MAX_ADDRESS and len(name) <= _CACHED_NAME
                else _long_participant(addr, name, header)
            )
    return found
