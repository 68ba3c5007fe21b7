"""Reading a provider's ``Retry-After`` answer, shared by the HTTP adapters."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

__all__ = ["retry_after_seconds"]


def retry_after_seconds(value: object) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an
    HTTP date); ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(str(value)))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
