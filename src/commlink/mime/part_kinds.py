"""Kinds of MIME parts and their sizes, without the parsers: what a provider
may decide before fetching a message (see ``providers.imap.bodystructure``)."""

from __future__ import annotations

__all__ = ["CALENDAR_TYPES", "FORWARD_TYPES", "estimate_size"]

CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})
FORWARD_TYPES = frozenset({"message/rfc822", "message/global"})


def estimate_size(encoded_size: int) -> int:
    """Decoded size of a base64 part from its encoded size (76-column lines)."""
    return encoded_size * 57 // 78
