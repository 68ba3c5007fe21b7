"""Recurrence rules read into their parts, and what expanding one costs (pure).

dateutil walks a rule period by period (a year, a month, a week, a day, or
one interval step of a finer rule) and returns to its caller only at an
occurrence. A rule whose occurrences are rare, whose periods are costly to
filter, or whose finer steps are filtered out one by one keeps it inside a
single ``next()`` for minutes: ``FREQ=SECONDLY;INTERVAL=7;BYHOUR=23;
BYMINUTE=59;BYSECOND=58`` took 9 s to show six years, and with
``BYMONTH=2;BYMONTHDAY=29;BYDAY=MO`` added it ran for over ten minutes.
Any sender can put such a rule in an invitation, and it is expanded each
time a record's meeting history is shown.

``cost`` bounds that walk before dateutil starts it, in steps (periods
walked, days filtered, finer steps taken, occurrences made; weighed so
that a step takes about a microsecond on a 2-core machine). ``start_near``
moves a rule's start forward by whole cycles of the calendar (400 years,
which repeat weekdays and leap days), of its weeks, or of a finer rule's
steps, so that the walk begins near the window instead of at a start
chosen decades or centuries before it. ``as_yearly`` writes a daily rule
tied to months as the yearly rule with the same occurrences, which
dateutil walks a year at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import MAXYEAR, datetime, timedelta, timezone
from functools import lru_cache

import attrs

__all__ = [
    "PER_OCCURRENCE",
    "Rule",
    "as_yearly",
    "cost",
    "may_be_rare",
    "parse_rule",
    "start_near",
    "until",
]

#: Seconds in one step of a rule finer than a day.
FINE = {"HOURLY": 3600, "MINUTELY": 60, "SECONDLY": 1}
#: Days dateutil filters per period of a daily or coarser rule, and the
#: period's mean length in days.
_PERIOD = {
    "YEARLY": (366, 365.2425),
    "MONTHLY": (31, 30.437),
    "WEEKLY": (7, 7.0),
    "DAILY": (1, 1.0),
}
#: Parts that choose days: a rule finer than a day with any of them is not
#: expanded (see ``cost``).
DAY_PARTS = frozenset(
    {"BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYSETPOS", "BYEASTER"}
)
#: Parts that tie a daily or weekly rule to the calendar's months and years.
_YEAR_PARTS = frozenset({"BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYEASTER"})
#: Parts that pick times of day out of a finer rule's steps.
_TIME_FILTERS = {
    "HOURLY": ("BYHOUR",),
    "MINUTELY": ("BYHOUR", "BYMINUTE"),
    "SECONDLY": ("BYHOUR", "BYMINUTE", "BYSECOND"),
}
_GREGORIAN_YEARS = 400
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_SECONDS = 86_400
#: Steps (about a microsecond each on a 2-core machine, measured) that
#: dateutil takes per period walked, per rebuild of its month and year
#: tables, per day filtered, per BYSETPOS position and day of a period, per
#: step of a finer rule walked one by one, and per occurrence made (an
#: occurrence is also copied into an ``Event``).
_PER_PERIOD = 2.0
_PER_REBUILD = 8.0
_PER_DAY = 0.1
_PER_POSITION = 1.0
_PER_POSITION_DAY = 0.05
_PER_STEP = 0.5
PER_OCCURRENCE = 24


@attrs.frozen
class Rule:
    """An RRULE or EXRULE value: ``parts`` by upper-case name, values
    upper-cased and without repeats; ``text`` the same rule written back."""

    parts: Mapping[str, tuple[str, ...]]

    @property
    def freq(self) -> str:
        return self.parts.get("FREQ", ("",))[0]

    @property
    def interval(self) -> int:
        return int(self.parts.get("INTERVAL", ("1",))[0])

    @property
    def text(self) -> str:
        return ";".join(f"{key}={','.join(values)}" for key, values in self.parts.items())

    def numbers(self, key: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.parts.get(key, ()))

    def times(self) -> int:
        """How many times of day each day of a daily or coarser rule holds."""
        size = 1
        for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
            size *= len(self.parts.get(key, ("",)))
        return size


@lru_cache(maxsize=1024)
def parse_rule(value: str) -> Rule:
    """The parts of a rule's text; ``ValueError`` for a part named twice.
    Values are not checked here (``recurrence`` does that)."""
    parts: dict[str, tuple[str, ...]] = {}
    for item in value.split(";"):
        key, _, val = item.partition("=")
        key = key.strip().upper()
        if key in parts:
            raise ValueError(f"repeated rule part {key}")
        parts[key] = tuple(dict.fromkeys(v.strip().upper() for v in val.split(",")))
    return Rule(parts)


def as_yearly(rule: Rule) -> Rule:
    """A daily rule tied to months or years (``INTERVAL`` 1, no BYSETPOS)
    written as the yearly rule with the same occurrences: every day that
    passes its parts, in order. dateutil walks it a year per step instead of
    a day, and a rare one (29 February on a Monday) needs 400 steps to
    cycle instead of 146,097."""
    parts = rule.parts
    if (
        rule.freq != "DAILY"
        or rule.interval != 1
        or "BYSETPOS" in parts
        or not _YEAR_PARTS & parts.keys()
    ):
        return rule
    yearly = {key: values for key, values in parts.items() if key != "INTERVAL"}
    yearly["FREQ"] = ("YEARLY",)
    if "BYDAY" in parts:  # a daily rule ignores ordinals; a yearly one would not
        yearly["BYDAY"] = tuple(dict.fromkeys(day[-2:] for day in parts["BYDAY"]))
    if not parts.keys() & {"BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYEASTER"}:
        # a yearly rule without a day part keeps only DTSTART's day of the month
        yearly["BYMONTHDAY"] = tuple(str(day) for day in range(1, 32))
    return Rule(yearly)


def start_near(rule: Rule, dtstart: datetime, earliest: datetime) -> datetime:
    """A start from which ``rule`` makes the same occurrences after
    ``earliest`` as from ``dtstart``, as late as whole cycles allow.

    A rule with a COUNT counts from its own start and is never moved. A
    daily or coarser rule moves by ``400 * INTERVAL`` years (the Gregorian
    calendar repeats every 400 years, and its periods keep their phase),
    or, when only weekdays and times of day choose its occurrences, by
    whole weeks of its phase; a finer one without day parts by its step,
    or by the least common multiple of its step and a day when it keeps
    only some times of day.
    Wall-clock time is kept, as dateutil walks wall-clock time.
    """
    if "COUNT" in rule.parts or earliest <= dtstart:
        return dtstart
    unit = FINE.get(rule.freq)
    if rule.freq in ("DAILY", "WEEKLY") and not _YEAR_PARTS & rule.parts.keys():
        # only weekdays and times of day: the pattern repeats every few weeks
        days = rule.interval * (7 if rule.freq == "WEEKLY" else 1)
        return _moved(dtstart, earliest, math.lcm(days, 7) * _DAY_SECONDS)
    if unit is None:
        cycle = _GREGORIAN_YEARS * rule.interval
        cycles = (earliest.year - dtstart.year - 1) // cycle
        year = dtstart.year + cycles * cycle
        return dtstart.replace(year=year) if cycles > 0 and year < MAXYEAR else dtstart
    if DAY_PARTS & rule.parts.keys():
        return dtstart
    step = unit * rule.interval
    filtered = any(key in rule.parts for key in _TIME_FILTERS[rule.freq])
    return _moved(dtstart, earliest, math.lcm(step, _DAY_SECONDS) if filtered else step)


def _moved(dtstart: datetime, earliest: datetime, cycle: int) -> datetime:
    """``dtstart`` moved by the most whole ``cycle`` seconds of wall-clock
    time that keep it at or before ``earliest``."""

    def by(cycles: int) -> datetime:
        moved = dtstart.replace(tzinfo=None) + timedelta(seconds=cycles * cycle)
        return moved.replace(tzinfo=dtstart.tzinfo)

    # the zone's offset may differ at the two ends: correct by the difference
    cycles = int((earliest - dtstart).total_seconds() // cycle)
    for _ in range(3):
        if cycles <= 0:
            return dtstart
        gap = (earliest - by(cycles)).total_seconds()
        if 0 <= gap < cycle:
            break
        cycles += math.floor(gap / cycle)
    while cycles > 0 and by(cycles) > earliest:
        cycles -= 1
    return by(cycles) if cycles > 0 else dtstart


def cost(rule: Rule, start: datetime, last: datetime, cap: int) -> int | None:
    """The most steps dateutil takes to make ``rule``'s occurrences from
    ``start`` until its first one at or after ``last`` (or ``cap`` of them),
    including the check that the rule ever matches; ``None`` for a rule
    finer than a day with day parts, whose walk has no useful bound.
    """
    stop = min(last, until(rule) or last)
    span = max((stop - start).total_seconds(), 0.0)
    unit = FINE.get(rule.freq)
    if unit is not None:
        if DAY_PARTS & rule.parts.keys():
            return None
        return _fine_cost(rule, unit, span, cap)
    days, mean = _PERIOD[rule.freq]
    setpos = len(rule.parts.get("BYSETPOS", ()))
    per_period = (
        _PER_PERIOD
        + _PER_REBUILD * min(1.0, mean * rule.interval / 28)
        + days * _PER_DAY
        + setpos * (_PER_POSITION + days * _PER_POSITION_DAY)
    )
    gap = _gap(rule, start)
    periods = span / _DAY_SECONDS / (mean * rule.interval) + 1
    if gap <= 1:  # every period has an occurrence: the cap ends the walk too
        periods = min(periods, cap + 1)
    if "COUNT" in rule.parts:  # dateutil stops at the COUNT-th occurrence
        periods = min(periods, (int(rule.parts["COUNT"][0]) + 1) * gap)
    made = min(cap, periods * _most_set(rule)) + rule.times()
    # the first occurrence is at most one gap away: the ever-matches probe
    # walks that far, and the walk that far past ``last``
    return int((periods + 2 * gap) * per_period + made * PER_OCCURRENCE)


def may_be_rare(rule: Rule, start: datetime) -> bool:
    """Whether a daily or coarser rule's occurrences may be a whole 400-year
    cycle apart, or never come: dateutil then walks on to the year 9999
    past any UNTIL (it checks UNTIL only at an occurrence)."""
    return rule.freq in _PERIOD and _gap(rule, start) >= _cycle(rule)


def _cycle(rule: Rule) -> float:
    return _GREGORIAN_YEARS * 365.2425 / _PERIOD[rule.freq][1]


def _fine_cost(rule: Rule, unit: int, span: float, cap: int) -> int:
    step = unit * rule.interval
    cycle = math.lcm(step, _DAY_SECONDS) // step  # steps before times of day repeat
    timeset = 1
    for key in {"HOURLY": ("BYMINUTE", "BYSECOND"), "MINUTELY": ("BYSECOND",)}.get(rule.freq, ()):
        timeset *= len(rule.parts.get(key, ("",)))
    steps = span / step + 1
    filtered = any(key in rule.parts for key in _TIME_FILTERS[rule.freq])
    per_occurrence = _PER_PERIOD + timeset * PER_OCCURRENCE
    if not filtered:  # every step is an occurrence
        return int(min(steps, cap / timeset + 1) * per_occurrence)
    # each step is taken one by one, to the first kept time past the window
    # (at most one cycle away), and the probe walks up to a cycle too
    walked = steps + 2 * cycle
    return int(walked * _PER_STEP + min(walked, cap + 1) * per_occurrence)


def _gap(rule: Rule, start: datetime) -> float:
    """Periods (of ``INTERVAL`` each) between occurrences, at most: one when
    every period holds one, else a bound from the parts that thin them out,
    else a whole 400-year cycle."""
    cycle = _cycle(rule)
    parts = rule.parts
    if parts.keys() & {"BYWEEKNO", "BYYEARDAY", "BYEASTER"}:
        return cycle
    freq = rule.freq
    minimum = _least_set(rule, start)
    if minimum == 0:
        return cycle
    if "BYSETPOS" in parts and all(abs(p) > minimum for p in rule.numbers("BYSETPOS")):
        return cycle
    if freq == "YEARLY":
        return 1
    days = _PERIOD[freq][0]
    if freq == "MONTHLY":
        if "BYMONTH" not in parts:
            return 1
        step = math.gcd(rule.interval, 12)  # active months: the start's, every ``step``
        reachable = {(start.month - 1 + k * step) % 12 + 1 for k in range(12 // step)}
        return 12 if reachable & set(rule.numbers("BYMONTH")) else cycle
    if "BYMONTH" in parts:
        return 366 / days
    if "BYMONTHDAY" in parts:
        return 31 / days
    return 7 if freq == "DAILY" and "BYDAY" in parts else 1


def _most_set(rule: Rule) -> int:
    """Occurrences one period of a daily or coarser rule can hold, at most."""
    parts = rule.parts
    days = _PERIOD[rule.freq][0]
    months = len(parts.get("BYMONTH", ())) or (12 if rule.freq == "YEARLY" else 1)
    byday = parts.get("BYDAY", ())
    weekdays = len({d[-2:] for d in byday})
    limits = [days]
    if rule.freq == "YEARLY":
        if "BYMONTHDAY" in parts:
            limits.append(len(parts["BYMONTHDAY"]) * months)
        if "BYYEARDAY" in parts:
            limits.append(len(parts["BYYEARDAY"]))
        if "BYEASTER" in parts:
            limits.append(len(parts["BYEASTER"]))
        if "BYWEEKNO" in parts:
            limits.append(7 * len(parts["BYWEEKNO"]))
        if byday:
            per = months if "BYMONTH" in parts else 1
            limits.append(sum(per if len(d) > 2 else 5 * months for d in byday))
        if not parts.keys() & {"BYMONTHDAY", "BYYEARDAY", "BYEASTER", "BYWEEKNO", "BYDAY"}:
            limits.append(len(parts.get("BYMONTH", ())) or 1)  # DTSTART's day of each month
    elif rule.freq == "MONTHLY":
        if "BYMONTHDAY" in parts:
            limits.append(len(parts["BYMONTHDAY"]))
        if byday:
            limits.append(sum(1 if len(d) > 2 else 5 for d in byday))
        if not parts.keys() & {"BYMONTHDAY", "BYYEARDAY", "BYEASTER", "BYWEEKNO", "BYDAY"}:
            limits.append(1)
    elif rule.freq == "WEEKLY" and not parts.keys() & {"BYMONTHDAY", "BYYEARDAY", "BYEASTER"}:
        limits.append(weekdays or 1)
    if "BYSETPOS" in parts:
        return min(len(parts["BYSETPOS"]), min(limits) * rule.times())
    return min(limits) * rule.times()


def _least_set(rule: Rule, start: datetime) -> int:
    """Occurrences every period of a month or longer holds at least (``0``
    when some period may hold none); for a week or a day, its fixed size."""
    parts = rule.parts
    times = rule.times()
    freq = rule.freq
    byday = parts.get("BYDAY", ())
    plain = [d for d in byday if len(d) == 2]
    nth = [int(d[:-2]) for d in byday if len(d) > 2]
    mdays = [d for d in rule.numbers("BYMONTHDAY") if -28 <= d <= 28]
    if freq in ("WEEKLY", "DAILY"):
        if "BYMONTHDAY" in parts and (byday or not mdays or rule.interval > 1):
            return 0  # a weekday on a day of the month, or active days that may miss it
        if "BYMONTH" in parts and rule.interval > 1:
            return 0  # active days or weeks that may miss the months for long
        weekdays = {d[-2:] for d in byday}  # ordinals mean nothing here
        if freq == "DAILY" and weekdays and rule.interval % 7 == 0:
            return times if _WEEKDAYS[start.weekday()] in weekdays else 0
        return (len(weekdays) if freq == "WEEKLY" and weekdays else 1) * times
    if byday and "BYMONTHDAY" in parts:
        return 0  # a weekday on a day of the month: not every month has it
    if byday:
        per_month = freq == "MONTHLY" or "BYMONTH" in parts
        limit = 4 if per_month else 52
        if plain and nth:
            # dateutil keeps a day only when it is both: one of the plain
            # weekdays and one of the n-th weekdays ("FR,2FR" is the second
            # Friday; "TH,2FR" never matches)
            both = [d for d in byday if len(d) > 2 and d[-2:] in plain]
            return sum(1 for d in both if abs(int(d[:-2])) <= limit) * times
        return (4 * len(plain) + sum(1 for n in nth if abs(n) <= limit)) * times
    if "BYMONTHDAY" in parts:
        return len(mdays) * times
    if freq == "YEARLY" and start.month == 2 and start.day == 29 and "BYMONTH" not in parts:
        return 0
    return (1 if start.day <= 28 else 0) * times


def until(rule: Rule) -> datetime | None:
    """The rule's UNTIL as a UTC moment (a floating or date-only one read as
    UTC: ``recurrence`` rewrites it in the series' zone first), ``None``
    when it has none or it cannot be read."""
    value = rule.parts.get("UNTIL", ("",))[0]
    for shape in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(value, shape).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None
