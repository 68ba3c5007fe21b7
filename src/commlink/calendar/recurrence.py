"""Expanding recurring calendar events into their occurrences (pure).

A series is a master event carrying iCalendar ``RRULE``/``EXRULE``/``RDATE``/
``EXDATE`` lines plus overrides (same ``uid`` with ``recurrence_id`` set).
``expand`` yields what a calendar shows inside a window: generated
occurrences, overrides in place of the occurrences they replace, and nothing
that was cancelled. Rules are evaluated in the master's time zone, so a
weekly 09:00 meeting stays at 09:00 local time across DST changes.

Rules come from whoever sent the invitation, so what walking them costs is
told first (``rules.cost``) and bounded: per series (``MAX_SERIES_STEPS``)
and, through ``expand_all``, per view (``MAX_VIEW_STEPS``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import attrs
from dateutil.rrule import rrule, rruleset, rrulestr  # type: ignore[import-untyped, unused-ignore]

from ..model import Event, EventStatus
from ..records import Window
from .rules import PER_OCCURRENCE, Rule, as_yearly, cost, parse_rule, start_near

__all__ = [
    "MAX_OCCURRENCES",
    "MAX_RULES",
    "MAX_SERIES_STEPS",
    "MAX_VIEW_STEPS",
    "Budget",
    "expand",
    "expand_all",
    "expansion_cost",
    "overlaps",
]

#: Occurrences generated per series at most before expansion stops (guards
#: against rules such as ``FREQ=SECONDLY`` that start years before a window).
MAX_OCCURRENCES = 50_000
#: Steps (``rules.cost``) one series may take to expand; a series whose rules
#: would take more shows as its first occurrence alone.
MAX_SERIES_STEPS = 1_500_000
#: Steps all the series of one view may take together (``expand_all`` spends
#: them cheapest series first).
MAX_VIEW_STEPS = 5_000_000
#: RRULE and EXRULE lines one series may have (a series has one, as RFC 5545
#: asks); a series with more shows as its first occurrence alone.
MAX_RULES = 16


@attrs.define
class Budget:
    """Steps left for expanding series, spent by ``expand``."""

    steps: int


_UNTIL = re.compile(r"(?i)(UNTIL=)([0-9TZ]+)")
_FREQS = frozenset({"YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"})
_WEEKDAY = re.compile(r"^[+-]?(?:[1-9]|[1-4][0-9]|5[0-3])?(?:MO|TU|WE|TH|FR|SA|SU)$")
#: Allowed ranges of numeric rule parts (``nonzero``: negative values count back).
_RANGES = {
    "INTERVAL": (1, 10_000, False),
    "COUNT": (1, 1_000_000, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYHOUR": (0, 23, False),
    "BYMINUTE": (0, 59, False),
    "BYSECOND": (0, 60, False),
    "BYSETPOS": (1, 366, True),
}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def overlaps(event: Event, window: Window) -> bool:
    """Whether an event intersects the half-open window ``[start, end)``."""
    return event.start < window.end and event.end > window.start


def expand(events: Sequence[Event], window: Window, budget: Budget | None = None) -> list[Event]:
    """The occurrences of one series (master + overrides) inside ``window``.

    Generated occurrences are copies of the master with ``start``/``end``
    moved and ``recurrence_id`` set to the occurrence start. An override
    replaces the occurrence with its ``recurrence_id``; cancelled events and
    overrides are left out. A master whose rules cannot be evaluated, or
    would take more than ``MAX_SERIES_STEPS`` (or what is left of
    ``budget``, which its expansion spends), is returned alone (when it
    overlaps the window). Sorted by start.
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
        starts = _occurrences(master, window, budget)
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


def expansion_cost(events: Sequence[Event], window: Window, limit: int = MAX_SERIES_STEPS) -> int:
    """Steps ``expand`` would take for this series in ``window``: its rules
    read (reading stops at ``limit``, and the series then costs more than
    ``MAX_SERIES_STEPS``), nothing expanded. A series whose rules cannot be
    used costs what reading them did."""
    return _series_cost(events, window, limit)[1]


