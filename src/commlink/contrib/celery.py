"""Sync on Celery workers: one channel per task, protected by the store's lease.

``install(app, ...)`` registers two tasks on a host's Celery app:

- ``sync_channel(channel_id)`` runs one bounded ``SyncEngine`` step for a
  channel (at most ``max_batches`` batches with work in them; quiet change
  checks are free) and enqueues its own continuation while a
  long import is unfinished, so a task never runs for long and channels
  take turns. It is ``acks_late`` and
  ``reject_on_worker_lost``: a task lost with its worker is delivered again,
  which is harmless because commits are idempotent and the lease keeps one
  runner per channel (a second delivery finds the lease busy and returns at
  once).
- ``dispatch()`` enqueues the channels that are due (the ``Runner``'s
  notion: back-off passed, first import unfinished, or ``interval`` since
  the last success). Run it from Celery beat (``beat_schedule``).

Two leases live in the store. The sync lease (``lease_ttl``, renewed in the
background every third of it while a step runs) is the engine's: while it is held no other worker
syncs the channel; when its worker dies it expires and the channel is taken
over. The queue marker (a lease on ``"<channel id>#queued"``) is taken by
``dispatch`` before it enqueues a channel and held by the task while it
runs, so a channel is never queued twice however often ``dispatch`` runs.
It expires after ``queue_ttl`` if the task never starts, and after
``lease_ttl`` if its worker dies or if the task found the sync lease busy.
A task message the broker loses (a connection cut as it is handed over, a
Redis restarted without persistence) would leave its channel waiting for
``queue_ttl``; so ``dispatch`` takes over a marker held as queued for
longer than ``requeue_after`` while nothing waits in the channel's queue
(the broker's message count), and queues the channel again. A message a
worker has reserved but not started is not in that count: if it waited
that long, the channel runs twice, which the sync lease makes harmless.

Host events: ``install_event_relay(app, ...)`` registers a task that
delivers a store outbox's events to a sink (see ``commlink.events``).

Push: ``serve_watch(tasks)`` (or ``commlink watch``) runs in a process of
its own, holds the IMAP NOTIFY/IDLE and EWS streaming connections of every
channel, and enqueues ``sync_channel`` for the channel that changed (see
``commlink.contrib.celery_watch``); ``dispatch`` from beat then only
catches what push cannot see.

Failures: a provider failure (including a provider factory that raises:
``AuthError`` makes the channel ``FAILED_AUTH``, which ``dispatch`` leaves
alone until the user reconnects), or a database connection lost during a
commit, is recorded by the engine in the channel's state with its back-off
(``Retry-After`` honoured), and ``dispatch`` enqueues the channel again
when that passes. A failure that escapes the engine (the store unreachable
when the task starts or when the lease is released) fails the task, which
Celery retries with exponential back-off up to ``retry_backoff_max``: in
the same process the retry takes its own lease back at once, elsewhere it
waits for the lease to expire. Either way the step resumes from the last
committed batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ..errors import ConfigError, ProviderError, StoreError, TransientError
from ..events import EventSink, Outbox, OutboxRelay, TransactionalSink
from ..model import Channel
from ..ports import CalendarProvider, Directory, LeaseReader, MailProvider, Store
from ..sync.engine import SyncEngine
from ..sync.folder_cache import FolderCache
from ..sync.report import Backoff, Progress, SyncReport
from ..sync.runner import Runner
from .celery_watch import CeleryWatch, serve_watch

# jitter from a generator of its own: the process-wide `random` state is the
# host's (and a test framework's), never to be disturbed from background threads
_JITTER = random.SystemRandom()

__all__ = [
    "RETRIED",
    "CeleryWatch",
    "CommlinkTasks",
    "install",
    "install_event_relay",
    "queue_marker",
    "serve_watch",
]

log = logging.getLogger("commlink.celery")

Provider = MailProvider | CalendarProvider

#: Failures that escape the engine and are worth retrying: the store's
#: connection, a provider that could not be opened for now, the network.
RETRIED = (StoreError, TransientError, ConnectionError, TimeoutError)


def queue_marker(channel_id: str) -> str:
    """The lease key that says a channel is queued or running on a worker."""
    return f"{channel_id}#queued"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@attrs.define
class _ProcessState:
    """What one worker process opens once and reuses across tasks."""

    pid: int
    store: Store
    directory: Directory
    folders: FolderCache = attrs.Factory(FolderCache)


class CommlinkTasks:
    """The tasks ``install`` registered and what they share.

    ``sync_channel`` and ``dispatch`` are Celery tasks; ``enqueue`` queues a
    channel now (a host's webhook or push notification), unless it is
    already queued or running.
    """

    def __init__(
        self,
        *,
        store_factory: Callable[[], Store],
        provider_factory: Callable[[Channel], Provider],
        directory_factory: Callable[[Store], Directory],
        interval: timedelta,
        lease_ttl: timedelta,
        queue_ttl: timedelta,
        batch_size: int,
        max_batches: int,
        max_failures: int,
        backoff: Backoff | None,
        queue_for: Callable[[Channel], str | None] | None,
        clock: Callable[[], datetime],
        folder_ttl: timedelta | None = None,
        requeue_after: timedelta | None = None,
    ) -> None:
        if lease_ttl <= timedelta(0) or queue_ttl <= timedelta(0):
            raise ConfigError("lease_ttl and queue_ttl must be positive")
        if requeue_after is not None and requeue_after <= timedelta(0):
            raise ConfigError("must be positive or None", field="requeue_after")
        if max_batches < 1:
            raise ConfigError("must be positive", field="max_batches")
        self.store_factory = store_factory
        self.provider_factory = provider_factory
        self.directory_factory = directory_factory
        self.interval = interval
        self.lease_ttl = lease_ttl
        self.queue_ttl = queue_ttl
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.max_failures = max_failures
        self.backoff = backoff
        self.queue_for = queue_for
        self.clock = clock
        self.folder_ttl = folder_ttl
        self.requeue_after = requeue_after
        self.sync_channel: Any = None
        self.dispatch: Any = None
        self._state: _ProcessState | None = None
        self._lock = threading.Lock()

    # -- per-process resources -------------------------------------------------

    def resources(self) -> _ProcessState:
        """This process's store, directory and folder cache, opened on first use.

        Keyed by process id: a prefork child never reuses the connection
        pool of the process it was forked from.
        """
        with self._lock:
            state = self._state
            if state is None or state.pid != os.getpid():
                store = self.store_factory()
                state = _ProcessState(os.getpid(), store, self.directory_factory(store))
                self._state = state
            return state

    def engine(
        self,
        holder: str,
        progress: Callable[[Progress], None] | None,
        max_batches: int | None = None,
    ) -> SyncEngine:
        state = self.resources()
        return SyncEngine(
            state.store,
            state.directory,
            batch_size=self.batch_size,
            max_batches=max_batches or self.max_batches,
            max_failures=self.max_failures,
            lease_ttl=self.lease_ttl,
            backoff=self.backoff,
            progress=progress,
            clock=self.clock,
            holder=holder,
            folder_ttl=self.folder_ttl,
            folder_cache=state.folders,
        )

    # -- scheduling --------------------------------------------------------------

    def due(self) -> list[Channel]:
        """The channels due for a step now (see ``Runner.due``)."""
        runner = Runner(
            self.engine("dispatch", None), self.provider_factory, interval=self.interval
        )
        return runner.due(self.clock())

    def enqueue(self, channel: Channel | str) -> bool:
        """Queue a sync of the channel unless it is queued or running already."""
        store = self.resources().store
        found = store.channel(channel) if isinstance(channel, str) else channel
        if found is None:
            return False
        token = uuid.uuid4().hex
        if not store.acquire_lease(queue_marker(found.id), token, self.queue_ttl):
            return False
        try:
            self._send(found, token)
        except Exception:
            store.release_lease(queue_marker(found.id), token)
            raise
        return True

    def _send(self, channel: Channel, token: str) -> None:
        self.sync_channel.apply_async(
            args=(channel.id,), kwargs={"token": token}, **self._options(channel)
        )

    def _options(self, channel: Channel) -> dict[str, Any]:
        queue = self.queue_for(channel) if self.queue_for is not None else None
        return {"queue": queue} if queue else {}

    def _queue(self, channel: Channel) -> Any:
        """The broker queue (``kombu.Queue``) a channel's task goes to:
        ``queue_for``, else the app's routes and default queue."""
        task = self.sync_channel
        return task.app.amqp.router.route(self._options(channel), task.name, (channel.id,))["queue"]

    def claim(self, channel_id: str) -> str | None:
        """A queue marker token for a direct call, if the channel is not queued."""
        store = self.resources().store
        token = uuid.uuid4().hex
        return (
            token if store.acquire_lease(queue_marker(channel_id), token, self.lease_ttl) else None
        )

    def serve_watch(self, **options: Any) -> None:
        """Hold push connections for every channel and enqueue syncs for the
        ones that change, until ``stop`` (an option) is set: ``serve_watch``."""
        serve_watch(self, **options)

    def run_dispatch(self) -> dict[str, int]:
        due = self.due()
        held = [channel for channel in due if not self.enqueue(channel)]
        requeued = self.requeue_lost(held)
        return {"due": len(due), "queued": len(due) - len(held) + requeued, "requeued": requeued}

    def requeue_lost(self, channels: Sequence[Channel]) -> int:
        """Queue again those of ``channels`` (due, their markers held) whose
        task message looks lost: the marker held as queued for longer than
        ``requeue_after`` while the broker counts no message in their queue.
        Returns how many were queued."""
        store = self.resources().store
        if self.requeue_after is None or not channels or not isinstance(store, LeaseReader):
            return 0
        now = self.clock()
        markers = store.held_leases([queue_marker(channel.id) for channel in channels])
        # a queued marker expires queue_ttl after it was taken; a started
        # task holds it for lease_ttl at most
        newest = now - self.requeue_after + self.queue_ttl
        waiting = [
            (channel, lease)
            for channel in channels
            if (lease := markers.get(queue_marker(channel.id))) is not None
            and now + self.lease_ttl < lease.expires_at <= newest
        ]
        if not waiting:
            return 0
        queues = {channel.id: self._queue(channel) for channel, _ in waiting}
        sizes = self._queue_sizes({queue.name: queue for queue in queues.values()})
        requeued = 0
        for channel, lease in waiting:
            if sizes.get(queues[channel.id].name) != 0:
                continue
            store.release_lease(queue_marker(channel.id), lease.holder)
            if self.enqueue(channel):
                requeued += 1
                log.warning(
                    "%s was queued at %s and its queue is empty: its task message"
                    " was lost; queued again",
                    channel.id,
                    (lease.expires_at - self.queue_ttl).isoformat(timespec="seconds"),
                )
        return requeued

    def _queue_sizes(self, queues: Mapping[str, Any]) -> dict[str, int]:
        """Messages waiting in each queue (``kombu.Queue`` by name), as the
        broker counts them; a queue it could not count is left out, and all
        are when the broker cannot be reached."""
        sizes: dict[str, int] = {}
        app = self.sync_channel.app
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)
                for name, queue in sorted(queues.items()):
                    channel = conn.channel()
                    try:
                        # declared (with its exchange and binding) as Celery
                        # declares it to publish, so a queue the broker lost
                        # comes back whole; a passive declare would not do on
                        # Redis: kombu 5.7 checks for the queue without its
                        # global_keyprefix and finds none
                        bound = queue.bind(channel)
                        bound.declare()
                        sizes[name] = int(bound.queue_declare().message_count)
                    except conn.channel_errors:
                        log.warning("could not count the messages in queue %s", name, exc_info=True)
                    finally:
                        with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
                            channel.close()
        except Exception:  # the broker's errors vary by transport; dispatch goes on
            log.warning("could not count the queued task messages", exc_info=True)
            return {}
        return sizes

    def beat_schedule(self, every: timedelta = timedelta(seconds=30)) -> dict[str, Any]:
        """A ``beat_schedule`` entry that runs ``dispatch`` every ``every``:
        ``app.conf.beat_schedule = {**app.conf.beat_schedule, **tasks.beat_schedule()}``."""
        seconds = every.total_seconds()
        name = str(self.dispatch.name)
        # a dispatch still queued when the next one is due is dropped
        return {name: {"task": name, "schedule": seconds, "options": {"expires": seconds}}}

    # -- one step ----------------------------------------------------------------

    def run_sync(
        self, task: Any, channel_id: str, token: str | None, *, may_retry: bool
    ) -> dict[str, Any]:
        """One step for a channel; ``token`` holds its queue marker (``None``:
        a direct call while the channel is queued or running elsewhere)."""
        store = self.resources().store
        marker = queue_marker(channel_id)
        # from now on the marker lives as long as the sync lease, so a dead
        # worker's channel can be queued again once both expired; if it was
        # taken meanwhile (this message outlived it), the newer message owns
        # the channel's continuation
        if token is not None and not store.acquire_lease(marker, token, self.lease_ttl):
            token = None
        keep = False
        try:
            channel = store.channel(channel_id)
            if channel is None:
                return {"channel_id": channel_id, "status": "missing"}
            report = self._step(task, store, channel, marker, token)
            result = _summary(report)
            # the lease is busy (a live run, or a dead worker's until it
            # expires): the marker stays until it expires too, so dispatch
            # does not queue the channel again on every tick meanwhile
            keep = not report.leased
            unfinished = report.leased and not report.complete and not report.errors
            if (
                unfinished
                and token is not None
                and _progressed(report)
                and store.acquire_lease(marker, token, self.queue_ttl)
            ):
                # a long import goes on in a new task, behind the channels queued meanwhile
                self._send(channel, token)
                keep = True
            result["continued"] = keep and report.leased
            return result
        except RETRIED:
            keep = may_retry  # the retry carries the marker on
            raise
        finally:
            if token is not None and not keep:
                try:
                    store.release_lease(marker, token)
                except StoreError:
                    log.warning("could not release %s; it expires", marker, exc_info=True)

    def _step(
        self, task: Any, store: Store, channel: Channel, marker: str, token: str | None
    ) -> SyncReport:
        def renew(_progress: Progress) -> None:
            if token is not None:
                store.acquire_lease(marker, token, self.lease_ttl)

        engine = self.engine(_holder(task), renew, self.max_batches)
        try:
            provider = self.provider_factory(channel)
        except (ProviderError, ConfigError) as exc:
            # recorded in the channel's state (FAILED_AUTH, or back-off), so the
            # dispatcher does not queue it again on every tick
            log.warning("cannot connect %s: %s", channel.id, exc)
            return engine.connect_failed(channel, exc)
        try:
            report = engine.run(channel, provider)
        finally:
            provider.close()
        if not report.leased:
            log.info("%s is being synced elsewhere; skipped", channel.id)
        else:
            log.info("%s", report.summary())
        return report


