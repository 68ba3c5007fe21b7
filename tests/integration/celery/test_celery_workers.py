"""Two real Celery workers sync 50 Maildir channels into PostgreSQL; one is
killed (SIGKILL) while it holds a channel's lease.

The test process plays Celery beat: it runs ``dispatch`` every few tenths
of a second. Afterwards every message is stored exactly once, every
channel is ACTIVE, the dead worker's channel was finished by the other
worker after its lease expired, and no two processes ever worked on one
channel at the same time.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery_support import Workers, wait_for

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.records import ChannelStatus
from commlink.stores.sql import SqlStore
from commlink.testing.conformance_data import owner_of

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]

CHANNELS = 50
OWN = 24  # messages only one channel holds
SHARED = 6  # messages two neighbouring channels both hold (one logical copy)
LEASE_SECONDS = 4
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _owner(n: int) -> str:
    return f"user{n}@northwind.example"


def _raw(message_id: str, sender: str, to: list[str], n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = f"Order {message_id.split('@')[0]}"
    msg["Date"] = format_datetime(T0.replace(minute=n % 60, second=n % 59))
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(f"Hello, about order {n}.\n")
    return msg.as_bytes()


def write_mailboxes(root: Path, channels: int = CHANNELS) -> int:
    """One Maildir per channel; returns the number of distinct messages."""
    distinct = 0
    for n in range(channels):
        cur = root / f"ch{n:02d}" / "cur"
        for sub in ("cur", "new", "tmp"):
            (cur.parent / sub).mkdir(parents=True)
        files = []
        for i in range(OWN):
            mid = f"c{n}-m{i}@client{n}.example"
            files.append(_raw(mid, f"buyer{i}@client{n}.example", [_owner(n)], i))
        # pairs (0,1), (2,3), ... share messages addressed to both owners
        pair = n - n % 2
        for i in range(SHARED):
            mid = f"p{pair}-s{i}@partner.example"
            owners = [_owner(pair), _owner(pair + 1)]
            files.append(_raw(mid, f"agent{i}@partner.example", owners, i))
        for i, raw in enumerate(files):
            (cur / f"{1_700_000_000 + i}.M{i}P{n}.it:2,S").write_bytes(raw)
        distinct += OWN + (SHARED if n % 2 == 0 else 0)
    return distinct


def add_channels(store: SqlStore, channels: int = CHANNELS) -> None:
    for n in range(channels):
        settings = ChannelSettings(
            owner=_owner(n),
            org_domains=frozenset({"northwind.example"}),
            contact_policy=ContactPolicy.NONE,
        )
        store.save_channel(Channel(f"ch{n:02d}", f"user{n}", ChannelKind.MAIL, "maildir", settings))


def _pid_of(holder: str) -> int:
    return int(holder.split(":")[1])  # host:pid:thread:task id


def sync_leases(store: SqlStore) -> dict[str, tuple[str, datetime]]:
    """Channel id -> (holder, expiry) of every sync lease (queue markers left out)."""
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT channel_id, holder, expires_at FROM commlink_leases"
        ).all()
    return {c: (h, e) for c, h, e in rows if not c.endswith("#queued")}


def call_runs(root: Path) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(channel, pid) -> [(first call start, last call mark)] per task run."""
    marks: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for log in (root / "_calls").glob("*.log"):
        for line in log.read_text().splitlines():
            _, run, channel, pid, moment = line.split()
            marks[(run, channel, int(pid))].append(float(moment))
    runs: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for (_, channel, pid), times in marks.items():
        runs[(channel, pid)].append((min(times), max(times)))
    return runs


