"""Push wake-ups for many channels: ``WatchHub`` holds one watcher per channel.

A watcher opens the channel's provider, lists the selected folders (or
calendars) and holds the provider's push connection: ``watch_scopes`` when
the provider is a ``ScopeWatcher`` (IMAP NOTIFY or IDLE per folder, EWS
streaming), else ``watch(scope)`` per scope, a thread each, for at most
``max_watch_threads`` scopes (the inbox and sent mail first). Each change
calls ``wake(channel_id)``. A watcher that ends (the server dropped the
connection, or it could not connect) starts again after an exponential
back-off, and wakes its channel once it is back so that what changed in
between is synced. The same hub serves the ``Runner`` (``wake`` makes a
channel due) and the Celery watch process (``wake`` enqueues a sync).

The hub also runs ``PeriodicDuty`` items from ``tick()``: work that a
long-running process owes every so often besides watching, such as
renewing webhook subscriptions before they expire.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from types import TracebackType
from typing import Any

import attrs

from ..closing import Stopping
from ..errors import AuthError
from ..model import Channel, FolderKind
from ..ports import CalendarProvider, MailProvider, Scope, ScopeWatcher, Store
from ..records import ChannelStatus

# jitter from a generator of its own: the process-wide `random` state is the
# host's (and a test framework's), never to be disturbed from background threads
_JITTER = random.SystemRandom()

__all__ = ["PeriodicDuty", "WatchHub", "watchable"]

log = logging.getLogger("commlink.watch")

Provider = MailProvider | CalendarProvider
Connect = Callable[[Channel], Provider]
Wake = Callable[[str], None]
_Watch = AbstractContextManager[Iterator[Any]]


def watchable(store: Store) -> list[Channel]:
    """The store's channels worth watching: all but those that need the user
    (``FAILED_AUTH``)."""
    states = store.channel_states()
    return [
        c
        for c in store.channels()
        if (s := states.get(c.id)) is None or s.status is not ChannelStatus.FAILED_AUTH
    ]


@attrs.define
class PeriodicDuty:
    """``run()`` every ``every``, from the hub's ``tick()`` (the first time at
    the first tick). A duty that raises is logged and tried at its next turn."""

    name: str
    every: timedelta
    run: Callable[[], object]
    last: float | None = None


@attrs.frozen
class Backoff:
    """Seconds between a watcher's attempts: ``first``, doubled up to ``most``;
    back to ``first`` once a watch has held for ``healthy`` seconds."""

    first: float = 1.0
    most: float = 300.0
    healthy: float = 60.0


class WatchHub(Stopping):
    """Watchers for many channels, started at once and kept alive.

    ``watch(channels)`` makes the watched set exactly these channels
    (starting new ones, stopping removed or changed ones); ``tick(channels)``
    does that and runs the duties that are due; ``stop()`` ends everything.
    ``wake_on_start`` wakes each channel when its watch is first in place,
    so a change that came before it is not left for the next poll.
    ``refresh`` restarts a watch that old, to pick up new folders.
    """

    def __init__(
        self,
        connect: Connect,
        wake: Wake,
        *,
        max_watch_threads: int = 5,
        backoff: Backoff = Backoff(),
        refresh: timedelta | None = timedelta(hours=1),
        wake_on_start: bool = True,
        duties: Sequence[PeriodicDuty] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.wake = wake
        self.max_watch_threads = max(1, max_watch_threads)
        self.backoff = backoff
        self.refresh = refresh
        self.wake_on_start = wake_on_start
        self.duties: list[PeriodicDuty] = list(duties)
        self.clock = clock
        self._watchers: dict[str, _Watcher] = {}
        self._lock = threading.Lock()
        self._stopped = False

    # -- the watched set -------------------------------------------------------

    def watch(self, channels: Iterable[Channel]) -> None:
        """Watch exactly these channels."""
        wanted = {c.id: c for c in channels}
        now = self.clock()
        with self._lock:
            if self._stopped:
                return
            for channel_id, watcher in list(self._watchers.items()):
                channel = wanted.get(channel_id)
                stale = self.refresh is not None and (
                    now - watcher.since >= self.refresh.total_seconds()
                )
                if channel is None or channel != watcher.channel or stale:
                    watcher.cancel()
                    del self._watchers[channel_id]
            for channel_id, channel in wanted.items():
                if channel_id not in self._watchers:
                    self._start(channel, wake_first=self.wake_on_start)

    def ensure(self, channel: Channel, *, wake_first: bool = False) -> None:
        """Watch this channel too, unless it already is."""
        with self._lock:
            if self._stopped:
                return
            current = self._watchers.get(channel.id)
            if current is None or not current.is_alive() or current.channel != channel:
                if current is not None:
                    current.cancel()
                self._start(channel, wake_first=wake_first)

    def _start(self, channel: Channel, *, wake_first: bool) -> None:
        watcher = _Watcher(self, channel, wake_first)
        self._watchers[channel.id] = watcher
        watcher.start()

    def states(self) -> dict[str, str]:
        """Each watched channel's state: ``connecting``, ``watching``,
        ``waiting`` (back-off) or ``unsupported`` (no push; polled)."""
        with self._lock:
            return {cid: w.state for cid, w in self._watchers.items()}

    # -- duties ------------------------------------------------------------------

    def run_duties(self) -> None:
        """Run every duty whose time has come."""
        for duty in list(self.duties):
            now = self.clock()
            if duty.last is not None and now - duty.last < duty.every.total_seconds():
                continue
            duty.last = now
            try:
                duty.run()
            except Exception:
                log.warning("duty %s failed", duty.name, exc_info=True)

    def tick(self, channels: Iterable[Channel]) -> None:
        """``watch(channels)``, then the duties that are due."""
        self.watch(channels)
        self.run_duties()

    # -- stopping ----------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every watcher and wait up to ``timeout`` seconds for them."""
        with self._lock:
            self._stopped = True
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.cancel()
        deadline = time.monotonic() + timeout
        for watcher in watchers:
            watcher.join(max(0.0, deadline - time.monotonic()))

    # -- for watchers ------------------------------------------------------------

    def _wake(self, channel_id: str) -> None:
        try:
            self.wake(channel_id)
        except Exception:
            log.warning("waking %s failed", channel_id, exc_info=True)


