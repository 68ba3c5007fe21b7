"""Time zone lookups for the icalendar library that find nothing instead of failing.

icalendar looks each TZID up with ``zoneinfo.ZoneInfo`` and counts on it to
raise ``ZoneInfoNotFoundError`` for an unknown name. For some names
``zoneinfo`` raises ``OSError`` instead: a name too long for a file name,
or (before Python 3.12) a folder of the zone database such as ``Europe``.
The library then gives up on the whole calendar, so one event with such a
TZID lost every event beside it. The same happened for a VTIMEZONE that
cannot be built (a STANDARD or DAYLIGHT part without DTSTART, say): the
library builds every custom VTIMEZONE as it reads it. ``guard_zone_lookups``
gives icalendar a provider that reads those names as unknown and such a
VTIMEZONE as no zone, as the quick reader does (``unknown-tzid:<name>``).
"""

from __future__ import annotations

from datetime import date, datetime, timezone, tzinfo
from typing import Any

from icalendar import Timezone
from icalendar.timezone import tzp
from icalendar.timezone.zoneinfo import ZONEINFO

from .rules import PER_OCCURRENCE, cost, may_be_rare, parse_rule, until
from .zones import spend_zone_steps, zone_refused

__all__ = ["MAX_ZONE_STEPS", "guard_zone_lookups", "zone_too_costly"]

#: Steps (``rules.cost``) building one VTIMEZONE may take: the library lists
#: every transition of its rules (to 2038 when a rule has no end) before the
#: zone exists. An Outlook zone, whose rules start in 1601, takes about
#: 31,000; ``FREQ=MINUTELY`` from 2020 took 16 s and 200 MB to build.
MAX_ZONE_STEPS = 250_000
_LIBRARY_END = datetime(2038, 12, 31, tzinfo=timezone.utc)
_NO_END = datetime(9999, 12, 31, tzinfo=timezone.utc)

# A TZID that zoneinfo cannot open as a file on any platform (over 255 bytes).
_UNOPENABLE = "x" * 256


class _GuardedZoneinfo(ZONEINFO):
    """icalendar's zoneinfo provider: a name ``zoneinfo`` fails to open is
    unknown, and a VTIMEZONE that cannot be built is no zone."""

    def timezone(self, name: str) -> tzinfo | None:
        try:
            return super().timezone(name)
        except OSError:
            return None

    # The library's callers take None: the TZ cache keeps it as "not found",
    # and commlink's own zone lookup reads it as an unknown TZID.
    def create_timezone(self, tz: Timezone) -> tzinfo | None:  # type: ignore[override]
        if zone_too_costly(tz):
            return None
        try:
            return super().create_timezone(tz)
        except Exception:  # any error of the builder (dateutil) on sender data
            return None


def guard_zone_lookups() -> None:
    """Make icalendar's zoneinfo lookups find no zone where they would raise.

    Changes nothing when the host chose another provider (``pytz`` or its
    own) or when the lookups are guarded already; a host that switches back
    to ``zoneinfo`` later is guarded again at the next parse.
    """
    if tzp.name != "zoneinfo":
        return
    try:
        tzp.timezone(_UNOPENABLE)
    except OSError:
        tzp.use(_GuardedZoneinfo())


def zone_too_costly(component: Any) -> bool:
    """Whether building a VTIMEZONE would take more than ``MAX_ZONE_STEPS``,
    or than the parse has left of ``zones.MAX_CALENDAR_ZONE_STEPS`` (or
    cannot be told): its STANDARD and DAYLIGHT rules are costed as the
    library walks them, every transition listed. Such a zone is no zone."""
    total = 0
    try:
        parsed = getattr(component, "parsed", None)  # the quick reader's LazyTimezone
        zone = parsed() if parsed else component
        known = zone_refused(id(zone))
        if known is not None:
            return known
        for part in zone.subcomponents:
            recur = part.get("RRULE")
            if recur is not None:
                text = recur.to_ical().decode()
                rule = parse_rule(text)
                if sum(map(len, rule.parts.values())) != text.count(",") + text.count(";") + 1:
                    return True  # repeated values: dateutil would walk each
                start = part.decoded("DTSTART")
                if not isinstance(start, date):
                    return True
                if not isinstance(start, datetime):
                    start = datetime(start.year, start.month, start.day)
                start = start.replace(tzinfo=timezone.utc)
                if may_be_rare(rule, start):
                    last = _NO_END  # walked on past any end to the next occurrence
                elif "UNTIL" in rule.parts:
                    last = until(rule) or _NO_END
                else:
                    last = _NO_END if "COUNT" in rule.parts else _LIBRARY_END
                count = int(rule.parts.get("COUNT", ("1000000000",))[0])
                steps = cost(rule, start, last, count)
                if steps is None:
                    return True
                total += steps
            for dates in _as_list(part.get("RDATE")):
                total += PER_OCCURRENCE * len(getattr(dates, "dts", ()))
            if total > MAX_ZONE_STEPS:
                return True
    except Exception:  # a part the library could not read either
        return True
    return not spend_zone_steps(id(zone), total)


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
