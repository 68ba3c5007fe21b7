"""RFC 5322 header bytes from a Graph ``message`` resource's properties, so a
metadata-only fetch goes through the same mail parser as a MIME one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

__all__ = ["METADATA_PROPERTIES", "headers_from_properties", "parse_graph_time"]

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
)

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
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8") + b"\r\n"
