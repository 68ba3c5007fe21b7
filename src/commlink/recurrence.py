"""Expanding recurring calendar events into their occurrences (pure).

A series is a master event carrying iCalendar ``RRULE``/``EXRULE``/``RDATE``/
``EXDATE`` lines plus overrides (same ``uid`` with ``recurrence_id`` set).
``expand`` yields what a calendar shows inside a window: generated
occurrences, overrides in place of the occurrences they replace, and nothing
that was cancelled. Rules are evaluated in the master's time zone, so a
weekly 09:00 meeting stays at 09:00 local time across DST changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import attrs
from dateutil.rrule import rrule, rruleset, rrulestr

from .model import Event, EventStatus
from .records import Window

__all__ = ["MAX_OCCURRENCES", "expand", "overlaps"]

#: Occurrences generated per series at most before expansion stops (guards
#: against rules such as ``FREQ=SECONDLY`` that start years before a window).
MAX_OCCURRENCES = 50_000

_UNTIL = re.compile(r"(?i)(UNTIL=)([0-9TZ]+)")


def overlaps(event: Event, window: Window) -> bool:
    """Whether an event intersects the half-open window ``[start, end)``."""
    return event.start < window.end and event.end > window.start


def expand(events: Sequence[Event], window: Window) -> list[Event]:
    """The occurrences of one series (master + overrides) inside ``window``.

    Generated occurrences are copies of the master with ``start``/``end``
    moved and ``recurrence_id`` set to the occurrence start. An override
    replaces the occurrence with its ``recurrence_id``; cancelled events and
    overrides are left out. A master whose rules cannot be evaluated is
    returned alone (when it overlaps the window). Sorted by start.
    """
    masters = [e for e in events if e.recurrence_id is None]
    overrides = {e.recurrence_id: e for e in events if e.recurrence_id is not None}
    found: list[Event] = []
    replaced: set[datetime] = set()
    for master in masters:
        if master.status is EventStatus.CANCELLED:
            replaced.update(overrides)  # a cancelled series hides its overrides too
            continue
        if not master.recurrence:
            if overlaps(master, window):
                found.append(master)
            continue
        starts = _occurrences(master, window)
        if starts is None:
            if overlaps(master, window):
                found.append(master)
            continue
        for start in starts:
            override = overrides.get(start)
            if override is not None:
                replaced.add(start)
                if override.status is not EventStatus.CANCELLED and overlaps(override, window):
                    found.append(override)
                continue
            found.append(
                attrs.evolve(
                    master,
                    start=start,
                    end=_shift_end(master, start),
                    recurrence_id=start,
                    recurrence=(),
                )
            )
    for rid, override in overrides.items():
        if rid in replaced or override.status is EventStatus.CANCELLED:
            continue
        # an override whose original slot lies outside the window (or whose
        # master is unknown) still shows where it was moved to
        if overlaps(override, window):
            found.append(override)
    found.sort(key=lambda e: (e.start, e.recurrence_id or e.start))
    return found


def _zone(master: Event) -> tzinfo:
    if master.timezone:
        try:
            return ZoneInfo(master.timezone)
        except (ValueError, KeyError, OSError):
            pass
    tz = master.start.tzinfo
    return tz if tz is not None else timezone.utc


def _shift_end(master: Event, start: datetime) -> datetime:
    """The occurrence end, keeping the master's wall-clock duration."""
    zone = start.tzinfo or timezone.utc
    local_start = master.start.astimezone(zone).replace(tzinfo=None)
    local_end = master.end.astimezone(zone).replace(tzinfo=None)
    end = (start.replace(tzinfo=None) + (local_end - local_start)).replace(tzinfo=zone)
    # a wall-clock end that falls in a DST gap can precede the start
    return end if end >= start else start + (master.end - master.start)


def _occurrences(master: Event, window: Window) -> list[datetime] | None:
    """Occurrence starts overlapping the window, or None if the rules are unusable."""
    try:
        zone = _zone(master)
        dtstart = master.start.astimezone(zone)
        rules = _ruleset(master.recurrence, dtstart, zone)
        duration = max(master.end - master.start, timedelta(0))
        earliest = window.start - duration
        starts: list[datetime] = []
        for generated, occurrence in enumerate(rules):
            if occurrence >= window.end or generated >= MAX_OCCURRENCES:
                break
            if occurrence > earliest or (duration == timedelta(0) and occurrence >= window.start):
                starts.append(occurrence)
        return starts
    except Exception:  # any malformed rule: callers fall back to the master alone
        return None


def _ruleset(lines: Sequence[str], dtstart: datetime, zone: tzinfo) -> rruleset:
    rules = rruleset()
    rules.rdate(dtstart)  # RFC 5545: DTSTART is always the first instance
    for line in lines:
        for part in line.replace("\r\n ", "").splitlines():
            _add_line(rules, part.strip(), dtstart, zone)
    return rules


def _add_line(rules: rruleset, line: str, dtstart: datetime, zone: tzinfo) -> None:
    head, sep, value = line.partition(":")
    if not sep:
        return
    name, *params = head.split(";")
    name = name.strip().upper()
    if name in ("RRULE", "EXRULE"):
        rule = rrulestr(_fix_until(value, zone), dtstart=dtstart)
        if not isinstance(rule, rrule):
            raise ValueError(f"unsupported {name}")
        (rules.rrule if name == "RRULE" else rules.exrule)(rule)
    elif name in ("RDATE", "EXDATE"):
        tz = _param_zone(params) or zone
        for item in value.split(","):
            moment = _parse_moment(item.split("/")[0].strip(), dtstart, tz)
            (rules.rdate if name == "RDATE" else rules.exdate)(moment)


def _param_zone(params: list[str]) -> tzinfo | None:
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().upper() == "TZID" and val:
            return ZoneInfo(val.strip().strip('"'))
    return None


def _parse_moment(text: str, dtstart: datetime, zone: tzinfo) -> datetime:
    """An RDATE/EXDATE value: a UTC or local date-time, or a date (at DTSTART's time)."""
    if len(text) == 8:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        local_time = dtstart.astimezone(zone).time()
        return datetime.combine(day, local_time).replace(tzinfo=zone)
    utc = text.endswith("Z")
    parsed = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H%M%S")
    return parsed.replace(tzinfo=timezone.utc if utc else zone)


def _fix_until(rule: str, zone: tzinfo) -> str:
    """Rewrite a date or floating UNTIL as UTC, as dateutil wants with an aware DTSTART."""

    def to_utc(match: re.Match[str]) -> str:
        text = match.group(2).upper()
        if text.endswith("Z"):
            return match.group(0)
        if len(text) == 8:
            moment = datetime.combine(
                date(int(text[:4]), int(text[4:6]), int(text[6:8])), time(23, 59, 59)
            ).replace(tzinfo=zone)
        else:
            moment = datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=zone)
        return match.group(1) + moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    return _UNTIL.sub(to_utc, rule)
