"""The Celery app the worker tests start: ``python -m celery -A celery_worker_app worker``.

Settings come from the environment so each test run has its own Redis key
prefix, queue, PostgreSQL database and Maildir root:

- ``COMMLINK_IT_BROKER``: the Redis URL; ``COMMLINK_IT_PREFIX``: key prefix;
  ``COMMLINK_IT_QUEUE``: the queue name;
- ``COMMLINK_IT_DB``: the store's SQLAlchemy URL;
- ``COMMLINK_IT_ROOT``: one Maildir per channel at ``<root>/<channel id>``;
  provider calls are logged to ``<root>/_calls/<pid>.log`` (see ``CallLog``);
- ``COMMLINK_IT_LEASE``: the lease TTL in seconds; ``COMMLINK_IT_QUEUE_TTL``:
  the queue marker's TTL in seconds (default an hour, as ``install``'s);
  ``COMMLINK_IT_REQUEUE_AFTER``: how long, in seconds, ``dispatch`` lets a
  queued channel's message be missing from the queue before it queues the
  channel again (default 120, as ``install``'s);
  ``COMMLINK_IT_BACKOFF``: the engine's back-off after a failure, in seconds.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery

from commlink.contrib.celery import CommlinkTasks, install
from commlink.model import Channel, Detail, Folder
from commlink.ports import ChangeSet, FetchedMessage, IdPage, MailProvider, Scope, Store
from commlink.providers.files.maildir import MaildirProvider
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.report import Backoff


class CallLog:
    """Appends ``S|E <run> <channel> <pid> <time>`` for each provider call's
    start and end, so a test can rebuild when each process used a channel."""

    def __init__(self, root: Path) -> None:
        folder = root / "_calls"
        folder.mkdir(exist_ok=True)
        self._file = (folder / f"{os.getpid()}.log").open("a", buffering=1)

    def write(self, mark: str, run: str, channel_id: str) -> None:
        self._file.write(f"{mark} {run} {channel_id} {os.getpid()} {time.time():.6f}\n")


class LoggedMaildir:
    """A ``MaildirProvider`` whose calls are logged (one provider per task run)."""

    def __init__(self, channel_id: str, path: Path, log: CallLog) -> None:
        self._inner = MaildirProvider(path, page_size=5)
        self._channel_id = channel_id
        self._log = log
        self._run = uuid.uuid4().hex[:12]

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._log.write("S", self._run, self._channel_id)
        try:
            return fn()
        finally:
            self._log.write("E", self._run, self._channel_id)

    def folders(self) -> Sequence[Folder]:
        result: Sequence[Folder] = self._call(self._inner.folders)
        return result

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        return self._inner.scopes(folders)

    def snapshot(self, scope: Scope) -> str:
        result: str = self._call(lambda: self._inner.snapshot(scope))
        return result

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        result: IdPage = self._call(lambda: self._inner.list_page(scope, page))
        return result

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        result: ChangeSet = self._call(lambda: self._inner.changes(scope, cursor))
        return result

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        fetched: list[FetchedMessage] = self._call(
            lambda: list(self._inner.fetch(scope, ids, detail))
        )
        return iter(fetched)

    def watch(self, scope: Scope) -> Any:
        return None

    def close(self) -> None:
        self._inner.close()


def build() -> tuple[Celery, CommlinkTasks]:
    """The app and its commlink tasks, configured from the environment."""
    env = os.environ
    root = Path(env["COMMLINK_IT_ROOT"])
    queue = env["COMMLINK_IT_QUEUE"]
    app = Celery("commlink_it")
    app.conf.update(
        broker_url=env["COMMLINK_IT_BROKER"],
        broker_transport_options={
            "global_keyprefix": env["COMMLINK_IT_PREFIX"],
            "visibility_timeout": 30,
            # kombu looks for messages past visibility_timeout every interval *
            # throttle seconds (10 * 10 by default): a message a worker had
            # reserved when its broker connection was cut, and that kombu could
            # not put back at once (the cut hit that too), comes back 30-31 s
            # later, not up to 130 s
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            # a name per run, so a test can find (and cut) this run's connections
            "client_name": env["COMMLINK_IT_QUEUE"],
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    logs: dict[int, CallLog] = {}

    def provider(channel: Channel) -> MailProvider:
        log = logs.get(os.getpid())
        if log is None:
            log = logs[os.getpid()] = CallLog(root)
        return LoggedMaildir(channel.id, root / channel.id, log)

    def store() -> Store:
        return SqlStore(env["COMMLINK_IT_DB"])

    tasks = install(
        app,
        store_factory=store,
        provider_factory=provider,
        directory_factory=SqlDirectory,
        lease_ttl=timedelta(seconds=float(env.get("COMMLINK_IT_LEASE", "5"))),
        queue_ttl=timedelta(seconds=float(env.get("COMMLINK_IT_QUEUE_TTL", "3600"))),
        requeue_after=timedelta(seconds=float(env.get("COMMLINK_IT_REQUEUE_AFTER", "120"))),
        batch_size=5,
        max_batches=2,
        backoff=Backoff(base=float(env.get("COMMLINK_IT_BACKOFF", "30")), jitter=False),
    )
    return app, tasks


if "COMMLINK_IT_BROKER" in os.environ:  # a worker process; the tests call build() themselves
    app, tasks = build()