def expand_all(series: Mapping[str, Sequence[Event]], window: Window) -> dict[str, list[Event]]:
    """``expand`` for many series (by any key), within one budget of
    ``MAX_VIEW_STEPS`` spent on the cheapest series first: a costly rule
    (say, from an outsider's invitation) shows alone instead of starving
    the rest. Reading the rules to compare them is bounded by as much."""
    reading = MAX_VIEW_STEPS
    costs: dict[str, int] = {}
    for key, events in series.items():
        read, costs[key] = _series_cost(events, window, min(MAX_SERIES_STEPS, reading))
        reading = max(reading - read, 0)
    budget = Budget(MAX_VIEW_STEPS)
    return {
        key: expand(series[key], window, budget)
        for key in sorted(series, key=lambda key: (costs[key], key))
    }


def _series_cost(events: Sequence[Event], window: Window, limit: int) -> tuple[int, int]:
    """Steps spent reading a series' rules, and what expanding it would take."""
    read = total = 0
    for master in events:
        if (
            master.recurrence_id is None
            and master.recurrence
            and master.status is not EventStatus.CANCELLED  # expand skips it
        ):
            plan = _plan(master, window, max(limit - total, 0))
            read += plan.read
            total += plan.cost
    return read, total


@attrs.frozen
class _Line:
    """One RRULE or EXRULE of a series, and where its walk starts."""

    name: str
    rule: Rule
    start: datetime


@attrs.frozen
class _Plan:
    """A series' rules read and costed. ``cost`` is what reading them took
    (``read``) and what walking them would; ``rules`` is ``None`` when a rule
    cannot be used, or reading stopped at the limit."""

    dtstart: datetime
    zone: tzinfo
    rules: tuple[_Line, ...] | None
    dates: tuple[tuple[str, str, tzinfo], ...]  # RDATE/EXDATE values, parsed when built
    read: int
    cost: int


#: Steps charged for reading a rule line, before it is read: per line, and
#: per character (the checks cost about a microsecond per value).
_PER_LINE = 50
_CHARS_PER_STEP = 2


def _plan(master: Event, window: Window, limit: int) -> _Plan:
    """A series' rules read and costed, reading stopped once ``limit`` is
    passed (never raises: a rule it cannot use leaves ``rules`` ``None``)."""
    parts = [p.strip() for text in master.recurrence for p in _unfolded(text).splitlines()]
    names = [p.partition(":")[0].split(";")[0].strip().upper() for p in parts]
    # an EXRULE may leave out every occurrence from some point on: dateutil
    # then walks every rule to its end (or year 9999) without returning
    excluding = "EXRULE" in names
    usable = sum(1 for n in names if n in ("RRULE", "EXRULE")) <= MAX_RULES
    last = datetime(MAXYEAR, 12, 31, tzinfo=timezone.utc) if excluding else window.end
    holes = sum(p.count(",") + 1 for p, n in zip(parts, names, strict=True) if n == "EXDATE")
    cap = 10**12 if excluding else MAX_OCCURRENCES + holes
    lines: list[_Line] = []
    dates: list[tuple[str, str, tzinfo]] = []
    read = walk = 0
    zone: tzinfo = timezone.utc
    dtstart = master.start
    try:
        zone = _zone(master)
        dtstart = master.start.astimezone(zone)
        earliest = window.start - max(master.end - master.start, timedelta(0))
        for part, name in zip(parts, names, strict=True) if usable else ():
            read += _PER_LINE + len(part) // _CHARS_PER_STEP
            if read + walk > limit:  # not read to the end: too costly to know
                return _Plan(dtstart, zone, None, (), read, MAX_SERIES_STEPS + 1)
            head, sep, value = part.partition(":")
            if not sep:
                continue
            params = head.split(";")[1:]
            if name in ("RRULE", "EXRULE"):
                rule = as_yearly(_check_rule(_fix_until(value, zone)))
                start = start_near(rule, dtstart, earliest)
                steps = cost(rule, start, last, cap)
                if steps is None:
                    raise ValueError(f"{name} finer than a day with day parts")
                walk += steps
                lines.append(_Line(name, rule, start))
            elif name in ("RDATE", "EXDATE"):
                tz = _param_zone(params) or zone
                items = value.split(",")
                walk += PER_OCCURRENCE * len(items)  # each parsed, then an occurrence or a hole
                dates.extend((name, item.split("/")[0].strip(), tz) for item in items)
    except Exception:  # any malformed rule: expand shows the master alone
        usable = False
    return _Plan(dtstart, zone, tuple(lines) if usable else None, tuple(dates), read, read + walk)


