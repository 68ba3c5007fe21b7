"""RFC 5322 header bytes from a Graph ``message`` resource's properties, so a
metadata-only fetch goes through the same mail parser as a MIME one.

Graph has properties for the participants, the subject, the dates and the
Message-ID, but none for the threading and group-mail headers the policy
reads (``In-Reply-To``, ``References``, ``List-Id``, ``List-Unsubscribe``,
``Precedence``, ``Auto-Submitted``): those come from ``internetMessageHeaders``,
which Graph returns only when a GET of the message ``$select``s it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

from ...header_names import AUTH_HEADERS, GROUP_HEADERS, THREAD_HEADERS

__all__ = [
    "HEADER_ONLY",
    "METADATA_PROPERTIES",
    "MESSAGE_SIZE",
    "headers_from_properties",
    "message_size",
    "parse_graph_time",
]

#: What a metadata-only message needs from Graph.
METADATA_PROPERTIES = (
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "sentDateTime",
    "internetMessageHeaders",
)
#: Headers taken from ``internetMessageHeaders`` (no property holds them).
HEADER_ONLY = frozenset(h.lower() for h in (*THREAD_HEADERS, *GROUP_HEADERS, *AUTH_HEADERS))
#: ``PidTagMessageSize`` as a single-value extended property id.
MESSAGE_SIZE = "Integer 0x0E08"

_ADDRESS_HEADERS = (
    ("From", "from"),
    ("Sender", "sender"),
    ("To", "toRecipients"),
    ("Cc", "ccRecipients"),
    ("Bcc", "bccRecipients"),
    ("Reply-To", "replyTo"),
)


def parse_graph_time(value: object) -> datetime | None:
    """A Graph timestamp (``2026-03-02T09:00:00Z``, up to seven fractional
    digits); ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, tail = text.partition(".")
    if dot:  # Python reads at most six fractional digits
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[: min(digits, 6)] + tail[digits:]
        text = f"{head}.{tail}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _flat(text: object) -> str:
    """One line: no CR/LF can end a header early and start another."""
    return " ".join(str(text or "").split())


def _mailbox(value: object) -> str:
    if not isinstance(value, Mapping):
        return ""
    email = value.get("emailAddress")
    if not isinstance(email, Mapping):
        return ""
    address = _flat(email.get("address")).replace(" ", "")
    name = _flat(email.get("name"))
    if not address:
        return ""
    if not name or name == address:
        return address
    try:
        return formataddr((name, address), charset="utf-8")
    except (UnicodeError, ValueError):
        return address


def _mailboxes(value: Any) -> str:
    items: Sequence[Any] = value if isinstance(value, list) else [value]
    return ", ".join(m for m in (_mailbox(v) for v in items) if m)


def _text(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=10_000)


def headers_from_properties(item: Mapping[str, Any]) -> bytes:
    """Header bytes (ending with the blank line) for a Graph message resource."""
    lines: list[str] = []
    sender = _mailboxes(item.get("from"))
    for header, key in _ADDRESS_HEADERS:
        value = _mailboxes(item.get(key))
        if value and not (header == "Sender" and value == sender):
            lines.append(f"{header}: {value}")
    subject = _flat(item.get("subject"))
    if subject:
        lines.append(f"Subject: {_text(subject)}")
    date = parse_graph_time(item.get("sentDateTime")) or parse_graph_time(
        item.get("receivedDateTime")
    )
    if date is not None and date.tzinfo is not None:
        lines.append(f"Date: {format_datetime(date)}")
    message_id = _flat(item.get("internetMessageId")).replace(" ", "")
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    lines.extend(_internet_headers(item.get("internetMessageHeaders")))
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8") + b"\r\n"


def _internet_headers(value: object) -> list[str]:
    """The ``HEADER_ONLY`` headers of an ``internetMessageHeaders`` list."""
    if not isinstance(value, list):
        return []
    lines = []
    for header in value:
        if not isinstance(header, Mapping):
            continue
        name = str(header.get("name") or "").strip()
        if name.lower() in HEADER_ONLY:
            lines.append(f"{name}: {_flat(header.get('value'))}")
    return lines


def message_size(item: Mapping[str, Any]) -> int | None:
    """``PidTagMessageSize`` from an item expanded with it, else ``None``."""
    found = item.get("singleValueExtendedProperties")
    if not isinstance(found, list):
        return None
    wanted = MESSAGE_SIZE.lower().split()
    for prop in found:
        if not isinstance(prop, Mapping):
            continue
        kind, _, tag = str(prop.get("id") or "").lower().partition(" ")
        if kind != wanted[0] or not tag.startswith("0x"):
            continue
        try:
            if int(tag, 16) != int(wanted[1], 16):
                continue
            size = int(str(prop.get("value")))
        except ValueError:
            return None
        return size if size >= 0 else None
    return None
