"""A local scheduler: syncs due channels on an interval, a few at a time.

Push wake-ups (IMAP IDLE through a provider's ``watch()``, or a host's
webhook calling ``wake()``) make a channel due at once. For many processes
or machines, see ``commlink.contrib.celery``; leases keep one runner per
channel either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from ..model import Channel, ChannelKind
from ..ports import CalendarProvider, MailProvider
from ..records import ChannelState, ChannelStatus
from .engine import SyncEngine
from .report import SyncReport

__all__ = ["Runner"]

log = logging.getLogger("commlink.runner")

Provider = MailProvider | CalendarProvider
Connect = Callable[[Channel], Provider]


class Runner:
    """Runs ``engine`` for every due channel of its store.

    ``connect(channel)`` opens a provider for a channel (closed after each
    step). A channel is due when its back-off has passed, when it has not
    finished its first import, or when ``interval`` has passed since its
    last success. Channels that need the user (``FAILED_AUTH``) wait until
    ``reconnected()`` is called; ``wake()`` does not revive them. A
    ``connect`` that raises is recorded like a failed step (``AuthError``:
    ``FAILED_AUTH``; anything else: back-off).
    """

    def __init__(
        self,
        engine: SyncEngine,
        connect: Connect,
        *,
        interval: timedelta = timedelta(minutes=5),
        concurrency: int = 4,
        watch: bool = True,
    ) -> None:
        self.engine = engine
        self.connect = connect
        self.interval = interval
        self.concurrency = max(1, concurrency)
        self.watch_enabled = watch
        self._woken: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watchers: dict[str, threading.Thread] = {}

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
        if self.watch_enabled and report.complete:
            self._ensure_watcher(channel)
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
                channel_id, ChannelStatus.ONGOING, state.stage, 0, "", None, state.last_success
            )
        )
        self.wake(channel_id)

    def serve(self, tick: timedelta = timedelta(seconds=5)) -> None:
        """Run until ``stop()``: sync due channels, sleep until woken or the next tick."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop survives a bad store connection
                log.exception("runner pass failed")
            self._wake.wait(tick.total_seconds())
            self._wake.clear()

    def stop(self) -> None:
        """Stop ``serve()`` after the current pass; watchers end with it."""
        self._stop.set()
        self._wake.set()
        for thread in list(self._watchers.values()):
            thread.join(timeout=5)

    # -- push wake-ups ---------------------------------------------------------

    def _ensure_watcher(self, channel: Channel) -> None:
        if channel.kind is not ChannelKind.MAIL:
            return
        with self._lock:
            alive = self._watchers.get(channel.id)
            if alive is not None and alive.is_alive():
                return
            thread = threading.Thread(
                target=self._watch, args=(channel,), name=f"watch-{channel.id}", daemon=True
            )
            self._watchers[channel.id] = thread
        thread.start()

    def _watch(self, channel: Channel) -> None:
        """Hold a provider's watch on the channel's first scope; wake on news."""
        provider = self.connect(channel)
        try:
            if not isinstance(provider, MailProvider):
                return
            folders = [f for f in provider.folders() if channel.settings.folders.selects(f)]
            scopes = provider.scopes(folders)
            if not scopes:
                return
            watcher = provider.watch(scopes[0])
            if watcher is None:
                return
            with watcher as events:
                for _ in events:
                    if self._stop.is_set():
                        return
                    self.wake(channel.id)
        except Exception:
            log.warning("watch of %s ended; polling continues", channel.id, exc_info=True)
        finally:
            provider.close()
