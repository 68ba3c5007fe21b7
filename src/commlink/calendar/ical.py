"""iCalendar data to ``model.Event`` values (pure: no IO).

``parse_calendar`` maps every VEVENT to one ``Event``: a single event, a
series master (its RRULE/RDATE/EXDATE kept as text lines) or an overridden
instance (``recurrence_id`` set). It never raises: what it cannot map is
skipped or defaulted, with a warning.

Warnings are short codes: ``code:uid`` about one event (``missing-dtstart``,
``invalid-event``, ``missing-uid``, ``id-repaired`` and ``id-hashed`` (a UID
with controls removed, or one over 512 bytes replaced by a stable hash, see
``mime.storable.storable_id``), ``invalid-rrule``, ``floating-time``,
``invalid-time``, ``truncated-description``, ``end-before-start``,
``invalid-sequence``, ``invalid-property``), ``unknown-tzid:<tzid>``, and
calendar-wide ``parse-error``, ``charset-fallback``, ``library-warning``.
``parse-error:<error>`` says the icalendar library refused the data as a
whole; it was then read part by part (``isolation``), and only the events
it still refused are missing (``invalid-event:<uid>``).
``CalendarParse.warnings`` holds each once; each ``Event.warnings`` its own.

Ordinary data is read by ``lines`` (no object tree); anything it does not
read exactly as the icalendar library would goes to the library instead.

Times in the result are aware UTC datetimes; ``Event.timezone`` names the
IANA zone of the start when it is known. RDATE/EXDATE lines are rewritten in
UTC (``EXDATE:20240117T090000Z``) or as dates (``EXDATE;VALUE=DATE:20240117``).
"""

from __future__ import annotations

import hashlib
import math
import warnings as _warnings
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from dateutil.rrule import rrulestr

from ..addresses import parse_address
from ..mime.storable import storable_id
from ..model import Address, Attendee, Event, EventStatus, ResponseStatus
from . import lines
from .links import find_meeting_link, first_http_url
from .storable import MAX_DESCRIPTION_BYTES, cap_text
from .zones import Moment, Zones, zone_allowance

__all__ = ["DESCRIPTION_LIMIT", "SKIP_CODES", "CalendarParse", "parse_calendar", "skipped_uids"]

#: Longest description kept, in UTF-8 bytes; longer ones are truncated.
DESCRIPTION_LIMIT = MAX_DESCRIPTION_BYTES

#: Warning codes that mean a VEVENT produced no ``Event``.
SKIP_CODES = ("missing-dtstart", "invalid-event")

_STATUS = {
    "CONFIRMED": EventStatus.CONFIRMED,
    "TENTATIVE": EventStatus.TENTATIVE,
    "CANCELLED": EventStatus.CANCELLED,
    "CANCELED": EventStatus.CANCELLED,
}
_PARTSTAT = {
    "NEEDS-ACTION": ResponseStatus.NEEDS_ACTION,
    "ACCEPTED": ResponseStatus.ACCEPTED,
    "DECLINED": ResponseStatus.DECLINED,
    "TENTATIVE": ResponseStatus.TENTATIVE,
    "DELEGATED": ResponseStatus.DELEGATED,
}
# Properties that hold a meeting link outright, best first.
_LINK_PROPERTIES = (
    "X-GOOGLE-CONFERENCE",
    "CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGCONFLINK",
)
# Longest content line handed to icalendar, whose line parser is slow on
# megabytes; anything longer is cut before parsing (descriptions are cut to
# DESCRIPTION_LIMIT afterwards anyway).
_LINE_LIMIT = 256 * 1024
_DEFAULT_TIMED = timedelta(hours=1)
_ONE_DAY = timedelta(days=1)


@attrs.frozen(slots=True)
class CalendarParse:
    """The events of an iCalendar object, what went wrong, and its METHOD."""

    events: tuple[Event, ...] = ()
    warnings: tuple[str, ...] = ()
    method: str = ""


def skipped_uids(parse: CalendarParse) -> dict[str, str]:
    """UIDs of VEVENTs that produced no event, with the warning code why."""
    skipped: dict[str, str] = {}
    for warning in parse.warnings:
        code, _, uid = warning.partition(":")
        if code in SKIP_CODES:
            skipped.setdefault(uid, code)
    return skipped


def parse_calendar(
    data: bytes | str, *, provider_id: str = "", calendar_id: str = "", quick: bool = True
) -> CalendarParse:
    """Map iCalendar data (one or more VCALENDARs, or bare VEVENTs) to events.

    Never raises; see the module docstring for the warnings it reports.
    ``quick=False`` skips the quick reader and parses with the icalendar
    library alone (the two give the same result).
    """
    notes: list[str] = []
    try:
        text = _bound_lines(_decode(data, notes))
        if quick:
            attempt = list(notes)
            try:
                with zone_allowance():
                    return _map(_quick_calendars(text), provider_id, calendar_id, attempt)
            except lines.Unusual:
                pass
        with zone_allowance():
            return _map(_library_calendars(text, notes), provider_id, calendar_id, notes)
    except Exception as exc:  # the contract is to never raise
        notes.append(f"parse-error:{type(exc).__name__}")
        return CalendarParse(warnings=tuple(notes))


