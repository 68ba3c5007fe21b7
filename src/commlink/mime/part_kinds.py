"""Kinds of MIME parts and their sizes, without the parsers: what a provider
may decide before fetching a message (see ``providers.imap.bodystructure``)."""

from __future__ import annotations

__all__ = ["CALENDAR_TYPES", "FORWARD_TYPES", "estimate_size"]

CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
FORWARD_TYPES = frozenset({"message/rfc822", "message/global"})


def estimate_size(encoded_size: int) -> int:
    """Decoded size of a base64 part from its encoded size: 76-column lines
    ending in CRLF, 2 bytes too many at most (the padding is not known)."""
    lines = -(-encoded_size // 78)
    return max(0, encoded_size - 2 * lines) * 3 // 4