def _holder(task: Any) -> str:
    """The sync lease holder of one task execution.

    The same in a retry of the task in the same process, so a retry takes
    its own unexpired lease back at once; different for a second delivery
    to another process or thread, which must wait for the lease.
    """
    task_id = getattr(getattr(task, "request", None), "id", None) or uuid.uuid4().hex
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{task_id}"


def _progressed(report: SyncReport) -> bool:
    """Whether a step got anywhere (else ``dispatch`` picks the channel up
    again at its own pace rather than a continuation right away)."""
    return bool(
        report.fetched or report.unchanged or report.imported or report.deleted or report.skipped
    )


def _summary(report: SyncReport) -> dict[str, Any]:
    return {
        "channel_id": report.channel_id,
        "status": report.status.value,
        "leased": report.leased,
        "complete": report.complete,
        "imported": report.imported,
        "deleted": report.deleted,
        "skipped": sum(report.skipped.values()),
        "errors": list(report.errors),
        "duration": round(report.duration, 3),
    }


def install(
    app: Any,
    *,
    store_factory: Callable[[], Store],
    provider_factory: Callable[[Channel], Provider],
    directory_factory: Callable[[Store], Directory],
    interval: timedelta = timedelta(minutes=5),
    lease_ttl: timedelta = timedelta(minutes=5),
    queue_ttl: timedelta = timedelta(hours=1),
    batch_size: int = 500,
    max_batches: int = 20,
    max_failures: int = 5,
    backoff: Backoff | None = None,
    max_retries: int = 8,
    retry_backoff_max: timedelta = timedelta(minutes=5),
    queue_for: Callable[[Channel], str | None] | None = None,
    name_prefix: str = "commlink",
    clock: Callable[[], datetime] = _utcnow,
    folder_ttl: timedelta | None = timedelta(minutes=5),
    requeue_after: timedelta | None = timedelta(minutes=2),
) -> CommlinkTasks:
    """Register commlink's tasks on a Celery ``app``; returns them.

    ``store_factory()`` opens the store and ``directory_factory(store)`` the
    CRM directory, once per worker process; ``provider_factory(channel)``
    opens a channel's provider for one task (closed after it). A task runs
    at most ``max_batches`` batches of ``batch_size`` before it hands the
    channel on to a new task; ``lease_ttl`` must exceed the time of one
    batch (the lease is renewed after each) and is how long a dead worker's
    channel waits before another takes it over. ``queue_for(channel)``
    picks a queue per channel (``None``: the default queue). Failures that
    escape the engine are retried up to ``max_retries`` times with
    exponential back-off capped at ``retry_backoff_max``, which must stay
    below a Redis broker's ``visibility_timeout``. ``folder_ttl`` reuses a
    channel's folder list in a worker process for that long (``None``: list
    folders on every task), so a quiet step costs only the change checks.
    ``requeue_after`` is how long ``dispatch`` lets a channel's task message
    be missing from its queue before it takes it for lost and queues the
    channel again (``None``: wait for ``queue_ttl``); keep it above the
    time a message a worker has reserved waits to start.
    """
    tasks = CommlinkTasks(
        store_factory=store_factory,
        provider_factory=provider_factory,
        directory_factory=directory_factory,
        interval=interval,
        lease_ttl=lease_ttl,
        queue_ttl=queue_ttl,
        batch_size=batch_size,
        max_batches=max_batches,
        max_failures=max_failures,
        backoff=backoff,
        queue_for=queue_for,
        clock=clock,
        folder_ttl=folder_ttl,
        requeue_after=requeue_after,
    )
    retry_cap = max(1, int(retry_backoff_max.total_seconds()))

    @app.task(  # type: ignore[untyped-decorator]
        bind=True,
        name=f"{name_prefix}.sync_channel",
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=max_retries,
    )
    def sync_channel(self: Any, channel_id: str, token: str | None = None) -> dict[str, Any]:
        """Run one bounded sync step for a channel (see ``commlink.contrib.celery``)."""
        retries = int(getattr(self.request, "retries", 0) or 0)
        try:
            if token is None:
                token = tasks.claim(channel_id)
            return tasks.run_sync(self, channel_id, token, may_retry=retries < max_retries)
        except RETRIED as exc:
            if retries >= max_retries:
                raise
            countdown = _JITTER.uniform(0.5, 1.0) * min(retry_cap, 2 ** (retries + 1))
            log.warning("sync of %s failed (%r); retry in %.0fs", channel_id, exc, countdown)
            raise self.retry(exc=exc, countdown=countdown, kwargs={"token": token}) from exc

    @app.task(name=f"{name_prefix}.dispatch", ignore_result=True)  # type: ignore[untyped-decorator]
    def dispatch() -> dict[str, int]:
        """Enqueue every due channel that is not queued or running yet."""
        return tasks.run_dispatch()

    tasks.sync_channel = sync_channel
    tasks.dispatch = dispatch
    return tasks


