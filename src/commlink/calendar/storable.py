"""Events every store can hold, whichever provider read them.

The iCalendar parser cleans what it reads, but Google, Graph and EWS map
their own JSON and XML, and every field there is written by whoever sent
the invitation. ``storable_event`` gives all of them the same bounds as
mail (``mime.storable``): no NUL or other C0 control in text (tab and line
ends stay in descriptions only), no lone surrogate, UIDs that fit an index,
and caps on titles, locations, names and descriptions (and, given a
channel's limit, on attendees). Provider ids are the
provider's own and stay as they are. Each repair is recorded as a warning
on the event. Clean events are returned unchanged after one cheap check per
field.
"""

from __future__ import annotations

import attrs

from ..mime.storable import (
    MAX_NAME_CHARS,
    MAX_SUBJECT_CHARS,
    clean_text,
    repair_codes,
    storable_id,
    text_is_clean,
)
from ..model import Address, Attendee, Event

__all__ = ["MAX_DESCRIPTION_BYTES", "MAX_RECURRENCE_LINES", "cap_text", "storable_event"]

#: Longest description kept, in UTF-8 bytes (as for iCalendar descriptions).
MAX_DESCRIPTION_BYTES = 64 * 1024
#: RRULE/RDATE/EXDATE lines kept of a series master.
MAX_RECURRENCE_LINES = 1000
_MAX_WARNINGS = 20


def _line(text: str, limit: int, warnings: list[str], field: str) -> str:
    """One-line text: every control (tab and line ends too) becomes a space."""
    if text_is_clean(text) and "\n" not in text and "\r" not in text and "\t" not in text:
        cleaned = text
    else:
        warnings.extend(f"{code}:{field}" for code in repair_codes(text))
        cleaned = " ".join(clean_text(text).split())
    if len(cleaned) > limit:
        warnings.append(f"text-truncated:{field}")
        cleaned = cleaned[:limit]
    return cleaned


def cap_text(text: str, limit: int = MAX_DESCRIPTION_BYTES) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (never inside a
    character), and whether it was cut; one length check for short text."""
    if len(text) * 4 <= limit:
        return text, False
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text, False
    return encoded[:limit].decode("utf-8", "ignore"), True


def _description(text: str, warnings: list[str]) -> str:
    if not text_is_clean(text):
        warnings.extend(f"{code}:description" for code in repair_codes(text))
        text = clean_text(text)
    text, cut = cap_text(text)
    if cut:
        warnings.append("text-truncated:description")
    return text


def _link(url: str, warnings: list[str]) -> str:
    """A link is kept whole or not at all: a cut URL leads somewhere else."""
    if len(url) <= MAX_NAME_CHARS and url.isprintable():
        return url
    warnings.append("link-dropped")
    return ""


def _address(address: Address, warnings: list[str]) -> Address:
    name = _line(address.name, MAX_NAME_CHARS, warnings, "name")
    raw = _line(address.raw, MAX_NAME_CHARS, warnings, "address")
    if name == address.name and raw == address.raw:
        return address
    return attrs.evolve(address, name=name, raw=raw)


def _attendee(attendee: Attendee, warnings: list[str]) -> Attendee:
    address = _address(attendee.address, warnings)
    return attendee if address is attendee.address else attrs.evolve(attendee, address=address)


def _id(value: str, warnings: list[str]) -> str:
    cleaned, repairs = storable_id(value)
    warnings.extend(repairs)
    return cleaned


def storable_event(event: Event, max_attendees: int | None = None) -> Event:
    """``event`` with every field a store can hold; unchanged when already so.

    With ``max_attendees`` (a channel's ``Limits.max_participants``) only the
    first that many attendees are kept, with the warning
    ``attendees-truncated:<total>`` (the contact rules read it).
    """
    warnings: list[str] = []
    organizer = None if event.organizer is None else _attendee(event.organizer, warnings)
    given_attendees = event.attendees
    if max_attendees is not None and len(given_attendees) > max_attendees:
        warnings.append(f"attendees-truncated:{len(given_attendees)}")
        given_attendees = given_attendees[:max_attendees]
    recurrence = event.recurrence
    if len(recurrence) > MAX_RECURRENCE_LINES:
        warnings.append("recurrence-truncated")
        recurrence = recurrence[:MAX_RECURRENCE_LINES]
    uid = _id(event.uid, warnings)
    title = _line(event.title, MAX_SUBJECT_CHARS, warnings, "title")
    location = _line(event.location, MAX_NAME_CHARS, warnings, "location")
    description = _description(event.description, warnings)
    zone = _line(event.timezone, 100, warnings, "timezone")
    calendar_id = _line(event.calendar_id, MAX_NAME_CHARS, warnings, "calendar")
    link = _link(event.conference_url, warnings)
    lines = tuple(_line(r, MAX_NAME_CHARS, warnings, "recurrence") for r in recurrence)
    attendees = tuple(_attendee(a, warnings) for a in given_attendees)
    # compared, not judged by the warnings: a line break in a one-line field
    # is folded without one
    kept = (uid, title, location, description, zone, calendar_id, link, lines, organizer)
    given = (
        event.uid,
        event.title,
        event.location,
        event.description,
        event.timezone,
        event.calendar_id,
        event.conference_url,
        event.recurrence,
        event.organizer,
    )
    if not warnings and kept == given and attendees == event.attendees:
        return event
    return attrs.evolve(
        event,
        uid=uid,
        title=title,
        location=location,
        description=description,
        timezone=zone,
        calendar_id=calendar_id,
        conference_url=link,
        recurrence=lines,
        organizer=organizer,
        attendees=attendees,
        warnings=tuple(dict.fromkeys((*event.warnings, *warnings)))[:_MAX_WARNINGS],
    )
