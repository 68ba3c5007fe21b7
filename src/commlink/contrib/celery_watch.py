"""The watch process for Celery deployments: push connections for many
channels in one process, and a ``sync_channel`` task queued for the
channel that changed.

Workers only run tasks; something has to hold the IMAP NOTIFY/IDLE and EWS
streaming connections between them. ``CeleryWatch`` does, with the same
``WatchHub`` the ``Runner`` uses (one watcher per channel, restarted with
back-off, none for ``FAILED_AUTH`` channels). A change calls
``CommlinkTasks.enqueue``, which takes the channel's queue marker first,
so a channel is never queued twice. A change seen while its channel is
queued or running (the marker is taken) stays pending and is queued again
once the marker is free: the running sync may have looked before the
change arrived. Run one watch process per set of channels (``commlink
watch``, or ``serve_watch`` from a host's own process).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from ..sync.watch_hub import PeriodicDuty, WatchHub, watchable

if TYPE_CHECKING:
    from .celery import CommlinkTasks

__all__ = ["CeleryWatch", "WakeQueue", "serve_watch"]

log = logging.getLogger("commlink.celery")


class WakeQueue:
    """Queues a sync for each woken channel, keeping those it could not queue
    yet (queued or running already) until ``flush()`` can."""

    def __init__(self, tasks: CommlinkTasks) -> None:
        self.tasks = tasks
        self.queued = 0
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pending(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._pending)

    def wake(self, channel_id: str) -> None:
        """A change in the channel: queue its sync now, or as soon as it may be."""
        with self._lock:
            self._pending.add(channel_id)
            self._try(channel_id)

    def flush(self) -> None:
        """Queue the pending channels whose marker is free by now."""
        with self._lock:
            for channel_id in sorted(self._pending):
                self._try(channel_id)

    def _try(self, channel_id: str) -> None:
        try:
            channel = self.tasks.resources().store.channel(channel_id)
            if channel is None or self.tasks.enqueue(channel):
                self._pending.discard(channel_id)
                self.queued += channel is not None
        except Exception:  # the broker or the store is away: tried again at the next flush
            log.warning("could not queue %s; trying again", channel_id, exc_info=True)


class CeleryWatch:
    """Holds push connections for every channel of the tasks' store and queues
    syncs; ``serve()`` runs until ``stop()``.

    Every ``tick`` it brings the watched set up to date with the store
    (new, removed, changed and ``FAILED_AUTH`` channels), queues pending
    wake-ups and runs ``duties`` that are due (``hub.duties`` takes more).
    """

    def __init__(
        self,
        tasks: CommlinkTasks,
        *,
        tick: timedelta = timedelta(seconds=2),
        max_watch_threads: int = 5,
        wake_on_start: bool = True,
        duties: Sequence[PeriodicDuty] = (),
        stop: threading.Event | None = None,
    ) -> None:
        self.tasks = tasks
        self.tick = tick
        self.wakes = WakeQueue(tasks)
        pending = PeriodicDuty("queue pending wake-ups", tick, self.wakes.flush)
        self.hub = WatchHub(
            tasks.provider_factory,
            self.wakes.wake,
            max_watch_threads=max_watch_threads,
            wake_on_start=wake_on_start,
            duties=[pending, *duties],
        )
        self._stop = stop if stop is not None else threading.Event()

    def serve(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.hub.tick(watchable(self.tasks.resources().store))
                except Exception:  # the loop survives a bad store connection
                    log.exception("watch pass failed")
                self._stop.wait(self.tick.total_seconds())
        finally:
            self.hub.stop()

    def stop(self) -> None:
        self._stop.set()


def serve_watch(
    tasks: CommlinkTasks,
    *,
    stop: threading.Event | None = None,
    tick: timedelta = timedelta(seconds=2),
    max_watch_threads: int = 5,
    wake_on_start: bool = True,
    duties: Sequence[PeriodicDuty] = (),
) -> None:
    """Run a ``CeleryWatch`` for ``tasks`` (what ``install`` returned) until
    ``stop`` is set or the process is interrupted."""
    CeleryWatch(
        tasks,
        tick=tick,
        max_watch_threads=max_watch_threads,
        wake_on_start=wake_on_start,
        duties=duties,
        stop=stop,
    ).serve()