def _unfolded(text: str) -> str:
    return text.replace("\r\n ", "")


def _occurrences(master: Event, window: Window, budget: Budget | None) -> list[datetime] | None:
    """Occurrence starts overlapping the window, or None if the rules are
    unusable or cost more than is left to spend."""
    limit = MAX_SERIES_STEPS if budget is None else min(MAX_SERIES_STEPS, budget.steps)
    plan = _plan(master, window, limit)
    usable = plan.rules is not None and plan.cost <= limit
    if budget is not None:
        budget.steps -= plan.cost if usable else min(plan.read, budget.steps)
    if not usable:
        return None
    try:
        rules = _ruleset(plan)
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


def _ruleset(plan: _Plan) -> rruleset:
    rules = rruleset()
    rules.rdate(plan.dtstart)  # RFC 5545: DTSTART is always the first instance
    for line in plan.rules or ():
        if not _ever_matches(line.rule.text, line.start):
            raise ValueError(f"{line.name} never matches")
        rule = rrulestr(line.rule.text, dtstart=line.start)
        if not isinstance(rule, rrule):
            raise ValueError(f"unsupported {line.name}")
        (rules.rrule if line.name == "RRULE" else rules.exrule)(rule)
    for name, text, tz in plan.dates:
        moment = _parse_moment(text, plan.dtstart, tz)
        (rules.rdate if name == "RDATE" else rules.exdate)(moment)
    return rules


def _check_rule(value: str) -> Rule:
    """The rule's parts, refusing rules dateutil would loop on forever looking
    for an occurrence (zero interval, out-of-range parts, month days no
    month has)."""
    rule = parse_rule(value)
    parts = rule.parts
    if parts.get("FREQ", ("",))[0] not in _FREQS or len(parts["FREQ"]) != 1:
        raise ValueError("missing or unknown FREQ")
    numbers: dict[str, list[int]] = {}
    for key, (low, high, signed) in _RANGES.items():
        if key not in parts:
            continue
        numbers[key] = [int(v) for v in parts[key]]
        for number in numbers[key]:
            size = abs(number) if signed else number
            if not low <= size <= high or (signed and number == 0):
                raise ValueError(f"{key}={number} is out of range")
    if not all(_WEEKDAY.match(day) for day in parts.get("BYDAY", ("MO",))):
        raise ValueError("bad BYDAY")
    freq = parts["FREQ"][0]
    months = set(numbers.get("BYMONTH", range(1, 13)))
    days = [d for d in numbers.get("BYMONTHDAY", [1]) if d > 0]
    if days and not any(d <= _MONTH_DAYS[m - 1] for m in months for d in days):
        raise ValueError("BYMONTHDAY never falls in BYMONTH")
    if "BYYEARDAY" in numbers and not months & _yearday_months(numbers["BYYEARDAY"]):
        raise ValueError("BYYEARDAY never falls in BYMONTH")
    if "BYWEEKNO" in numbers and not months & _weekno_months(numbers["BYWEEKNO"]):
        raise ValueError("BYWEEKNO never falls in BYMONTH")
    if "BYSETPOS" in numbers and freq not in ("YEARLY", "MONTHLY"):
        size = 1  # most instances one period can hold
        for key in _SET_EXPANDERS[freq]:
            size *= len(parts.get(key, ("",)))
        if all(abs(pos) > size for pos in numbers["BYSETPOS"]):
            raise ValueError("BYSETPOS beyond the set of each period")
    nth = [d for d in parts.get("BYDAY", []) if d[:-2]]
    in_month = freq == "MONTHLY" or (freq == "YEARLY" and "BYMONTH" in numbers)
    if (
        in_month
        and nth
        and len(nth) == len(parts["BYDAY"])
        and not set(numbers.get("BYMONTHDAY", [])) & _nth_weekday_days(nth)
        and "BYMONTHDAY" in numbers
    ):
        raise ValueError("BYMONTHDAY never is the BYDAY weekday")
    return rule