def install_event_relay(
    app: Any,
    *,
    outbox_factory: Callable[[], Outbox],
    sink_factory: Callable[[], EventSink | TransactionalSink[Any]],
    consumer: str = "default",
    batch: int = 100,
    max_batches: int = 50,
    name_prefix: str = "commlink",
) -> Any:
    """Register ``<prefix>.deliver_events``, which delivers up to
    ``max_batches`` batches of the outbox's host events to the sink (see
    ``commlink.events.OutboxRelay``) and returns how many; run it from beat.
    Both factories are called once per worker process. The relay's holder
    is the worker's host and process, so a restarted worker resumes at once
    and two workers never deliver for ``consumer`` together."""
    opened: dict[int, OutboxRelay] = {}

    @app.task(name=f"{name_prefix}.deliver_events", ignore_result=True)  # type: ignore[untyped-decorator]
    def deliver_events() -> int:
        """Deliver pending host events (see ``install_event_relay``)."""
        relay = opened.get(os.getpid())
        if relay is None:
            relay = opened[os.getpid()] = OutboxRelay(
                outbox_factory(),
                sink_factory(),
                consumer=consumer,
                batch=batch,
                holder=f"{socket.gethostname()}:{os.getpid()}",
            )
        return relay.drain(max_batches=max_batches)

    return deliver_events
