"""Pure helpers of the IMAP provider: cursors, ids, UID sets, folder roles,
FETCH items. No network here, so all of it is unit-testable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ...errors import CursorExpired, InvalidInput
from ...model import Detail, Folder, FolderKind
from ...ports import FetchedMessage
from ..folder_names import decode_modified_utf7, kind_from_name
from .bodystructure import LeanPlan, assemble
from .fetch_stream import Discarded, String, Value

__all__ = [
    "ImapCursor",
    "compress_uids",
    "fetched_message",
    "folder_from_list",
    "from_sections",
    "from_stream",
    "make_id",
    "parse_id",
    "parse_uid_set",
    "parse_vanished",
]

#: RFC 6154 SPECIAL-USE attributes (and Gmail's \Important), lower-cased.
SPECIAL_USE: Mapping[str, FolderKind] = {
    "\\sent": FolderKind.SENT,
    "\\archive": FolderKind.ARCHIVE,
    "\\drafts": FolderKind.DRAFTS,
    "\\junk": FolderKind.SPAM,
    "\\trash": FolderKind.TRASH,
    "\\all": FolderKind.ALL,
    "\\flagged": FolderKind.STARRED,
    "\\important": FolderKind.IMPORTANT,
}

_NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})
#: More UIDs than this in one VANISHED set means something is off: resync instead.
MAX_SET_SIZE = 5_000_000


@attrs.frozen(slots=True)
class ImapCursor:
    """Where a folder stood: the values STATUS/SELECT report (RFC 3501, 7162).

    ``highestmodseq`` is 0 on servers without CONDSTORE.
    """

    uidvalidity: int
    uidnext: int
    highestmodseq: int = 0
    messages: int = 0

    def encode(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> ImapCursor:
        """Parse a cursor; an unreadable one is expired (a full pass follows)."""
        try:
            raw = json.loads(text)
            return cls(
                uidvalidity=int(raw["uidvalidity"]),
                uidnext=int(raw["uidnext"]),
                highestmodseq=int(raw.get("highestmodseq") or 0),
                messages=int(raw.get("messages") or 0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CursorExpired(f"unreadable IMAP cursor: {text[:80]!r}") from exc


def make_id(uidvalidity: int, uid: int) -> str:
    """A provider id that a UIDVALIDITY change can never alias."""
    return f"{uidvalidity}:{uid}"


def parse_id(provider_id: str) -> tuple[int, int] | None:
    """``(uidvalidity, uid)`` of a provider id, or ``None`` when it is not one."""
    left, sep, right = provider_id.partition(":")
    if not sep or not left.isdigit() or not right.isdigit():
        return None
    return int(left), int(right)


def compress_uids(uids: Iterable[int]) -> str:
    """An IMAP sequence set for UIDs: ``[1, 2, 3, 7]`` -> ``"1:3,7"``."""
    ordered = sorted(set(uids))
    if not ordered:
        raise InvalidInput("an empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def parse_uid_set(text: str, *, below: int | None = None) -> list[int]:
    """Expand an IMAP UID set (``"41,43:116"``); ``below`` drops UIDs >= it.

    Raises ``ValueError`` for a malformed set or one of more than
    ``MAX_SET_SIZE`` UIDs; ``*`` is not meaningful in a server's response
    and is refused.
    """
    uids: list[int] = []
    text = text.strip()
    if not text:
        return uids
    for part in text.split(","):
        low, sep, high = part.partition(":")
        first = int(low)
        last = int(high) if sep else first
        if first > last:
            first, last = last, first
        if below is not None:
            last = min(last, below - 1)
        if last - first + len(uids) > MAX_SET_SIZE:
            raise ValueError(f"UID set too large: {text[:80]}")
        uids.extend(range(first, last + 1))
    return uids


_VANISHED = re.compile(rb"^\s*(\(EARLIER\)\s*)?([0-9:,]+)\s*$", re.IGNORECASE)


def parse_vanished(lines: Sequence[bytes | str], *, below: int | None = None) -> list[int]:
    """UIDs from the data of ``* VANISHED [(EARLIER)] <set>`` responses (RFC 7162).

    A response that cannot be read raises ``CursorExpired``: the expunges it
    reported are unknown, so the folder is reconciled by a full listing.
    """
    uids: list[int] = []
    for line in lines:
        raw = line.encode("ascii", "replace") if isinstance(line, str) else line
        match = _VANISHED.match(raw)
        if match is None:
            raise CursorExpired(f"unreadable VANISHED response: {raw[:80]!r}")
        try:
            uids.extend(parse_uid_set(match.group(2).decode("ascii"), below=below))
        except ValueError as exc:
            raise CursorExpired(f"unreadable VANISHED response: {exc}") from exc
    return uids


def folder_from_list(
    flags: Sequence[bytes | str], delimiter: bytes | str | None, name: str
) -> Folder | None:
    """A ``Folder`` from one LIST response, or ``None`` for a \\Noselect entry."""
    attrs_ = {(f.decode() if isinstance(f, bytes) else f).lower() for f in flags}
    if attrs_ & _NOT_SELECTABLE:
        return None
    sep = delimiter.decode() if isinstance(delimiter, bytes) else (delimiter or "")
    kind = next((SPECIAL_USE[a] for a in sorted(attrs_) if a in SPECIAL_USE), None)
    if name.upper() == "INBOX":
        kind = FolderKind.INBOX
    elif kind is None:
        kind = kind_from_name(name, sep)
    parent, _, leaf = name.rpartition(sep) if sep and sep in name else ("", "", name)
    return Folder(id=name, name=leaf, kind=kind, parent=parent or None)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def gmail_labels(value: Any) -> tuple[str, ...]:
    """Gmail's X-GM-LABELS as text: modified UTF-7 decoded, system labels as sent
    (``\\Inbox``, ``\\Sent``, ``\\Important``)."""
    if value is None:
        return ()
    items = value if isinstance(value, (tuple, list)) else (value,)
    labels = []
    for item in items:
        text = _as_text(item)
        labels.append(text if text.startswith("\\") else decode_modified_utf7(text))
    return tuple(labels)


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def fetched_message(
    uidvalidity: int, uid: int, item: Mapping[bytes, Any], detail: Detail, *, gmail: bool = False
) -> FetchedMessage | None:
    """A ``FetchedMessage`` from one parsed FETCH response, or ``None`` when the
    response lacks the requested body (an unsolicited FETCH of flags)."""
    key = b"BODY[]" if detail is Detail.FULL else b"BODY[HEADER]"
    raw = item.get(key)
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    thread_hint = None
    folders: tuple[str, ...] = ()
    if gmail:
        thrid = item.get(b"X-GM-THRID")
        thread_hint = _as_text(thrid) if thrid is not None else None
        folders = gmail_labels(item.get(b"X-GM-LABELS"))
    return FetchedMessage(
        provider_id=make_id(uidvalidity, uid),
        raw=bytes(raw),
        folders=folders,
        thread_hint=thread_hint,
        date=_as_datetime(item.get(b"INTERNALDATE")),
    )


_MONTHS = {
    month: n
    for n, month in enumerate(
        b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(b" "), start=1
    )
}
_DATE_TIME = re.compile(
    rb" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb" ([+-])([0-9]{2})([0-9]{2})\Z"
)


def parse_internaldate(raw: bytes) -> datetime | None:
    """An INTERNALDATE (``"17-Jul-1996 02:44:25 -0700"``), ``None`` when unreadable."""
    found = _DATE_TIME.match(raw)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = found.groups()
    number = _MONTHS.get(month.upper())
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    if number is None or offset >= timedelta(days=1):
        return None
    try:
        zone = timezone(-offset if sign == b"-" else offset)
        return datetime(
            int(year), number, int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:
        return None


def _string(value: Value) -> bytes | None:
    """The bytes of an atom, quoted string or literal."""
    if isinstance(value, String):
        return value.data
    return value if isinstance(value, bytes) else None


def from_sections(
    uidvalidity: int, uid: int, items: Mapping[str, Value], lean: LeanPlan, *, gmail: bool = False
) -> FetchedMessage | None:
    """A ``FetchedMessage`` from one streamed FETCH response of a message's
    sections (``bodystructure``), ``None`` while a section is still to come.
    A section too large to keep is an error; sections that do not assemble
    give a ``FetchedMessage`` with neither content nor error (fetch it whole)."""
    keys = [f"BODY[{section}]" for section in lean.sections]
    if any(key not in items for key in keys):
        return None
    provider_id = make_id(uidvalidity, uid)
    pieces: dict[str, bytes] = {}
    for section, key in zip(lean.sections, keys, strict=True):
        value = items[key]
        if isinstance(value, Discarded):
            return FetchedMessage(
                provider_id, error=f"the server sent {value.size} bytes of it, over the limit"
            )
        if isinstance(value, String):
            pieces[section] = value.data
    raw = assemble(lean, pieces)
    if raw is None:
        return FetchedMessage(provider_id)
    whole = from_stream(
        uidvalidity, uid, {**items, "BODY[]": String(raw)}, Detail.FULL, gmail=gmail
    )
    if whole is None:  # pragma: no cover - the body was just given
        return None
    return attrs.evolve(whole, left_out=lean.left_out, size=lean.size)


def from_stream(
    uidvalidity: int, uid: int, items: Mapping[str, Value], detail: Detail, *, gmail: bool = False
) -> FetchedMessage | None:
    """A ``FetchedMessage`` from one streamed FETCH response (``fetch_stream``),
    ``None`` when it lacks the requested body (an unsolicited FETCH of flags).
    A body the server sent as NIL, or one too large to keep, is an error."""
    key = "BODY[]" if detail is Detail.FULL else "BODY[HEADER]"
    if key not in items:
        return None
    provider_id = make_id(uidvalidity, uid)
    body = items[key]
    if isinstance(body, Discarded):
        return FetchedMessage(
            provider_id, error=f"the server sent {body.size} bytes for it, over the limit"
        )
    raw = body.data if isinstance(body, String) else None
    if raw is None:
        return FetchedMessage(provider_id, error="the server returned no content for it (NIL)")
    date_raw = _string(items.get("INTERNALDATE"))
    thread_hint = None
    folders: tuple[str, ...] = ()
    if gmail:
        thrid = _string(items.get("X-GM-THRID"))
        thread_hint = thrid.decode("ascii", "replace") if thrid is not None else None
        labels = items.get("X-GM-LABELS")
        if isinstance(labels, list):
            folders = gmail_labels(tuple(b for b in map(_string, labels) if b is not None))
    return FetchedMessage(
        provider_id=provider_id,
        raw=raw,
        folders=folders,
        thread_hint=thread_hint,
        date=parse_internaldate(date_raw) if date_raw is not None else None,
    )
