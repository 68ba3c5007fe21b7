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

from datetime import tzinfo

from icalendar import Timezone
from icalendar.timezone import tzp
from icalendar.timezone.zoneinfo import ZONEINFO

__all__ = ["guard_zone_lookups"]

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
