"""Reading a calendar the icalendar library refuses as a whole, part by part.

The library reads a calendar in one go, and one broken component (a
VTIMEZONE it cannot build, a property it trips over) fails all of it. A
file import (an ``.ics`` export of thousands of events) would then lose
every event for one bad one. ``isolated_calendars`` splits such data at its
component lines and reads it again: the calendar's own properties, each
VTIMEZONE alone (a broken one is left out, and its TZID reads as unknown),
then the events in chunks of ``CHUNK_EVENTS``, and a chunk it refuses
event by event; the events that still fail are reported as
``invalid-event:<uid>``. That reads each event's text at most twice more;
``READ_FACTOR`` times the calendar's size bounds it in any case, and
events not read within it are reported the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..mime.storable import storable_id

__all__ = ["CHUNK_EVENTS", "READ_FACTOR", "isolated_calendars", "split_parts"]

#: Most text read again per calendar, as a multiple of its size.
READ_FACTOR = 8
#: Events read together; a chunk the library refuses is read event by event.
CHUNK_EVENTS = 32

# A component's BEGIN or END line (names are case-insensitive).
_EDGE = re.compile(r"(BEGIN|END):([A-Za-z0-9-]+)[ \t]*\Z", re.IGNORECASE)
_UID = re.compile(r"UID[;:]", re.IGNORECASE)

_Lines = Sequence[str]
#: A top-level component as text: name, its own property lines, its children.
_Part = tuple[str, list[str], list[tuple[str, list[str]]]]


def split_parts(text: str) -> list[_Part]:
    """Top-level components of ``text``, split at their BEGIN/END lines (a
    folded line stays with the line it continues; an END that closes no open
    component is an ordinary line). Lines outside any component are
    dropped, and so is a component that never ends."""
    parts: list[_Part] = []
    props: list[str] = []
    children: list[tuple[str, list[str]]] = []
    child: list[str] | None = None
    open_names: list[str] = []
    for line in text.splitlines():
        edge = None if line[:1] in (" ", "\t") else _EDGE.match(line)
        kind, component = (edge.group(1).upper(), edge.group(2).upper()) if edge else ("", "")
        if kind == "BEGIN":
            open_names.append(component)
            if len(open_names) == 1:
                props, children, child = [], [], None
                continue
            if len(open_names) == 2:
                child = []
                children.append((component, child))
        if not open_names:
            continue
        closing = kind == "END" and component == open_names[-1]
        if child is not None:
            child.append(line)
        elif not closing:
            props.append(line)
        if closing:
            open_names.pop()
            if len(open_names) == 1:
                child = None
            elif not open_names:
                parts.append((component, props, children))
    return parts


def _text(name: str, props: _Lines, children: Sequence[_Lines]) -> str:
    lines = [f"BEGIN:{name}", *props]
    for child in children:
        lines.extend(child)
    lines.append(f"END:{name}")
    return "\r\n".join(lines) + "\r\n"


def _uid(lines: _Lines) -> str:
    """The UID line's value (as the mapper keeps it), else a hash of the text."""
    for line in lines:
        if _UID.match(line):
            uid, _ = storable_id(line.partition(":")[2].strip())
            if uid:
                return uid
    return hashlib.sha256("\r\n".join(lines).encode("utf-8", "replace")).hexdigest()[:32]


def isolated_calendars(
    text: str, read: Callable[[str], list[Any]], notes: list[str]
) -> list[tuple[Any, list[Any]]]:
    """``(VCALENDAR component or None, its VEVENT components)`` for each
    top-level component of ``text``; ``read`` is the library's parse of a
    text into components, and only what it accepts is kept."""
    found: list[tuple[Any, list[Any]]] = []
    for name, props, children in split_parts(text):
        if name == "VCALENDAR":
            found.append(_calendar(props, children, read, notes))
            continue
        whole = _text(name, props, [lines for _, lines in children])
        try:  # a bare component: whole, or not at all
            found.append((None, [v for c in read(whole) for v in c.walk("VEVENT")]))
        except Exception:
            if name == "VEVENT":
                notes.append(f"invalid-event:{_uid(whole.splitlines())}")
    return found


def _calendar(
    props: list[str],
    children: list[tuple[str, list[str]]],
    read: Callable[[str], list[Any]],
    notes: list[str],
) -> tuple[Any, list[Any]]:
    size = sum(len(line) + 2 for line in props)
    size += sum(len(line) + 2 for _, lines in children for line in lines)
    budget = READ_FACTOR * size

    def attempt(parts: Sequence[_Lines], own: _Lines = ()) -> list[Any] | None:
        nonlocal budget
        data = _text("VCALENDAR", own, parts)
        budget -= len(data)
        try:
            return read(data)
        except Exception:
            return None

    # Zones and events are read without the calendar's own properties (they
    # need none of them), so large ones are not read again each time.
    zones = [lines for name, lines in children if name == "VTIMEZONE"]
    good = [zone for zone in zones if budget > 0 and attempt([zone]) is not None]
    found = attempt(good, props) or attempt(good) or attempt([], props) or attempt([]) or [None]
    # Events are read without the zones: the mapper resolves TZIDs from the
    # calendar's own VTIMEZONEs (and the library has seen them above).
    vevents: list[Any] = []
    events = [lines for name, lines in children if name == "VEVENT"]
    for first in range(0, len(events), CHUNK_EVENTS):
        chunk = events[first : first + CHUNK_EVENTS]
        parsed = attempt(chunk) if budget > 0 else None
        if parsed is None:  # one by one: a chunk's text is read at most twice
            parsed = []
            for lines in chunk:
                single = attempt([lines]) if budget > 0 else None
                if single is None:
                    notes.append(f"invalid-event:{_uid(lines)}")
                else:
                    parsed.extend(single)
        vevents.extend(v for component in parsed for v in component.walk("VEVENT"))
    return found[0], vevents
