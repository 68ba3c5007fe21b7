"""Keeping a channel's lease while a sync step runs."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from ..errors import CommlinkError
from ..ports import Store

__all__ = ["Heartbeat", "LeaseLost"]

log = logging.getLogger("commlink.sync")


class LeaseLost(CommlinkError):
    """Another runner took the channel over; this one stops quietly."""


class Heartbeat:
    """Renews a channel's lease every third of its time-to-live while a step
    runs, so a short lease outlives slow batches and a dead holder (a crash,
    a killed process) frees the channel within one ``lease_ttl``."""

    def __init__(self, store: Store, channel_id: str, holder: str, ttl: timedelta) -> None:
        self._store, self._channel_id, self._holder, self._ttl = store, channel_id, holder, ttl
        self._every = max(ttl.total_seconds() / 3, 0.01)
        self._done = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{channel_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self._every):
            try:
                if not self._store.acquire_lease(self._channel_id, self._holder, self._ttl):
                    self.lost = True
                    return
            except Exception:  # a store hiccup: the next beat tries again
                log.warning("could not renew a lease", exc_info=True)
