"""A quick reader of ordinary iCalendar data, for ``commlink.calendar.ical``.

``read`` unfolds the content lines (RFC 5545 section 3.1), splits each into
name, parameters (quoted values included) and value, and turns the VEVENT
properties the event mapper reads into small values that behave like the
icalendar library's: ``Text`` (TEXT unescaped; ``X-`` values verbatim),
``When`` (a DATE or DATE-TIME, UTC or floating, its TZID left in the
parameters), ``Dates`` (RDATE/EXDATE lists), ``Rule`` (an RRULE in the
library's canonical form) and ``int`` (SEQUENCE). No object tree is built.

It accepts only what it reads exactly as the icalendar library does, and
raises ``Unusual`` for anything else (a malformed line, an unknown
component, parameter escapes, a VALUE type it does not know, a date it
cannot read, an event without a UID, ...): the caller then parses the data
with the library. Property tests compare both paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

__all__ = ["Block", "Dates", "LazyTimezone", "Props", "Rule", "Text", "Unusual", "When", "read"]


class Unusual(Exception):
    """The data needs the full parser."""


Params = Mapping[str, "str | list[str]"]
_NO_PARAMS: Params = {}


class Text(str):
    """A TEXT, URI or CAL-ADDRESS value (or an ``X-`` property's) with its parameters."""

    __slots__ = ("params",)
    params: Params


class When:
    """A DATE, DATE-TIME or DURATION value: ``dt`` is a ``date``, a naive or
    UTC ``datetime``, or a ``timedelta``."""

    __slots__ = ("dt", "params")

    def __init__(self, dt: date | timedelta, params: Params) -> None:
        self.dt = dt
        self.params = params


class Dates:
    """An RDATE or EXDATE line: its dates in ``dts``."""

    __slots__ = ("dts", "params")

    def __init__(self, dts: list[When], params: Params) -> None:
        self.dts = dts
        self.params = params


class Rule:
    """An RRULE: ``text`` in canonical part order, ``parts`` by name."""

    __slots__ = ("params", "parts", "text")

    def __init__(self, text: str, parts: dict[str, list[Any]], params: Params) -> None:
        self.text = text
        self.parts = parts
        self.params = params

    def __contains__(self, key: object) -> bool:
        return key in self.parts

    def get(self, key: str, default: list[Any]) -> list[Any]:
        return self.parts.get(key, default)


class LazyTimezone:
    """A VTIMEZONE kept as text; the icalendar library reads it only when a
    TZID is neither an IANA nor a Windows zone name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._component: Any = None

    def parsed(self) -> Any:
        """The VTIMEZONE as the library reads it (read once)."""
        if self._component is None:
            import icalendar

            self._component = icalendar.Timezone.from_ical(self.text)
        return self._component

    def get(self, name: str) -> object:
        return self.parsed().get(name)

    def to_tz(self, tzp: object, lookup_tzid: bool = False) -> object:
        return self.parsed().to_tz(tzp, lookup_tzid=lookup_tzid)


class Props(dict[str, Any]):
    """The properties of one component: a value, or a list of values when
    the property repeats (as the library's components hold them)."""


class Block:
    """One top-level component: a VCALENDAR (its properties, events and time
    zones) or a bare VEVENT (``name`` tells)."""

    __slots__ = ("events", "name", "props", "timezones")

    def __init__(self, name: str) -> None:
        self.name = name
        self.props = Props()
        self.events: list[Props] = []
        self.timezones: dict[str, LazyTimezone] = {}


# -- lines -----------------------------------------------------------------------

_UNFOLD = re.compile(r"(?<!\n)\n+[ \t]")
_HEAD = re.compile(r"([A-Za-z0-9-]+)([:;])")
_PVALUE = r'(?:"[^"\x00-\x08\x0a-\x1f\x7f]*"|[^";:,\x00-\x08\x0a-\x1f\x7f]*)'
_PARAM = re.compile(rf"([A-Za-z0-9-]+)=({_PVALUE}(?:,{_PVALUE})*)([;:])")
_ESCAPED = re.compile(r"\\([\\,;:nN])")


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return "\n" if char in "nN" else char


def _text(value: str) -> str:
    return _ESCAPED.sub(_unescape, value) if "\\" in value else value


def _lines(text: str) -> list[str]:
    if "\r" in text:
        if text.count("\r") != text.count("\r\n"):
            raise Unusual("a lone carriage return")
        text = text.replace("\r\n", "\n")
    if "\n " in text or "\n\t" in text:  # every fold has one: most data has none
        text = _UNFOLD.sub("", text)
    return [line for line in text.split("\n") if line]


def _params(line: str, start: int) -> tuple[dict[str, str | list[str]], int]:
    """Parameters from ``start`` (just after the name's ``;``) up to the value's
    ``:``; returns them and where the value starts."""
    params: dict[str, str | list[str]] = {}
    pos = start
    while True:
        found = _PARAM.match(line, pos)
        if found is None:
            raise Unusual("parameters")
        raw = found.group(2)
        if "^" in raw or "\\" in raw:
            raise Unusual("escaped parameter")
        values = _split_values(raw) if "," in raw else [raw]
        cleaned: list[str] = []
        for value in values:
            if value[:1] == '"':
                cleaned.append(value[1:-1])
            else:
                if value[:1] in (" ", "\t") or value[-1:] in (" ", "\t"):
                    raise Unusual("space around a parameter")
                cleaned.append(value)
        params[found.group(1).upper()] = cleaned[0] if len(cleaned) == 1 else cleaned
        pos = found.end()
        if found.group(3) == ":":
            return params, pos


def _split_values(raw: str) -> list[str]:
    """Comma-separated parameter values, commas inside quotes kept."""
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for char in raw:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


# -- values ----------------------------------------------------------------------

_UTC = timezone.utc
_DATETIME = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(Z?)\Z")
_DURATION = re.compile(
    r"([-+]?)P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?\Z"
)
_OFFSET = re.compile(r"[+-]([01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?\Z")
_INTEGER = re.compile(r"\d{1,9}\Z")
_SIGNED = re.compile(r"[+-]?\d{1,6}\Z")
_WEEKDAY = re.compile(r"[+-]?\d{0,2}(?:SU|MO|TU|WE|TH|FR|SA)\Z")
_FREQS = frozenset({"SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
#: RRULE parts in the order the icalendar library writes them.
_RULE_ORDER = (
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
)  # fmt: skip
_RULE_INTS = frozenset(
    {"COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYMONTHDAY", "BYYEARDAY"}
    | {"BYWEEKNO", "BYSETPOS", "BYMONTH"}
)
_SINGLE_RULE_PARTS = frozenset({"FREQ", "UNTIL", "COUNT", "INTERVAL", "WKST"})


def _moment(value: str, params: Params) -> date:
    """A DATE or DATE-TIME as the library reads it; ``Unusual`` otherwise."""
    if len(value) == 8 and value.isdigit() and value.isascii():
        if "TZID" in params:  # the library may turn it into a zoned midnight
            raise Unusual("a date with a TZID")
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            raise Unusual("an invalid date") from None
    if not value.isascii() or _DATETIME.match(value) is None:
        raise Unusual("not a date or date-time")
    try:  # YYYYMMDDTHHMMSS[Z], as the pattern just said
        return datetime(
            int(value[:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=_UTC if len(value) == 16 else None,
        )
    except ValueError:
        raise Unusual("an invalid date-time") from None


def _duration(value: str) -> timedelta:
    found = _DURATION.match(value)
    if found is None:
        raise Unusual("not a duration")
    sign, weeks, days, hours, minutes, seconds = found.groups()
    span = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    return -span if sign == "-" else span


def _rule(value: str) -> tuple[str, dict[str, list[Any]]]:
    """An RRULE in the library's canonical text, and its parts."""
    parts: dict[str, list[Any]] = {}
    texts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, raw = item.partition("=")
        key = key.upper()
        if not sep or "=" in raw or key not in _RULE_ORDER or key in parts or not raw:
            raise Unusual("rule part")
        items = raw.upper().split(",")
        if key in _SINGLE_RULE_PARTS and len(items) != 1:
            raise Unusual("rule part")
        if key == "FREQ":
            if items[0] not in _FREQS:
                raise Unusual("FREQ")
            parts[key], texts[key] = items, items[0]
        elif key == "UNTIL":
            if not raw.isascii() or raw != raw.upper():
                raise Unusual("UNTIL")
            parts[key], texts[key] = [_moment(raw, _NO_PARAMS)], raw
        elif key in _RULE_INTS:
            if not all(_SIGNED.match(v) for v in items):
                raise Unusual(key)
            if key == "BYMONTH" and not all(v.isdigit() and 1 <= int(v) <= 12 for v in items):
                raise Unusual(key)
            numbers = [int(v) for v in items]
            parts[key], texts[key] = numbers, ",".join(str(n) for n in numbers)
        else:  # BYDAY, WKST
            if not all(_WEEKDAY.match(v) for v in items):
                raise Unusual(key)
            parts[key], texts[key] = items, ",".join(items)
    text = ";".join(f"{key}={texts[key]}" for key in _RULE_ORDER if key in texts)
    return text, parts


# -- properties ------------------------------------------------------------------

#: VEVENT properties the event mapper reads, by kind (``X-`` ones too: verbatim).
_TEXT = frozenset({"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "STATUS"})
_URI = frozenset({"URL", "CONFERENCE"})
_ADDRESS = frozenset({"ORGANIZER", "ATTENDEE"})
_WHEN = frozenset({"DTSTART", "DTEND", "RECURRENCE-ID", "LAST-MODIFIED", "DTSTAMP"})
_LISTS = frozenset({"RDATE", "EXDATE"})
_KIND_VALUE = {**dict.fromkeys(_TEXT, "TEXT"), **dict.fromkeys(_URI, "URI")}
_KIND_VALUE.update(dict.fromkeys(_ADDRESS, "CAL-ADDRESS"))
#: Properties whose values the library reads as something that can fail to
#: parse; outside a VEVENT a failure there fails the whole calendar.
_DATE_TYPED = frozenset(
    {"COMPLETED", "DTEND", "DUE", "DTSTART", "DURATION", "RECURRENCE-ID", "TRIGGER"}
    | {"ACKNOWLEDGED", "CREATED", "DTSTAMP", "LAST-MODIFIED", "REFRESH-INTERVAL"}
)
_INT_TYPED = frozenset({"PERCENT-COMPLETE", "PRIORITY", "REPEAT", "SEQUENCE"})
_OTHER_TYPED = frozenset({"FREEBUSY", "GEO", "CATEGORIES", "ADR", "N", "ORG", "IMAGE", "EXRULE"})


def _event_value(name: str, value: str, params: Params) -> object:
    """The value of a VEVENT property the mapper reads."""
    kind = params.get("VALUE")
    if isinstance(kind, list):
        raise Unusual("VALUE")
    if name[:2] == "X-":
        if kind is None:
            return _with(Text(value), params)
        if kind in ("TEXT", "URI"):
            return _with(Text(_text(value)), params)
        raise Unusual("VALUE")
    if name in _KIND_VALUE:
        if kind is not None and kind != _KIND_VALUE[name]:
            raise Unusual("VALUE")
        return _with(Text(_text(value)), params)
    if name in _WHEN:
        if kind is not None and kind not in ("DATE", "DATE-TIME"):
            raise Unusual("VALUE")
        _check_tzid(params)
        return When(_moment(value, params), params)
    if name == "DURATION":
        if kind is not None and kind != "DURATION":
            raise Unusual("VALUE")
        return When(_duration(value), params)
    if kind is not None and name != "RDATE" and name != "EXDATE":
        raise Unusual("VALUE")
    if name == "SEQUENCE":
        if _INTEGER.match(value) is None:
            raise Unusual("SEQUENCE")
        return int(value)
    if name == "RRULE":
        text, parts = _rule(value)
        return Rule(text, parts, params)
    # RDATE, EXDATE: dates and date-times (a PERIOD needs the library)
    if kind is not None and kind not in ("DATE", "DATE-TIME"):
        raise Unusual("VALUE")
    _check_tzid(params)
    return Dates([When(_moment(item, params), params) for item in value.split(",")], params)


def _check_tzid(params: Params) -> None:
    tzid = params.get("TZID")
    # a globally unique TZID makes the library warn, depending on its cache
    if isinstance(tzid, list) or (tzid is not None and tzid.strip()[:1] == "/"):
        raise Unusual("TZID")


def _with(text: Text, params: Params) -> Text:
    text.params = params
    return text


def _check(name: str, value: str, params: Params) -> None:
    """``Unusual`` unless the library surely reads this property of a
    component other than VEVENT (where a failure would fail the calendar)."""
    if "VALUE" in params or "TZID" in params:
        raise Unusual("VALUE")
    if name[:2] == "X-":
        return
    if name in _DATE_TYPED:
        if value[:1] in "+-P":
            _duration(value)
        else:
            _moment(value, params)
    elif name in _INT_TYPED:
        if _SIGNED.match(value) is None:
            raise Unusual(name)
    elif name in ("TZOFFSETFROM", "TZOFFSETTO"):
        if _OFFSET.match(value) is None:
            raise Unusual(name)
    elif name == "RRULE":
        _rule(value)
    elif name in _LISTS:
        for item in value.split(","):
            _moment(item, params)
    elif name in _OTHER_TYPED:
        raise Unusual(name)


def _add(props: Props, name: str, value: object) -> None:
    """Repeated properties become lists, as in the library."""
    held = props.get(name)
    if held is None:
        props[name] = value
    elif isinstance(held, list):
        held.append(value)
    else:
        props[name] = [held, value]


#: Components allowed inside each one (the top level is ``""``).
_CHILDREN = {
    "": ("VCALENDAR", "VEVENT"),
    "VCALENDAR": ("VEVENT", "VTIMEZONE"),
    "VEVENT": ("VALARM",),
    "VTIMEZONE": ("STANDARD", "DAYLIGHT"),
    "VALARM": (),
    "STANDARD": (),
    "DAYLIGHT": (),
}


def read(text: str) -> list[Block]:
    """The top-level components of iCalendar ``text``; ``Unusual`` when the
    data needs the full parser."""
    blocks: list[Block] = []
    stack: list[str] = []
    block: Block | None = None
    event: Props | None = None
    zone_lines: list[str] | None = None
    for line in _lines(text):
        head = _HEAD.match(line)
        if head is None:
            raise Unusual("line")
        name, sep = head.groups()
        name = name.upper()
        end = head.end()
        inner = stack[-1] if stack else ""
        if name == "BEGIN" or name == "END":
            if sep != ":":
                raise Unusual("line")
            component = line[end:].upper()
            if name == "BEGIN":
                if component not in _CHILDREN[inner]:
                    raise Unusual(f"component {component[:20]}")
                stack.append(component)
                if not inner:
                    block = Block(component)
                    blocks.append(block)
                if component == "VEVENT":
                    event = Props()
                elif component == "VTIMEZONE":
                    zone_lines = []
            else:
                if not stack or stack.pop() != component:
                    raise Unusual("unbalanced END")
                if component == "VEVENT" and event is not None and block is not None:
                    _close_event(event)
                    block.events.append(event)
                    event = None
                elif component == "VTIMEZONE" and zone_lines is not None and block is not None:
                    zone_lines.append(line)
                    _close_zone(block, zone_lines)
                    zone_lines = None
            if zone_lines is not None:
                zone_lines.append(line)
            continue
        if not inner:
            raise Unusual("a property outside any component")
        if zone_lines is not None:
            zone_lines.append(line)
        if inner == "VEVENT" and event is not None:
            if name[:2] != "X-" and name not in _READ:
                continue  # the library tolerates any value here, and nothing reads it
            params, start = _params(line, end) if sep == ";" else ({}, end)
            _add(event, name, _event_value(name, line[start:], params))
            continue
        params, start = _params(line, end) if sep == ";" else ({}, end)
        value = line[start:]
        _check(name, value, params)
        if inner == "VCALENDAR" and block is not None:
            if name == "METHOD":
                _add(block.props, name, _with(Text(_text(value)), params))
            elif name[:2] == "X-":
                _add(block.props, name, _with(Text(value), params))
    if stack:
        raise Unusual("a component without END")
    return blocks


_READ = _TEXT | _URI | _ADDRESS | _WHEN | _LISTS | {"DURATION", "SEQUENCE", "RRULE"}


def _close_event(event: Props) -> None:
    uid = event.get("UID")
    if isinstance(uid, list):
        uid = uid[0]
    if not isinstance(uid, str) or not uid.strip():
        raise Unusual("an event without a UID")


def _close_zone(block: Block, lines: list[str]) -> None:
    tzids = [line for line in lines if line[:5].upper() == "TZID:" or line[:5].upper() == "TZID;"]
    if not tzids:
        return
    head = _HEAD.match(tzids[0])
    assert head is not None
    start = _params(tzids[0], head.end())[1] if head.group(2) == ";" else head.end()
    tzid = _text(tzids[0][start:])
    if tzid:
        block.timezones[tzid] = LazyTimezone("\r\n".join(lines) + "\r\n")
