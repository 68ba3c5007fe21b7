"""Time zones and date values of iCalendar data, for ``commlink.calendar.ical``.

TZIDs are resolved per calendar, never through a process-wide cache: the
same custom TZID may mean different offsets in two files. Order: an IANA
name, a Windows zone name, a vendor-prefixed IANA name
(``/freeassociation.sourceforge.net/Europe/Berlin``), then the file's own
VTIMEZONE (its ``X-LIC-LOCATION`` first). Whatever stays unknown falls back
to the calendar's ``X-WR-TIMEZONE`` or UTC.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

import attrs

__all__ = [
    "MAX_CALENDAR_ZONE_STEPS",
    "UTC",
    "Moment",
    "Zones",
    "iana_zone",
    "spend_zone_steps",
    "zone_allowance",
    "zone_refused",
]

UTC = timezone.utc

#: Steps (``rules.cost``) that building every custom VTIMEZONE of one parse
#: may take together (each zone at most ``library_zones.MAX_ZONE_STEPS``):
#: a file of many costly zones would otherwise add them up.
MAX_CALENDAR_ZONE_STEPS = 1_000_000
_ZONE_STEPS: ContextVar[_Allowance | None] = ContextVar("commlink_zone_steps", default=None)


@attrs.define
class _Allowance:
    """What one parse's zones may still take, and each costed zone's verdict
    (a zone is costed once: the quick reader and the library both ask)."""

    left: int
    refused: dict[int, bool] = attrs.Factory(dict)


@contextmanager
def zone_allowance() -> Iterator[None]:
    """One parse's ``MAX_CALENDAR_ZONE_STEPS``, for the zones built within."""
    token = _ZONE_STEPS.set(_Allowance(MAX_CALENDAR_ZONE_STEPS))
    try:
        yield
    finally:
        _ZONE_STEPS.reset(token)


def zone_refused(key: int) -> bool | None:
    """This parse's verdict on the zone ``key`` (its component's ``id``),
    ``None`` when it has not been costed."""
    allowance = _ZONE_STEPS.get()
    return None if allowance is None else allowance.refused.get(key)


def spend_zone_steps(key: int, steps: int) -> bool:
    """Whether a zone of ``steps`` fits in what the parse has left (spent and
    remembered if so); outside ``zone_allowance`` every zone fits."""
    allowance = _ZONE_STEPS.get()
    if allowance is None:
        return True
    fits = steps <= allowance.left
    if fits:
        allowance.left -= steps
    allowance.refused[key] = not fits
    return fits


#: IANA names that the Windows table maps elsewhere (``UTC`` to ``Etc/UTC``).
_REMAPPED = frozenset({"UTC"})


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@lru_cache(maxsize=1024)
def iana_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone called ``name`` (or its Windows name), else ``None``."""
    name = name.strip().strip('"').strip()
    if name not in _iana_names() or name in _REMAPPED:
        # the icalendar library's table, loaded only for names that need it
        from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

        name = WINDOWS_TO_OLSON.get(name, name)
        if name not in _iana_names():
            return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@attrs.frozen(slots=True)
class Moment:
    """A converted date or date-time: aware UTC, and where it came from."""

    value: datetime
    all_day: bool
    zone: str
    utc: bool = False


class Zones:
    """Resolves the TZIDs of one calendar.

    ``components`` maps TZID to the file's VTIMEZONE components;
    ``default_name`` is the calendar's ``X-WR-TIMEZONE`` (may be empty).
    """

    def __init__(self, components: Mapping[str, object], default_name: str = "") -> None:
        self._components = dict(components)
        self._cache: dict[str, tuple[tzinfo, str] | None] = {}
        default = iana_zone(default_name) if default_name else None
        self.default_tz: tzinfo = default if default is not None else UTC
        self.default_name: str = default.key if default is not None else ""

    def lookup(self, tzid: str) -> tuple[tzinfo, str] | None:
        """``(tzinfo, IANA name or "")`` for a TZID, ``None`` when unknown."""
        if tzid not in self._cache:
            self._cache[tzid] = self._resolve(tzid)
        return self._cache[tzid]

    def _resolve(self, tzid: str) -> tuple[tzinfo, str] | None:
        cleaned = tzid.strip().strip('"').strip().strip("/")
        zone = iana_zone(cleaned)
        if zone is None and tzid.strip().startswith("/"):
            parts = cleaned.split("/")
            for first in range(1, len(parts)):
                zone = iana_zone("/".join(parts[first:]))
                if zone is not None:
                    break
        if zone is not None:
            return zone, zone.key
        component = self._components.get(tzid) or self._components.get(cleaned)
        if component is None:
            return None
        from icalendar.timezone import tzp

        from .library_zones import zone_too_costly

        try:  # a quick-path VTIMEZONE is read by the library here, on first use
            location = getattr(component, "get", lambda _name: None)("X-LIC-LOCATION")
            zone = iana_zone(str(location)) if location else None
            if zone is not None:
                return zone, zone.key
            if zone_too_costly(component):
                return None
            custom = component.to_tz(tzp, lookup_tzid=False)  # type: ignore[attr-defined]
        except Exception:  # the VTIMEZONE itself is broken: treat the TZID as unknown
            return None
        return (custom, "") if isinstance(custom, tzinfo) else None

    def convert(self, value: object, tzid: str | None, warnings: list[str]) -> Moment | None:
        """Convert a DATE or DATE-TIME value to an aware UTC ``Moment``.

        A DATE becomes midnight UTC; a floating time uses the calendar's
        default zone. ``None`` for anything else (durations, periods, times
        out of range); notes go to ``warnings``.
        """
        try:
            return self._convert(value, tzid, warnings)
        except (OverflowError, ValueError):
            warnings.append("invalid-time")
            return None

    def _convert(self, value: object, tzid: str | None, warnings: list[str]) -> Moment | None:
        if type(value) is datetime and value.tzinfo is UTC and not tzid:  # most servers' form
            return Moment(value, all_day=False, zone="UTC", utc=True)
        if isinstance(value, tuple) and value:  # a PERIOD: its start counts
            value = value[0]
        if isinstance(value, datetime):
            if tzid:
                found = self.lookup(tzid)
                if found is None:
                    warnings.append(f"unknown-tzid:{tzid}")
                    found = (self.default_tz, self.default_name)
                local = value.replace(tzinfo=found[0])
                return Moment(local.astimezone(UTC), all_day=False, zone=found[1])
            if value.tzinfo is not None:
                is_utc = value.utcoffset() == timedelta(0)
                name = getattr(value.tzinfo, "key", "") or ("UTC" if is_utc else "")
                return Moment(value.astimezone(UTC), all_day=False, zone=name, utc=is_utc)
            if not self.default_name:
                warnings.append("floating-time")
            local = value.replace(tzinfo=self.default_tz)
            return Moment(local.astimezone(UTC), all_day=False, zone=self.default_name)
        if isinstance(value, date):
            midnight = datetime(value.year, value.month, value.day, tzinfo=UTC)
            return Moment(midnight, all_day=True, zone="")
        return None
