"""A local scheduler: syncs due channels on an interval, a few at a time.

Push wake-ups make a channel due at once: ``serve()`` watches every
channel from its start through a ``WatchHub`` (IMAP NOTIFY or IDLE, EWS
streaming), and a host's webhook may call ``wake()``. For many processes
or machines, see ``commlink.contrib.celery``; leases keep one runner per
channel either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from ..closing import Stopping
from ..model import Channel
from ..ports import CalendarProvider, MailProvider
from ..records import ChannelState, ChannelStatus
from .engine import SyncEngine
from .report import SyncReport
from .watch_hub import PeriodicDuty, WatchHub, watchable

__all__ = ["Runner"]

log = logging.getLogger("commlink.runner")

Provider = MailProvider | CalendarProvider
Connect = Callable[[Channel], Provider]


class Runner(Stopping):
    """Runs ``engine`` for every due channel of its store.

    ``connect(channel)`` opens a provider for a channel (closed after each
    step). A channel is due when its back-off has passed, when it has not
    finished its first import, or when ``interval`` has passed since its
    last success. Channels that need the user (``FAILED_AUTH``) wait until
    ``reconnected()`` is called; ``wake()`` does not revive them. A
    ``connect`` that raises is recorded like a failed step (``AuthError``:
    ``FAILED_AUTH``; anything else: back-off).

    With ``watch`` (the default), ``serve()`` starts a push watcher for
    every channel at once (``hub``, a ``WatchHub``; ``max_watch_threads``
    caps the ``watch(scope)`` threads of a provider without
    ``watch_scopes``), and a channel that completes its first sync while
    ``serve()`` runs is watched from then on; ``run_once`` on its own starts
    no watcher (a one-shot sync leaves no thread behind). ``duties`` run
    every so often from ``serve()`` (e.g. renewing webhook subscriptions);
    more may be added to ``hub.duties``.
    """

    def __init__(
        self,
        engine: SyncEngine,
        connect: Connect,
        *,
        interval: timedelta = timedelta(minutes=5),
        concurrency: int = 4,
        watch: bool = True,
        max_watch_threads: int = 5,
        duties: Sequence[PeriodicDuty] = (),
    ) -> None:
        self.engine = engine
        self.connect = connect
        self.interval = interval
        self.concurrency = max(1, concurrency)
        self.watch_enabled = watch
        self._serving = False  # watchers belong to serve(); run_once alone starts none
        self._woken: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.hub = WatchHub(connect, self.wake, max_watch_threads=max_watch_threads, duties=duties)

    def due(self, now: datetime | None = None) -> list[Channel]:
        """Channels woken, never synced, mid-import, past their retry time, or
        last synced more than ``interval`` ago; never those failing auth."""
        now = now or self.engine.clock()
        with self._lock:
            woken = set(self._woken)
        store = self.engine.store
        states = store.channel_states()
        due = []
        for channel in store.channels():
            state = states.get(channel.id) or ChannelState(channel.id)
            if state.status is ChannelStatus.FAILED_AUTH:
                continue  # only the user can fix it: see reconnected()
            if channel.id in woken or self._is_due(state, now):
                due.append(channel)
        return due

    def _is_due(self, state: ChannelState, now: datetime) -> bool:
        if state.next_attempt is not None:
            return state.next_attempt <= now
        if state.status in (ChannelStatus.NOT_SYNCED, ChannelStatus.ONGOING):
            return True
        return state.last_success is None or state.last_success + self.interval <= now

    def run_once(self, channels: Sequence[Channel] | None = None) -> list[SyncReport]:
        """Sync the due channels (or the given ones) once, concurrently."""
        todo = list(channels) if channels is not None else self.due()
        with self._lock:
            self._woken -= {c.id for c in todo}
        if not todo:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
            return list(pool.map(self._step, todo))

    def _step(self, channel: Channel) -> SyncReport:
        try:
            provider = self.connect(channel)
        except Exception as exc:
            log.warning("cannot connect %s: %s", channel.id, exc)
            return self.engine.connect_failed(channel, exc)
        try:
            report = self.engine.run(channel, provider)
        finally:
            provider.close()
        log.info("%s", report.summary())
        if self.watch_enabled and self._serving and report.complete:
            self.hub.ensure(channel)
        return report

    def wake(self, channel_id: str) -> None:
        """Make a channel due now (push notifications, IDLE, a host's webhook)."""
        with self._lock:
            self._woken.add(channel_id)
        self._wake.set()

    def reconnected(self, channel_id: str) -> None:
        """The user fixed the credentials of a ``FAILED_AUTH`` channel."""
        state = self.engine.store.channel_state(channel_id) or ChannelState(channel_id)
        self.engine.store.save_channel_state(
            ChannelState(
                channel_id,
                ChannelStatus.ONGOING,
                state.stage,
                0,
                "",
                None,
                state.last_success,
                aliases=state.aliases,
            )
        )
        self.wake(channel_id)

    def serve(self, tick: timedelta = timedelta(seconds=5)) -> None:
        """Run until ``stop()``: watch every channel (at once, not after its
        first sync), sync due channels, sleep until woken or the next tick."""
        self._serving = True
        while not self._stop.is_set():
            try:
                if self.watch_enabled:
                    self.hub.watch(watchable(self.engine.store))
                self.hub.run_duties()
                self.run_once()
            except Exception:  # the loop survives a bad store connection
                log.exception("runner pass failed")
            self._wake.wait(tick.total_seconds())
            self._wake.clear()

    def stop(self) -> None:
        """Stop ``serve()`` after the current pass; watchers end with it."""
        self._stop.set()
        self._wake.set()
        self.hub.stop()