def count_rows(store: SqlStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


class Beat:
    """Runs ``dispatch`` every 0.3 s while the test waits, as Celery beat would."""

    def __init__(self, tasks: Any) -> None:
        self.tasks = tasks
        self.last = 0.0

    def around(self, condition: Callable[[], object]) -> Callable[[], bool]:
        def check() -> bool:
            if time.monotonic() - self.last > 0.3:
                self.tasks.run_dispatch()
                self.last = time.monotonic()
            return bool(condition())

        return check


def all_active(store: SqlStore, channels: int) -> bool:
    states = [store.channel_state(f"ch{n:02d}") for n in range(channels)]
    return all(s is not None and s.status is ChannelStatus.ACTIVE for s in states)


def test_two_workers_one_killed(
    celery_env: dict[str, str], workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COMMLINK_IT_LEASE", str(LEASE_SECONDS))
    import celery_worker_app

    app, tasks = celery_worker_app.build()
    root = Path(celery_env["COMMLINK_IT_ROOT"])
    distinct = write_mailboxes(root)
    associations = CHANNELS * (OWN + SHARED)
    store = tasks.resources().store
    assert isinstance(store, SqlStore)
    add_channels(store)

    def count(table: str) -> int:
        return count_rows(store, table)

    dispatching = Beat(tasks).around

    workers.start("a")
    workers.start("b")

    # let the import get going, then catch worker a holding a channel's lease
    wait_for(
        dispatching(lambda: count("commlink_message_assocs") >= associations // 5),
        40,
        "a fifth of the import",
    )
    victim: tuple[str, tuple[str, datetime]] | None = None

    def a_frozen_with_a_lease() -> bool:
        nonlocal victim
        workers.signal("a", signal.SIGSTOP)  # frozen, so what we read stays true
        pids = workers.pids("a")
        held = [(c, h) for c, h in sync_leases(store).items() if _pid_of(h[0]) in pids]
        if held:
            victim = held[0]
            return True
        workers.signal("a", signal.SIGCONT)
        return False

    wait_for(dispatching(a_frozen_with_a_lease), 40, "worker a to hold a lease", step=0.02)
    assert victim is not None
    victim_pids = workers.pids("a")
    workers.signal("a", signal.SIGKILL)
    killed_at = time.time()
    workers.procs["a"].wait(timeout=10)
    assert count("commlink_message_assocs") < associations, "killed after the import ended"

    wait_for(dispatching(lambda: all_active(store, CHANNELS)), 60, "every channel ACTIVE", step=0.2)

    # every message stored exactly once, with one association per channel
    assert count("commlink_messages") == distinct
    assert count("commlink_message_assocs") == associations
    with store.engine.connect() as conn:
        per_channel = dict(
            conn.execute(
                sa.text(
                    "SELECT channel_id, count(*) FROM commlink_message_assocs GROUP BY channel_id"
                )
            ).all()
        )
        duplicated = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT message_id FROM commlink_messages "
                "GROUP BY message_id HAVING count(*) > 1) d"
            )
        ).scalar_one()
    assert per_channel == {f"ch{n:02d}": OWN + SHARED for n in range(CHANNELS)}
    assert duplicated == 0
    assert all(
        not store.skips(f"ch{n:02d}", owner_of(store, f"ch{n:02d}")) for n in range(CHANNELS)
    )

    # the dead worker's lease was taken over, and its channel finished by b
    channel_id, (holder, expires_at) = victim
    assert sync_leases(store).get(channel_id, ("",))[0] != holder
    runs = call_runs(root)
    b_pids = workers.pids("b")
    later = [
        start
        for (ch, pid), spans in runs.items()
        if ch == channel_id and pid in b_pids
        for start, _ in spans
        if start > killed_at
    ]

    assert later, f"{channel_id} was not synced again after the kill"
    assert min(later) >= expires_at.timestamp(), "taken over before the lease expired"

    # no two processes worked on one channel at the same time; the killed
    # worker's last run is taken to last until the kill
    by_channel: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for (ch, pid), spans in runs.items():
        for start, end in spans:
            if pid in victim_pids and ch == channel_id and end == max(e for _, e in spans):
                end = killed_at
            by_channel[ch].append((start, end, pid))
    for ch, spans in by_channel.items():
        for start, end, pid in spans:
            for other_start, other_end, other in spans:
                overlap = start < other_end and other_start < end
                assert pid == other or not overlap, f"{ch}: processes {pid} and {other} overlapped"
    app.close()


def test_database_connections_cut_mid_import(
    celery_env: dict[str, str], workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server drops the worker's connections (pg_terminate_backend) during
    the import: the failed steps are retried and nothing is stored twice."""
    channels = 16
    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COMMLINK_IT_BACKOFF", "0.5")
    import celery_worker_app

    app, tasks = celery_worker_app.build()
    root = Path(celery_env["COMMLINK_IT_ROOT"])
    distinct = write_mailboxes(root, channels)
    associations = channels * (OWN + SHARED)
    # the workers' stores (and the dispatching one) connect as "commlink";
    # this one, which watches and cuts, under its own name
    store = SqlStore(
        celery_env["COMMLINK_IT_DB"],
        engine_options={"connect_args": {"application_name": "commlink-it-observer"}},
    )
    add_channels(store, channels)
    beat = Beat(tasks)
    workers.start("a", concurrency=2)
    cut: list[int] = []

    def cut_connections() -> bool:
        """Terminate the workers' busy connections (their store sets the
        application name), a few times while the import runs."""
        if len(cut) < 6 and count_rows(store, "commlink_message_assocs") < associations:
            with store.engine.connect() as conn:
                found = conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'commlink' "
                    "AND state <> 'idle' AND pid <> pg_backend_pid()"
                ).all()
            cut.extend(1 for (done,) in found if done)
        return all_active(store, channels)

    wait_for(beat.around(cut_connections), 60, "every channel ACTIVE", step=0.05)
    assert cut, "no connection was cut during the import"
    assert count_rows(store, "commlink_messages") == distinct
    assert count_rows(store, "commlink_message_assocs") == associations
    assert all(
        not store.skips(f"ch{n:02d}", owner_of(store, f"ch{n:02d}")) for n in range(channels)
    )
    log = workers.log("a")
    assert "terminating connection" in log or "server closed the connection" in log, log[-3000:]
    store.close()
    app.close()


@pytest.mark.timeout(240)  # past the wait below, so a timeout says what was waiting
def test_broker_connections_cut_mid_import(
    celery_env: dict[str, str], workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis drops the run's connections (CLIENT KILL) during the import: the
    workers reconnect, lost tasks are queued again by ``dispatch``, and
    nothing is stored twice."""
    import redis

    channels = 16
    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COMMLINK_IT_LEASE", "3")
    # a task message lost with a cut connection (taken off the queue, never
    # recorded as unacknowledged) is queued again by dispatch once the queue
    # is empty and the marker is 5 s old
    monkeypatch.setenv("COMMLINK_IT_REQUEUE_AFTER", "5")
    monkeypatch.setenv("COMMLINK_IT_BACKOFF", "0.5")
    import celery_worker_app

    app, tasks = celery_worker_app.build()
    root = Path(celery_env["COMMLINK_IT_ROOT"])
    distinct = write_mailboxes(root, channels)
    associations = channels * (OWN + SHARED)
    store = SqlStore(celery_env["COMMLINK_IT_DB"])
    add_channels(store, channels)
    beat = Beat(tasks)
    workers.start("a", concurrency=2)
    admin = redis.Redis.from_url(celery_env["COMMLINK_IT_BROKER"])
    name = celery_env["COMMLINK_IT_QUEUE"]
    cut: list[float] = []

    def cut_connections() -> bool:
        """Once the import is under way, kill the run's broker connections
        (workers and dispatcher alike) every 0.4 s, four times."""
        imported = count_rows(store, "commlink_message_assocs")
        due = not cut or time.monotonic() - cut[-1] > 0.4
        if 0 < imported < associations and len(cut) < 4 and due:
            killed = 0
            for client in admin.client_list():
                if client.get("name") == name:
                    with contextlib.suppress(redis.ResponseError):
                        killed += int(admin.client_kill_filter(_id=client["id"]))
            if killed:
                cut.append(time.monotonic())
        return all_active(store, channels)

    def explain() -> str:
        states = {f"ch{n:02d}": store.channel_state(f"ch{n:02d}") for n in range(channels)}
        active = ChannelStatus.ACTIVE
        waiting = {c: s for c, s in states.items() if s is None or s.status is not active}
        return f"cuts at {cut}; not active: {waiting}\nworker log:\n{workers.log('a')[-6000:]}"

    # Alone the whole test takes 4-6 s. kombu puts the messages a worker had
    # reserved back on the queue when its connection closes; one it could not
    # put back comes back after visibility_timeout (30 s) plus kombu's sweep
    # interval (1 s in this app), or is queued again by dispatch.
    try:
        wait_for(
            beat.around(cut_connections), 180, "every channel ACTIVE", step=0.05, explain=explain
        )
        assert cut, "no broker connection was cut during the import"
        log = workers.log("a")
        assert "Connection to broker lost" in log, log[-3000:]
        assert count_rows(store, "commlink_messages") == distinct
        assert count_rows(store, "commlink_message_assocs") == associations
        assert all(
            not store.skips(f"ch{n:02d}", owner_of(store, f"ch{n:02d}")) for n in range(channels)
        )
    finally:
        admin.close()
        store.close()
        app.close()


def test_a_lost_task_message_is_queued_again(
    celery_env: dict[str, str], workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker loses a queued task message (its Redis list is deleted):
    ``dispatch`` leaves the channel alone while the message may still be
    on its way, then queues it again, and a worker imports it."""
    import redis

    for key, value in celery_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COMMLINK_IT_REQUEUE_AFTER", "2")
    import celery_worker_app

    app, tasks = celery_worker_app.build()
    root = Path(celery_env["COMMLINK_IT_ROOT"])
    distinct = write_mailboxes(root, 1)
    store = SqlStore(celery_env["COMMLINK_IT_DB"])
    admin = redis.Redis.from_url(celery_env["COMMLINK_IT_BROKER"])
    queue = celery_env["COMMLINK_IT_PREFIX"] + celery_env["COMMLINK_IT_QUEUE"]
    try:
        add_channels(store, 1)
        assert tasks.run_dispatch() == {"due": 1, "queued": 1, "requeued": 0}
        assert admin.llen(queue) == 1
        assert admin.delete(queue) == 1  # lost: Redis holds no list for an empty queue
        assert tasks.run_dispatch() == {"due": 1, "queued": 0, "requeued": 0}
        time.sleep(2.2)
        assert tasks.run_dispatch() == {"due": 1, "queued": 1, "requeued": 1}
        assert admin.llen(queue) == 1
        time.sleep(2.2)  # waiting in its queue: left alone however old its marker
        assert tasks.run_dispatch() == {"due": 1, "queued": 0, "requeued": 0}
        workers.start("a", concurrency=1)
        wait_for(lambda: all_active(store, 1), 60, "ch00 ACTIVE", step=0.1)
        assert count_rows(store, "commlink_messages") == distinct
    finally:
        admin.close()
        store.close()
        app.close()