# (METHOD, zones, VEVENTs) of each top-level component
_Calendars = list[tuple[str, Zones, Sequence[Any]]]


def _quick_calendars(text: str) -> _Calendars:
    found: _Calendars = []
    for block in lines.read(text):
        if block.name == "VCALENDAR":
            method = _text(block.props, "METHOD").strip().upper()
            zones = Zones(block.timezones, _text(block.props, "X-WR-TIMEZONE"))
            found.append((method, zones, block.events))
        else:
            found.append(("", Zones({}), block.events))
    return found


def _library_calendars(text: str, notes: list[str]) -> _Calendars:
    import icalendar

    from .isolation import isolated_calendars
    from .library_zones import guard_zone_lookups

    def read(data: str) -> list[Any]:
        return list(icalendar.Calendar.from_ical(data, multiple=True))

    guard_zone_lookups()
    # icalendar warns (e.g. about guessed TZIDs); hosts and tests may turn
    # warnings into errors, so they are recorded as notes instead.
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            parsed = [(c, c.walk("VEVENT")) for c in read(text)]
        except Exception as exc:  # one broken part: read the rest part by part
            notes.append(f"parse-error:{type(exc).__name__}")
            parsed = isolated_calendars(text, read, notes)
    notes.extend(f"library-warning:{w.category.__name__}" for w in caught)
    found: _Calendars = []
    for component, vevents in parsed:
        if component is not None and component.name == "VCALENDAR":
            method = _text(component, "METHOD").strip().upper()
            timezones = {
                _text(tz, "TZID"): tz for tz in component.walk("VTIMEZONE") if _text(tz, "TZID")
            }
            zones = Zones(timezones, _text(component, "X-WR-TIMEZONE"))
            found.append((method, zones, vevents))
        else:
            found.append(("", Zones({}), vevents))
    return found


def _map(
    calendars: _Calendars, provider_id: str, calendar_id: str, notes: list[str]
) -> CalendarParse:
    method = ""
    events: list[Event] = []
    for cal_method, zones, vevents in calendars:
        method = method or cal_method
        mapper = _Mapper(zones, cal_method, provider_id, calendar_id)
        for vevent in vevents:
            event = mapper.map(vevent, notes)
            if event is not None:
                events.append(event)
    return CalendarParse(events=tuple(events), warnings=tuple(dict.fromkeys(notes)), method=method)


def _decode(data: bytes | str, notes: list[str]) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        notes.append("charset-fallback:latin-1")
        return data.decode("latin-1")


def _bound_lines(text: str) -> str:
    """Cut every unfolded content line to ``_LINE_LIMIT`` characters."""
    if len(text) <= _LINE_LIMIT:
        return text
    kept: list[str] = []
    length = 0
    for line in text.split("\n"):
        if line[:1] in (" ", "\t"):
            room = _LINE_LIMIT - length
            if room <= 0:
                continue
        else:
            length = 0
            room = _LINE_LIMIT
        if len(line) > room:
            line = line[:room].rstrip("\\")
        length += len(line)
        kept.append(line)
    return "\n".join(kept)


def _values(component: Any, name: str) -> list[object]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(component: Any, name: str) -> object | None:
    value = component.get(name)
    if isinstance(value, list):
        return value[0] if value else None
    return value  # type: ignore[no-any-return]


def _text(component: Any, name: str) -> str:
    value = _first(component, name)
    return str(value) if isinstance(value, str) else ""


def _param(value: object, key: str) -> str:
    params = getattr(value, "params", None)
    if not params:
        return ""
    found = params.get(key)
    if isinstance(found, list):
        found = found[0] if found else ""
    return str(found) if found else ""


_QUICK_VALUES = (lines.Text, lines.When, lines.Dates, lines.Rule, int)


def _broken(value: object) -> bool:
    """Whether the icalendar library kept this value as unparsable."""
    if isinstance(value, _QUICK_VALUES):
        return False
    import icalendar  # loaded already: the value came from it

    return isinstance(value, icalendar.vBroken)


def _dt(value: object) -> object | None:
    """The parsed value of a date/time property, ``None`` when broken."""
    if isinstance(value, lines.When):
        return value.dt
    if value is None or _broken(value):
        return None
    return getattr(value, "dt", None)