class _Watcher(threading.Thread):
    """One channel's watch, held and restarted until cancelled."""

    def __init__(self, hub: WatchHub, channel: Channel, wake_first: bool) -> None:
        super().__init__(name=f"watch-{channel.id}", daemon=True)
        self.hub = hub
        self.channel = channel
        self.wake_first = wake_first
        self.since = hub.clock()
        self.state = "connecting"
        self._cancelled = threading.Event()
        self._current: Any = None

    def cancel(self) -> None:
        self._cancelled.set()
        current = self._current
        cancel = getattr(current, "cancel", None)
        if callable(cancel):
            try:
                cancel()
            except Exception:
                log.debug("cancelling the watch of %s failed", self.channel.id, exc_info=True)

    def run(self) -> None:
        backoff = self.hub.backoff
        delay = backoff.first
        first = True
        while not self._cancelled.is_set():
            started = time.monotonic()
            outcome = self._watch_once(wake=self.wake_first or not first)
            first = False
            if self._cancelled.is_set():
                break
            if outcome == "unsupported":
                self.state = "unsupported"
                refresh = self.hub.refresh
                self._cancelled.wait(refresh.total_seconds() if refresh else None)
                continue
            if time.monotonic() - started >= backoff.healthy:
                delay = backoff.first
            if outcome == "auth":
                delay = backoff.most
            self.state = "waiting"
            self._cancelled.wait(delay * _JITTER.uniform(0.5, 1.0))
            delay = min(delay * 2, backoff.most)

    def _watch_once(self, *, wake: bool) -> str:
        """Hold the watch until it ends: ``ended``, ``failed``, ``auth`` or ``unsupported``."""
        self.state = "connecting"
        try:
            provider = self.hub.connect(self.channel)
        except AuthError as exc:
            log.info("watch of %s: %s", self.channel.id, exc)
            return "auth"
        except Exception as exc:
            log.info("watch of %s cannot connect: %s", self.channel.id, exc)
            return "failed"
        open_provider: Provider | None = provider
        try:
            watch, own = self._open(provider)
            if watch is None:
                return "unsupported"
            with watch as events:
                self._current = watch
                if own:  # the watch holds connections of its own
                    open_provider = None
                    provider.close()
                if self._cancelled.is_set():
                    return "ended"
                self.state = "watching"
                log.info("watching %s", self.channel.id)
                if wake:
                    self.hub._wake(self.channel.id)
                for _ in events:
                    if self._cancelled.is_set():
                        break
                    self.hub._wake(self.channel.id)
            return "ended"
        except AuthError as exc:
            log.info("watch of %s: %s", self.channel.id, exc)
            return "auth"
        except Exception as exc:
            log.info("watch of %s ended: %r; polling meanwhile", self.channel.id, exc)
            return "failed"
        finally:
            self._current = None
            if open_provider is not None:
                try:
                    open_provider.close()
                except Exception:
                    log.debug("closing %s failed", self.channel.id, exc_info=True)

    def _open(self, provider: Provider) -> tuple[_Watch | None, bool]:
        """The provider's watch over the selected scopes, and whether it holds
        connections of its own (then the provider is closed at once)."""
        scopes = _selected_scopes(self.channel, provider)
        if not scopes:
            return None, False
        if isinstance(provider, ScopeWatcher):
            return provider.watch_scopes(scopes), True
        if isinstance(provider, MailProvider):
            ordered = sorted(scopes, key=_rank)[: self.hub.max_watch_threads]
            parts = [(s.id, w) for s in ordered if (w := provider.watch(s)) is not None]
            return (_ScopeGroup(parts) if parts else None), False
        return None, False


