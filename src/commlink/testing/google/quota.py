"""Per-user quota accounting of the local Google API server (sliding window)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["GMAIL_COSTS", "QuotaWindow"]

#: Quota units per Gmail method, as Google documents them.
GMAIL_COSTS = {
    "gmail.users.getProfile": 1,
    "gmail.users.labels.list": 1,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.messages.attachments.get": 5,
    "gmail.users.history.list": 2,
    "gmail.users.settings.sendAs.list": 1,
    "gmail.users.watch": 100,
    "gmail.users.stop": 50,
}


class QuotaWindow:
    """At most ``units_per_minute`` units within any ``window`` seconds
    (scaled: a 6 s window allows a tenth of the per-minute units).

    ``None`` means unlimited.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int]] = deque()
        self._used = 0
        self.units_per_minute: int | None = None
        self.window = 60.0
        self.total = 0
        self.first: float | None = None
        self.last: float | None = None

    @property
    def limit(self) -> float | None:
        if self.units_per_minute is None:
            return None
        return self.units_per_minute * self.window / 60.0

    def configure(self, units_per_minute: int | None, window: float = 60.0) -> None:
        with self._lock:
            self.units_per_minute = units_per_minute
            self.window = window
            self._spent.clear()
            self._used = 0

    def charge(self, units: int) -> float | None:
        """Spend ``units``; ``None`` when allowed, else seconds to wait."""
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - self.window:
                self._used -= self._spent.popleft()[1]
            limit = self.limit
            if limit is not None and self._used + units > limit:
                freed, wait = self._used, 0.0
                for at, spent in self._spent:
                    freed -= spent
                    wait = at + self.window - now
                    if freed + units <= limit:
                        break
                return max(wait, 0.001)
            self._spent.append((now, units))
            self._used += units
            self.total += units
            if self.first is None:
                self.first = now
            self.last = now
            return None


def retry_after_header(wait: float) -> str:
    """Whole seconds, as HTTP wants them (at least one)."""
    return str(max(1, math.ceil(wait)))
