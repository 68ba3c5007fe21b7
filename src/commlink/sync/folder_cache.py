"""``FolderCache``: channels' folder lists, reused for a while.

A quiet pass then costs only the change checks. Engines share one cache
when they are created per task (one cache per worker process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from ..model import Folder

__all__ = ["FolderCache"]


class FolderCache:
    """Folder lists by channel id, each with the time it was listed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lists: dict[str, tuple[float, tuple[Folder, ...]]] = {}
        self._lock = threading.Lock()

    def get(self, channel_id: str, ttl: timedelta) -> list[Folder] | None:
        """The channel's folders if listed less than ``ttl`` ago."""
        with self._lock:
            entry = self._lists.get(channel_id)
        if entry is None or self._clock() - entry[0] >= ttl.total_seconds():
            return None
        return list(entry[1])

    def put(self, channel_id: str, folders: Sequence[Folder]) -> None:
        with self._lock:
            self._lists[channel_id] = (self._clock(), tuple(folders))

    def forget(self, channel_id: str) -> None:
        """List the channel's folders afresh next time (a failure, a vanished folder)."""
        with self._lock:
            self._lists.pop(channel_id, None)
