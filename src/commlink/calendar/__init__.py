"""iCalendar to ``Event`` values: parsing (``ical``), time zones (``zones``),
conference links (``links``), recurrence expansion (``recurrence``) and
invitations carried in mail (``invites``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ical import parse_calendar

__all__ = ["parse_calendar"]


def __getattr__(name: str) -> object:
    # Lazy, so that importing ``links`` or ``zones`` does not load icalendar.
    if name == "parse_calendar":
        from .ical import parse_calendar

        return parse_calendar
    raise AttributeError(f"module 'commlink.calendar' has no attribute {name!r}")
