"""Mapping EWS calendar items (exchangelib ``CalendarItem``) to ``Event``s.

A recurring master carries its pattern as an RRULE (every EWS pattern but
the task-only regeneration ones), its deleted occurrences as EXDATEs, and
its modified occurrences as overrides with the times EWS lists for them
(their other properties are the master's: reading each exception would
cost a GetItem per occurrence).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import attrs

from ....addresses import parse_address
from ....calendar.links import find_meeting_link
from ....model import Attendee, Event, EventStatus, ResponseStatus
from .sync import utc

__all__ = ["CALENDAR_FIELDS", "map_calendar_item", "recurrence_lines"]

#: The properties a calendar fetch asks for.
CALENDAR_FIELDS = (
    "uid",
    "subject",
    "body",
    "start",
    "end",
    "is_all_day",
    "location",
    "is_cancelled",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "recurrence",
    "modified_occurrences",
    "deleted_occurrences",
    "appointment_sequence_number",
    "last_modified_time",
    "_start_timezone",
    "meeting_workspace_url",
    "net_show_url",
)

_RESPONSES = {
    "Accept": ResponseStatus.ACCEPTED,
    "Organizer": ResponseStatus.ACCEPTED,
    "Decline": ResponseStatus.DECLINED,
    "Tentative": ResponseStatus.TENTATIVE,
    "NoResponseReceived": ResponseStatus.NEEDS_ACTION,
    "Unknown": ResponseStatus.NEEDS_ACTION,
}
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EXTRA_DAYS = {"Day": "MO,TU,WE,TH,FR,SA,SU", "Weekday": "MO,TU,WE,TH,FR", "WeekendDay": "SA,SU"}
_WEEKS = ("First", "Second", "Third", "Fourth", "Last")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
_TAG = re.compile(r"<[^>]+>")


def _name(value: Any, names: Sequence[str]) -> str:
    """An exchangelib enum value (1-based index or name) as its name."""
    if isinstance(value, int) and 1 <= value <= len(names):
        return names[value - 1]
    return str(value or "")


def _weekday(value: Any) -> str:
    """``MO``..``SU`` or a comma list for Day/Weekday/WeekendDay; '' if unknown."""
    name = _name(value, (*_DAY_NAMES, *_EXTRA_DAYS))
    if name in _EXTRA_DAYS:
        return _EXTRA_DAYS[name]
    return _DAYS[_DAY_NAMES.index(name)] if name in _DAY_NAMES else ""


def _week(value: Any) -> int:
    name = _name(value, _WEEKS)
    return -1 if name == "Last" else (_WEEKS.index(name) + 1 if name in _WEEKS else 0)


def _relative(weekday: Any, week: Any) -> str:
    days, number = _weekday(weekday), _week(week)
    if not days or not number:
        raise ValueError("unknown relative day")
    if "," in days:
        return f"BYDAY={days};BYSETPOS={number}"
    return f"BYDAY={number}{days}"


def _pattern(pattern: Any) -> str:
    kind = type(pattern).__name__
    interval = int(getattr(pattern, "interval", 1) or 1)
    if kind == "DailyPattern":
        return f"FREQ=DAILY;INTERVAL={interval}"
    if kind == "WeeklyPattern":
        days = [_weekday(d) for d in (pattern.weekdays or [])]
        wkst = _weekday(pattern.first_day_of_week) or "MO"
        return f"FREQ=WEEKLY;INTERVAL={interval};BYDAY={','.join(d for d in days if d)};WKST={wkst}"
    if kind == "AbsoluteMonthlyPattern":
        return f"FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={int(pattern.day_of_month)}"
    if kind == "RelativeMonthlyPattern":
        return f"FREQ=MONTHLY;INTERVAL={interval};{_relative(pattern.weekday, pattern.week_number)}"
    month = _MONTHS.index(_name(pattern.month, _MONTHS)) + 1 if hasattr(pattern, "month") else 0
    if kind == "AbsoluteYearlyPattern" and month:
        return f"FREQ=YEARLY;BYMONTH={month};BYMONTHDAY={int(pattern.day_of_month)}"
    if kind == "RelativeYearlyPattern" and month:
        return f"FREQ=YEARLY;BYMONTH={month};{_relative(pattern.weekday, pattern.week_number)}"
    raise ValueError(f"unsupported recurrence pattern {kind}")


def _boundary(boundary: Any) -> str:
    kind = type(boundary).__name__
    if kind == "NumberedPattern" and boundary.number:
        return f";COUNT={int(boundary.number)}"
    if kind == "EndDatePattern" and boundary.end is not None:
        end = boundary.end
        day = end.date() if isinstance(end, datetime) else end
        return f";UNTIL={day.strftime('%Y%m%d')}T235959Z"
    return ""


def recurrence_lines(item: Any) -> tuple[tuple[str, ...], list[str]]:
    """RRULE and EXDATE lines of a recurring master, and warnings."""
    recurrence = getattr(item, "recurrence", None)
    if recurrence is None or recurrence.pattern is None:
        return (), []
    try:
        rule = "RRULE:" + _pattern(recurrence.pattern) + _boundary(recurrence.boundary)
    except (ValueError, TypeError, AttributeError) as exc:
        return (), [f"recurrence-not-mapped:{exc}"[:100]]
    lines = [rule]
    for deleted in getattr(item, "deleted_occurrences", None) or []:
        start = utc(deleted.start)
        if start is not None:
            lines.append(f"EXDATE:{start.strftime('%Y%m%dT%H%M%SZ')}")
    return tuple(lines), []


def _person(mailbox: Any, status: ResponseStatus, **flags: bool) -> Attendee | None:
    email = str(getattr(mailbox, "email_address", "") or "").strip()
    if not email:
        return None
    address = parse_address(email, str(getattr(mailbox, "name", "") or ""))
    return Attendee(address, status=status, **flags)


def _attendees(item: Any, warnings: list[str]) -> tuple[Attendee, ...]:
    found: list[Attendee] = []
    for optional, group in ((False, item.required_attendees), (True, item.optional_attendees)):
        for attendee in group or []:
            status = _RESPONSES.get(str(attendee.response_type or ""), ResponseStatus.NEEDS_ACTION)
            person = _person(attendee.mailbox, status, optional=optional)
            if person is None:
                warnings.append("attendee-without-address")
                continue
            found.append(person)
    return tuple(found)


def _moment(value: Any) -> tuple[datetime, bool]:
    """(UTC instant, is a date) of a start or end value."""
    if isinstance(value, datetime):
        found = utc(value)
        assert found is not None
        return found, False
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc), True
    raise ValueError("no time")


def _text(body: Any) -> str:
    if body is None:
        return ""
    text = str(body)
    if type(body).__name__ == "HTMLBody":
        text = html.unescape(_TAG.sub(" ", text))
        text = re.sub(r"[ \t]+", " ", text)
    return text.strip()


def map_calendar_item(item: Any, provider_id: str, calendar_id: str) -> list[Event]:
    """The master (or single) event and its overrides; raises ``ValueError``
    when the item has no usable start."""
    warnings: list[str] = []
    zone = getattr(item, "_start_timezone", None)
    start, all_day = _moment(item.start)
    try:
        end, _ = _moment(item.end)
    except ValueError:
        end = start
        warnings.append("missing-end")
    if all_day:
        end += timedelta(days=1)  # exchangelib makes the end date inclusive
    if end < start:
        warnings.append("end-before-start")
        end = start
    organizer = None
    if item.organizer is not None:
        organizer = _person(item.organizer, ResponseStatus.ACCEPTED, organizer=True)
        if organizer is None:
            warnings.append("organizer-without-address")
    attendees = _attendees(item, warnings)
    recurrence, notes = recurrence_lines(item)
    warnings.extend(notes)
    description = _text(item.body)
    location = str(item.location or "")
    conference = find_meeting_link([location, description])
    for url in (item.meeting_workspace_url, item.net_show_url):
        if not conference and url:
            conference = find_meeting_link([str(url)]) or ""
    updated = utc(item.last_modified_time)
    uid = str(item.uid or f"{provider_id}@exchange")
    master = Event(
        provider_id=provider_id,
        uid=uid,
        start=start,
        end=end,
        title=str(item.subject or ""),
        description=description,
        location=location,
        all_day=all_day,
        timezone=str(getattr(zone, "key", "") or "") if zone is not None else "",
        recurrence=recurrence,
        status=EventStatus.CANCELLED if item.is_cancelled else EventStatus.CONFIRMED,
        organizer=organizer,
        attendees=attendees,
        conference_url=conference,
        calendar_id=calendar_id,
        sequence=max(0, int(item.appointment_sequence_number or 0)),
        updated=updated,
        warnings=tuple(warnings),
    )
    events = [master]
    if recurrence:
        for occurrence in getattr(item, "modified_occurrences", None) or []:
            original = utc(occurrence.original_start)
            moved_start = utc(occurrence.start)
            if original is None or moved_start is None:
                continue
            moved_end = utc(occurrence.end) or moved_start + (end - start)
            events.append(
                attrs.evolve(
                    master,
                    start=moved_start,
                    end=max(moved_end, moved_start),
                    recurrence_id=original,
                    recurrence=(),
                )
            )
    return events
