"""Pure helpers of the IMAP provider: cursors, ids, UID sets, folder roles,
FETCH items. No network here, so all of it is unit-testable."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ...errors import CursorExpired
from ...model import Detail, Folder, FolderKind
from ...ports import FetchedMessage

__all__ = [
    "ImapCursor",
    "compress_uids",
    "decode_modified_utf7",
    "fetched_message",
    "folder_from_list",
    "kind_from_name",
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

#: Well-known folder names of servers without SPECIAL-USE, lower-cased.
NAMES: Mapping[str, FolderKind] = {
    "inbox": FolderKind.INBOX,
    "sent": FolderKind.SENT,
    "sent items": FolderKind.SENT,
    "sent messages": FolderKind.SENT,
    "sent mail": FolderKind.SENT,
    "gesendet": FolderKind.SENT,
    "gesendete objekte": FolderKind.SENT,
    "gesendete elemente": FolderKind.SENT,
    "envoyés": FolderKind.SENT,
    "éléments envoyés": FolderKind.SENT,
    "archive": FolderKind.ARCHIVE,
    "archives": FolderKind.ARCHIVE,
    "archiv": FolderKind.ARCHIVE,
    "drafts": FolderKind.DRAFTS,
    "draft": FolderKind.DRAFTS,
    "entwürfe": FolderKind.DRAFTS,
    "brouillons": FolderKind.DRAFTS,
    "trash": FolderKind.TRASH,
    "deleted items": FolderKind.TRASH,
    "deleted messages": FolderKind.TRASH,
    "papierkorb": FolderKind.TRASH,
    "gelöschte elemente": FolderKind.TRASH,
    "corbeille": FolderKind.TRASH,
    "spam": FolderKind.SPAM,
    "junk": FolderKind.SPAM,
    "junk e-mail": FolderKind.SPAM,
    "junk email": FolderKind.SPAM,
    "bulk mail": FolderKind.SPAM,
    "spamverdacht": FolderKind.SPAM,
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
        raise ValueError("an empty UID set")
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

    ``*`` is not meaningful in a server's response and is refused.
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
    """UIDs from the data of ``* VANISHED [(EARLIER)] <set>`` responses (RFC 7162)."""
    uids: list[int] = []
    for line in lines:
        raw = line.encode("ascii", "replace") if isinstance(line, str) else line
        match = _VANISHED.match(raw)
        if match is None:
            raise ValueError(f"unreadable VANISHED response: {raw[:80]!r}")
        uids.extend(parse_uid_set(match.group(2).decode("ascii"), below=below))
    return uids


def decode_modified_utf7(value: bytes | str) -> str:
    """Decode a mailbox name or Gmail label in modified UTF-7 (RFC 3501 5.1.3)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i)
        if end == -1:
            out.append(text[i:])
            break
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            data += "=" * (-len(data) % 4)
            try:
                out.append(base64.b64decode(data).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(text[i : end + 1])
        i = end + 1
    return "".join(out)


def kind_from_name(name: str, delimiter: str) -> FolderKind:
    """A folder's kind from its name, for folders without SPECIAL-USE.

    Only top-level folders and direct children of INBOX are recognised,
    so ``Clients/Archive`` stays a custom folder.
    """
    if name.upper() == "INBOX":
        return FolderKind.INBOX
    parts = name.split(delimiter) if delimiter else [name]
    if len(parts) == 2 and parts[0].upper() == "INBOX":
        parts = parts[1:]
    if len(parts) != 1:
        return FolderKind.CUSTOM
    return NAMES.get(parts[0].strip().casefold(), FolderKind.CUSTOM)


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