def _ever_matches(value: str, dtstart: datetime) -> bool:
    """Whether a rule has any occurrence, in bounded time.

    dateutil searches period by period until year 9999 for a rule that never
    matches. The Gregorian calendar repeats every 400 years, so the rule is
    probed from DTSTART moved by whole multiples of ``400 * INTERVAL`` years
    (keeping weekdays, leap days and the interval's phase) to the last such
    cycle before 9999: the search then ends within one cycle.
    """
    parts = [p for p in value.split(";") if p.split("=")[0].strip().upper() not in _BOUNDS]
    interval = next(
        (int(p.split("=")[1]) for p in parts if p.split("=")[0].strip().upper() == "INTERVAL"), 1
    )
    cycle = 400 * interval
    spare = MAXYEAR - 1 - dtstart.year - cycle
    start = dtstart
    if spare > 0:
        start = dtstart.replace(year=dtstart.year + spare // cycle * cycle)
    probe = rrulestr(";".join(parts), dtstart=start)
    return next(iter(probe), None) is not None


_BOUNDS = frozenset({"COUNT", "UNTIL"})

_SET_EXPANDERS = {
    "WEEKLY": ("BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"),
    "DAILY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
    "HOURLY": ("BYMINUTE", "BYSECOND"),
    "MINUTELY": ("BYSECOND",),
    "SECONDLY": (),
}


def _yearday_months(yeardays: list[int]) -> set[int]:
    return set().union(*map(_yearday_month, yeardays))


@lru_cache(maxsize=1024)
def _yearday_month(day: int) -> frozenset[int]:
    found: set[int] = set()
    for year in (2023, 2024):  # a common and a leap year
        first, last = date(year, 1, 1), date(year, 12, 31)
        length = (last - first).days + 1
        if abs(day) <= length:
            moment = first + timedelta(day - 1) if day > 0 else last + timedelta(day + 1)
            found.add(moment.month)
    return frozenset(found)


def _weekno_months(weeknos: list[int]) -> set[int]:
    """Months a week number may touch (a generous superset)."""
    return set().union(*map(_weekno_month, weeknos))


@lru_cache(maxsize=256)
def _weekno_month(week: int) -> frozenset[int]:
    first = (week - 1) * 7 - 7 if week > 0 else 365 + week * 7 - 7
    return frozenset(
        (date(2024, 1, 1) + timedelta(min(max(offset, 0), 365))).month
        for offset in range(first, first + 22)
    )


def _nth_weekday_days(nth: list[str]) -> set[int]:
    """Month days (positive and negative) the n-th weekday of a month can fall on."""
    return set().union(*(_nth_days(int(spec[:-2])) for spec in nth))


@lru_cache(maxsize=256)
def _nth_days(n: int) -> frozenset[int]:
    found: set[int] = set()
    for length in (28, 29, 30, 31):
        span = (
            range((n - 1) * 7 + 1, n * 7 + 1)
            if n > 0
            else range(length + 7 * n + 1, length + 7 * (n + 1) + 1)
        )
        for day in span:
            if 1 <= day <= length:
                found.update((day, day - length - 1))
    return frozenset(found)


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