def _synthetic_uid(component: Any) -> str:
    if isinstance(component, lines.Props):  # the library hashes the values' text
        raise lines.Unusual("an event without a usable UID")
    parts = []
    for name in ("DTSTART", "SUMMARY", "ORGANIZER"):
        value = _first(component, name)
        to_ical = getattr(value, "to_ical", None)
        try:
            raw = to_ical() if callable(to_ical) else b""
        except Exception:  # a broken value still identifies the event by its text
            raw = str(value).encode("utf-8", "replace")
        parts.append(raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "replace"))
    digest = hashlib.sha256(b"\x00".join(parts)).hexdigest()[:32]
    return f"synthetic-{digest}"


class _Mapper:
    """Maps the VEVENTs of one VCALENDAR."""

    def __init__(self, zones: Zones, method: str, provider_id: str, calendar_id: str) -> None:
        self.zones = zones
        self.method = method
        self.provider_id = provider_id
        self.calendar_id = calendar_id

    def map(self, vevent: Any, notes: list[str]) -> Event | None:
        # A UID is a shared key, indexed by stores: no NUL or other controls,
        # and a long one hashed (stably, so copies of one event still match).
        uid, repairs = storable_id(_text(vevent, "UID").strip())
        local: list[str] = [f"{code}:{uid}" for code in repairs]
        if not uid:
            uid = _synthetic_uid(vevent)
            local.append(f"missing-uid:{uid}")
        try:
            event = self._map(vevent, uid, local)
        except lines.Unusual:
            raise
        except Exception:  # one bad VEVENT must not cost the others
            notes.extend(local)
            notes.append(f"invalid-event:{uid}")
            return None
        notes.extend(local)
        if event is None:
            notes.append(f"missing-dtstart:{uid}")
        return event

    def _moment(self, value: object, uid: str, local: list[str]) -> Moment | None:
        found: list[str] = []
        moment = self.zones.convert(_dt(value), _param(value, "TZID") or None, found)
        for note in found:
            entry = note if ":" in note else f"{note}:{uid}"
            if entry not in local:
                local.append(entry)
        return moment

    def _map(self, vevent: Any, uid: str, local: list[str]) -> Event | None:
        start = self._moment(_first(vevent, "DTSTART"), uid, local)
        if start is None:
            return None
        end = self._end(vevent, start, uid, local)
        zone = start.zone
        if start.utc and self.zones.default_name:
            zone = self.zones.default_name
        description, cut = cap_text(_text(vevent, "DESCRIPTION"))
        if cut:
            local.append(f"truncated-description:{uid}")
        recurrence_id = None
        rid_value = _first(vevent, "RECURRENCE-ID")
        if rid_value is not None:
            rid = self._moment(rid_value, uid, local)
            recurrence_id = rid.value if rid is not None else None
        recurrence = () if rid_value is not None else self._recurrence(vevent, start, uid, local)
        status = _STATUS.get(_text(vevent, "STATUS").strip().upper(), EventStatus.CONFIRMED)
        if self.method == "CANCEL":
            status = EventStatus.CANCELLED
        updated = None
        for name in ("LAST-MODIFIED", "DTSTAMP"):
            stamp = _first(vevent, name)
            moment = self._moment(stamp, uid, local) if stamp is not None else None
            if moment is not None:
                updated = moment.value
                break
        title, _ = cap_text(_text(vevent, "SUMMARY"))
        location, _ = cap_text(_text(vevent, "LOCATION"))
        return Event(
            provider_id=self.provider_id,
            uid=uid,
            start=start.value,
            end=end,
            title=title.strip(),
            description=description,
            location=location.strip(),
            all_day=start.all_day,
            timezone=zone,
            recurrence_id=recurrence_id,
            recurrence=recurrence,
            status=status,
            organizer=self._organizer(vevent),
            attendees=self._attendees(vevent),
            conference_url=_conference_url(vevent),
            calendar_id=self.calendar_id,
            sequence=self._sequence(vevent, uid, local),
            updated=updated,
            warnings=tuple(local),
        )

    def _end(self, vevent: Any, start: Moment, uid: str, local: list[str]) -> datetime:
        default = _ONE_DAY if start.all_day else _DEFAULT_TIMED
        end_value = _first(vevent, "DTEND")
        duration = _dt(_first(vevent, "DURATION"))
        end: datetime | None = None
        if end_value is not None:
            moment = self._moment(end_value, uid, local)
            if moment is not None and (moment.all_day or not start.all_day):
                end = moment.value
        elif isinstance(duration, timedelta):
            if start.all_day:
                end = start.value + _ONE_DAY * max(1, math.ceil(duration / _ONE_DAY))
            else:
                end = start.value + duration
        if end is None:
            return start.value + default
        if end < start.value or (start.all_day and end == start.value):
            local.append(f"end-before-start:{uid}")
            return start.value + default
        return end

    def _recurrence(
        self, vevent: Any, start: Moment, uid: str, local: list[str]
    ) -> tuple[str, ...]:
        rules: list[str] = []
        for rule in _values(vevent, "RRULE"):
            text = _valid_rrule(rule, start)
            if text:
                rules.append(f"RRULE:{text}")
            else:
                local.append(f"invalid-rrule:{uid}")
        rdates = self._date_lines(vevent, "RDATE", uid, local)
        if not rules and not rdates:
            return ()
        return (*rules, *rdates, *self._date_lines(vevent, "EXDATE", uid, local))

    def _date_lines(self, vevent: Any, name: str, uid: str, local: list[str]) -> list[str]:
        result: list[str] = []
        for prop in _values(vevent, name):
            dts = getattr(prop, "dts", None) if not _broken(prop) else None
            if dts is None:
                local.append(f"invalid-property:{uid}:{name}")
                continue
            tzid = _param(prop, "TZID") or None
            times: list[str] = []
            days: list[str] = []
            for item in dts:
                found: list[str] = []
                moment = self.zones.convert(_dt(item), tzid, found)
                if moment is None:
                    continue
                if moment.all_day:
                    days.append(moment.value.strftime("%Y%m%d"))
                else:
                    times.append(moment.value.strftime("%Y%m%dT%H%M%SZ"))
            if times:
                result.append(f"{name}:{','.join(times)}")
            if days:
                result.append(f"{name};VALUE=DATE:{','.join(days)}")
        return result

    def _sequence(self, vevent: Any, uid: str, local: list[str]) -> int:
        value = _first(vevent, "SEQUENCE")
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool):
            return max(0, int(value))
        local.append(f"invalid-sequence:{uid}")
        return 0

    def _organizer(self, vevent: Any) -> Attendee | None:
        value = _first(vevent, "ORGANIZER")
        if value is None:
            return None
        return Attendee(_address(value), status=ResponseStatus.ACCEPTED, organizer=True)

    def _attendees(self, vevent: Any) -> tuple[Attendee, ...]:
        found: list[Attendee] = []
        seen: set[str] = set()
        for value in _values(vevent, "ATTENDEE"):
            address = _address(value)
            if address.valid:
                if address.key in seen:
                    continue
                seen.add(address.key)
            status = _PARTSTAT.get(_param(value, "PARTSTAT").upper(), ResponseStatus.NEEDS_ACTION)
            optional = _param(value, "ROLE").upper() in {"OPT-PARTICIPANT", "NON-PARTICIPANT"}
            found.append(Attendee(address, status=status, optional=optional))
        return tuple(found)