def _selected_scopes(channel: Channel, provider: Provider) -> list[Scope]:
    if isinstance(provider, MailProvider):
        folders = [f for f in provider.folders() if channel.settings.folders.selects(f)]
    else:
        folders = [f for f in provider.calendars() if channel.settings.folders.selects(f)]
    return list(provider.scopes(folders))


def _rank(scope: Scope) -> int:
    kind = scope.folder.kind if scope.folder is not None else None
    return {FolderKind.INBOX: 0, FolderKind.SENT: 1}.get(kind, 2) if kind is not None else 2


_ENDED = object()


class _ScopeGroup:
    """``watch(scope)`` of several scopes, each read by a thread of its own,
    merged: yields the scope that changed; ends when any of them ends."""

    def __init__(self, parts: Sequence[tuple[str, _Watch]]) -> None:
        self.parts = list(parts)
        self._queue: queue.Queue[object] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._entered: list[_Watch] = []

    def __enter__(self) -> Iterator[str]:
        try:
            for scope_id, manager in self.parts:
                events = manager.__enter__()
                self._entered.append(manager)
                thread = threading.Thread(
                    target=self._pump, args=(scope_id, events), name=f"watch-{scope_id}"
                )
                thread.daemon = True
                self._threads.append(thread)
        except BaseException:
            self._exit_all()
            raise
        for thread in self._threads:
            thread.start()
        return self._merged()

    def _pump(self, scope_id: str, events: Iterator[Any]) -> None:
        try:
            for _ in events:
                self._queue.put(scope_id)
        except Exception as exc:
            log.info("watch of %s ended: %r", scope_id, exc)
        finally:
            self._queue.put(_ENDED)

    def _merged(self) -> Iterator[str]:
        while True:
            item = self._queue.get()
            if item is _ENDED:
                return
            yield str(item)

    def cancel(self) -> None:
        for _, manager in self.parts:
            cancel = getattr(manager, "cancel", None)
            if callable(cancel):
                cancel()
        self._queue.put(_ENDED)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
        for thread in self._threads:
            thread.join(timeout=5)
        self._exit_all()

    def _exit_all(self) -> None:
        while self._entered:
            manager = self._entered.pop()
            try:
                manager.__exit__(None, None, None)
            except Exception:
                log.debug("closing a watch failed", exc_info=True)
