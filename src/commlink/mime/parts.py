"""MIME body parts: what a message carries, and the standard-library fallback reader.

``Content`` is what either parser extracts from a message body. The fast
path fills it from fast-mail-parser; ``stdlib_content`` fills it from the
standard library's lenient ``compat32`` parser when the fast parser gives up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.message import Message as StdMessage
from email.policy import compat32
from typing import Protocol

import attrs

from ..model import Attachment, Message
from .headers import decode_words, header_block, raw_values
from .part_kinds import CALENDAR_TYPES, FORWARD_TYPES, estimate_size
from .structure import sections
from .text import collapse, decode_8bit, decode_bytes

__all__ = [
    "CALENDAR_TYPES",
    "FORWARD_TYPES",
    "Content",
    "attachment",
    "calendar_text",
    "estimate_size",
    "fill_left_out",
    "forward_name",
    "is_calendar",
    "number_parts",
    "section_leaves",
    "stdlib_content",
    "valid_part",
]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_MAX_NAME = 200
# An IMAP section path of single parts: "1", "2.3"; depth as structure.MAX_DEPTH.
_PART = re.compile(r"[1-9][0-9]{0,5}(?:\.[1-9][0-9]{0,5}){0,32}")


@attrs.frozen(slots=True)
class Content:
    """The readable parts of a message body.

    ``plain`` and ``html`` are the first body text of each kind in the
    top-level message (never from inside a forwarded message).
    """

    plain: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    calendar_parts: tuple[str, ...] = ()


def is_calendar(content_type: str, filename: str) -> bool:
    """Whether a part is an iCalendar object (by type, or an ``.ics`` file name)."""
    return content_type in CALENDAR_TYPES or filename.lower().endswith(".ics")


def calendar_text(data: bytes, warnings: list[str]) -> str:
    """The text of a calendar part: UTF-8 (RFC 5545), repaired when it is not."""
    text, repair = decode_bytes(data, "utf-8")
    if repair is not None:
        warnings.append(f"charset-repaired:{repair}")
    return text.replace("\r\n", "\n")


def forward_name(data: bytes) -> str:
    """A file name for a forwarded message: its subject, else ``forwarded.eml``."""
    subjects = raw_values(header_block(data[:65536]), "subject")
    subject = collapse(decode_words(subjects[0])[0]) if subjects else ""
    subject = _UNSAFE.sub("_", subject)[:_MAX_NAME].strip()
    return f"{subject}.eml" if subject else "forwarded.eml"


def fill_left_out(
    message: Message, left_out: Sequence[tuple[str, int]], size: int | None
) -> Message:
    """``message`` parsed from bytes that left out the content of some file
    parts (``FetchedMessage.left_out``): those attachments get their decoded
    size, and the message its ``size`` at the provider."""
    if not left_out and size is None:
        return message
    sizes = dict(left_out)
    attachments = tuple(
        attrs.evolve(a, size=sizes[a.part]) if a.part in sizes else a for a in message.attachments
    )
    return attrs.evolve(
        message,
        attachments=attachments,
        size=message.size if size is None else size,
    )


def attachment(
    filename: str,
    content_type: str,
    size: int,
    disposition: str | None,
    content_id: str | None,
) -> Attachment:
    """An ``Attachment`` with its file name decoded and its content id unbracketed."""
    if "=?" in filename:
        filename = decode_words(filename)[0]
    return Attachment(
        filename=collapse(filename),
        content_type=content_type,
        size=size,
        inline=(disposition or "").strip().lower() == "inline",
        content_id=(content_id or "").strip().strip("<>").strip(),
    )


def valid_part(part: str) -> bool:
    """Whether ``part`` is a section path this library writes (``"2"``, ``"1.3"``)."""
    return _PART.fullmatch(part) is not None


class _Node(Protocol):
    @property
    def content_type(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def content_id(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def children(self) -> Sequence[_Node]: ...


def section_leaves(root: _Node) -> list[tuple[str, _Node]]:
    """The single parts of a MIME tree with their IMAP section paths, in order.

    A message that is not multipart is section ``"1"``; ``message/*`` parts
    are leaves (their content is the whole forwarded message).
    """
    leaves: list[tuple[str, _Node]] = []
    stack: list[tuple[str, _Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if node.content_type.lower().startswith("multipart/") and node.children:
            numbered = [
                (f"{path}.{i}" if path else str(i), child)
                for i, child in enumerate(node.children, 1)
            ]
            stack.extend(reversed(numbered))
        else:
            leaves.append((path or "1", node))
    return leaves


def number_parts(
    attachments: Sequence[Attachment], leaves: Sequence[tuple[str, _Node]]
) -> tuple[Attachment, ...]:
    """``attachments`` (in message order) with the section path of the leaf each
    came from: the next leaf of the same type, file name and content id."""
    numbered: list[Attachment] = []
    at = 0
    for att in attachments:
        for i in range(at, len(leaves)):
            path, node = leaves[i]
            cid = (node.content_id or "").strip().strip("<>").strip()
            name = node.filename
            if "=?" in name:
                name = decode_words(name)[0]
            if (
                node.content_type.lower() == att.content_type
                and cid == att.content_id
                and (not name or collapse(name) == att.filename)
                and valid_part(path)
            ):
                att = attrs.evolve(att, part=path)
                at = i + 1
                break
        numbered.append(att)
    return tuple(numbered)


# --- the standard-library reader ---------------------------------------------


def stdlib_content(raw: bytes, warnings: list[str]) -> Content:
    """Read a message body with the standard library's lenient parser.

    Slow, but it tolerates broken transfer encodings (broken base64 is
    decoded as far as it goes) and odd structure. Multiparts are split by
    ``structure.walk``, which bounds depth and part count instead of
    recursing. Never raises.
    """
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    calendars: list[str] = []
    for section, part in sections(raw, warnings):
        try:
            ctype = part.get_content_type()
            disposition = _text(part.get_content_disposition() or "").lower()
            if ctype in ("text/plain", "text/html") and disposition != "attachment":
                if (plain if ctype == "text/plain" else html) is None:
                    text = _part_text(part, warnings)
                    if ctype == "text/plain":
                        plain = text
                    else:
                        html = text
                continue
            kept = len(attachments)
            _record_part(part, ctype, disposition, attachments, calendars, warnings)
            if len(attachments) > kept and valid_part(section):
                attachments[-1] = attrs.evolve(attachments[-1], part=section)
        except Exception as exc:  # one odd part must not cost the message
            warnings.append(f"bad-part:{type(exc).__name__}")
    return Content(
        plain=plain,
        html=html,
        attachments=tuple(attachments),
        calendar_parts=tuple(dict.fromkeys(calendars)),
    )


def _record_part(
    part: StdMessage,
    ctype: str,
    disposition: str,
    attachments: list[Attachment],
    calendars: list[str],
    warnings: list[str],
) -> None:
    """Record one non-body part of a standard-library message."""
    filename = _text(part.get_filename() or "")
    if ctype.startswith("message/"):
        inner = part.get_payload()
        data = _message_bytes(inner[0] if isinstance(inner, list) and inner else inner)
        if _text(part.get("content-transfer-encoding", "")).strip().lower() in _ENCODED:
            decoded = part.get_payload(decode=True)  # as the fast path reads it
            data = decoded if isinstance(decoded, bytes) else data
        if ctype in FORWARD_TYPES and not filename:
            filename = forward_name(data)
        attachments.append(
            attachment(filename, ctype, len(data), disposition, _text(part.get("content-id", "")))
        )
        return
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    if is_calendar(ctype, filename):
        calendars.append(calendar_text(data, warnings))
        if disposition != "attachment" and ctype == "text/calendar":
            return
    attachments.append(
        attachment(filename, ctype, len(data), disposition, _text(part.get("content-id", "")))
    )


def _part_text(part: StdMessage, warnings: list[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text, repair = decode_bytes(data, charset)
    if repair is not None:
        warnings.append(f"charset-repaired:{repair}")
    return text


_ENCODED = frozenset({"base64", "quoted-printable"})


def _message_bytes(inner: object) -> bytes:
    if isinstance(inner, StdMessage):
        try:
            return inner.as_bytes(policy=compat32)
        except Exception:
            return b""
    if isinstance(inner, str):
        return inner.encode("utf-8", "surrogateescape")
    return b""


def _text(value: object) -> str:
    """A header or parameter value from ``compat32`` as clean text.

    Undecoded 8-bit bytes arrive as surrogate escapes; decode them as raw
    header bytes are decoded elsewhere.
    """
    try:
        text = value if isinstance(value, str) else str(value)
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return decode_8bit(text.encode("utf-8", "surrogateescape"))[0]
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")
    except Exception:
        return ""
    return text