def _address(value: object) -> Address:
    """An ATTENDEE/ORGANIZER address (``mailto:``, or the EMAIL parameter)."""
    name = _param(value, "CN").strip().strip('"')
    text = str(value).strip() if isinstance(value, str) else ""
    email = _param(value, "EMAIL").strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    elif email:
        text = email
    address = parse_address(text, name)
    if not address.valid and email and email != text:
        address = parse_address(email, name)
    return address


def _strings(values: Iterable[object]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield str(value)


def _conference_url(vevent: Any) -> str:
    for name in _LINK_PROPERTIES:
        for text in _strings(_values(vevent, name)):
            url = first_http_url(text)
            if url:
                return url
    named = ("URL", "LOCATION", "DESCRIPTION")
    texts = [text for name in named for text in _strings(_values(vevent, name))]
    extra = [
        text
        for key in vevent
        if str(key).upper().startswith("X-")
        for text in _strings(_values(vevent, str(key)))
    ]
    link = find_meeting_link([*texts, *extra])
    if link:
        return link
    for text in _strings(_values(vevent, "URL")):
        url = first_http_url(text)
        if url:
            return url
    return ""


def _valid_rrule(rule: object, start: Moment) -> str:
    """The RRULE text when it is usable, else ``""``."""
    if isinstance(rule, lines.Rule):
        text = rule.text
        parts: Any = rule
    else:
        import icalendar

        if isinstance(rule, icalendar.vBroken) or not isinstance(rule, icalendar.vRecur):
            return ""
        try:
            text = str(rule.to_ical().decode("utf-8"))  # type: ignore[no-untyped-call]
        except Exception:  # an unserialisable rule is as good as invalid
            return ""
        parts = rule
    if "FREQ" not in parts:
        return ""
    interval = parts.get("INTERVAL", [1])
    count = parts.get("COUNT", [1])
    if not all(isinstance(v, int) and v >= 1 for v in (*interval, *count)):
        return ""
    naive = start.value.replace(tzinfo=None)
    for dtstart in (start.value, naive):
        try:
            rrulestr(text, dtstart=dtstart)
        except Exception:  # dateutil rejects it in its own ways
            continue
        return text
    return ""
