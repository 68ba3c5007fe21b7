"""Kinds of MIME parts and their sizes, without the parsers: what a provider
may decide before fetching a message (see ``providers.imap.bodystructure``)."""

from __future__ import annotations

__all__ = ["CALENDAR_TYPES", "ESTIMATED_MIN_BYTES", "FORWARD_TYPES", "estimate_size"]

CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
FORWARD_TYPES = frozenset({"message/rfc822", "message/global"})
#: A base64 attachment this large (encoded) that is neither a calendar nor a
#: forwarded message is not decoded when a message is parsed: its content is
#: never kept, and its size is estimated from the encoded size instead.
ESTIMATED_MIN_BYTES = 64 * 1024


def estimate_size(encoded_size: int, line_end: int = 2) -> int:
    """Decoded size of a base64 part from its encoded size: 76-column lines
    ending in CRLF (``line_end=1``: in LF), the last one with or without its
    line end; 2 bytes too many at most (the padding is not known)."""
    lines = -(-encoded_size // (76 + line_end))
    chars = encoded_size - line_end * lines
    if chars % 4 and lines:  # base64 comes in fours: the last line has no line end
        chars += line_end
    return max(0, chars) * 3 // 4
