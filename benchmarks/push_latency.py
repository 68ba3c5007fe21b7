"""Push latency: time from a message's delivery to its being stored, with a
polling interval of an hour, so that only push can bring it in time.

Each case delivers ``--samples`` messages one after the other to a folder
of a channel that is up to date and watched, and waits (polling the store
every 5 ms) until the message is stored. Drivers:

- ``runner``: ``Runner.serve()`` in this process, SQLite store;
- ``celery``: a real worker (``celery -A push_worker worker``) and
  ``commlink watch`` as separate processes, on the local Redis and a
  temporary PostgreSQL database (skipped when either is unreachable).

Prints the median and the maximum per case and passes a case when its
maximum is under ``--target`` seconds (2 by default). Add a case by adding
a row to ``CASES``; a new kind of account (a local Gmail or Graph server)
is a ``Source`` in ``SOURCES``.

    .venv/bin/python benchmarks/push_latency.py [--samples 10] [--only celery]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import attrs

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.registry import connect
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.runner import Runner
from commlink.testing.dovecot import DovecotServer
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import OWNER, sample_message

HERE = Path(__file__).resolve().parent
REDIS = ("127.0.0.1", 6379)
Stored = Callable[[], int]


class Source(Protocol):
    """An account on a local server: the channel that syncs it, and delivery."""

    def channel(self) -> tuple[Channel, dict[str, Any]]:
        """The channel and its provider options (as in a configuration file)."""
        ...

    def deliver(self, folder: str, raw: bytes) -> None: ...

    def close(self) -> None: ...


class DovecotSource:
    """A fresh Dovecot with one user; mail arrives by APPEND from another session."""

    def __init__(self) -> None:
        self.server = DovecotServer()
        self.server.start()
        self.account = ImapAccount(self.server, "bench")

    def channel(self) -> tuple[Channel, dict[str, Any]]:
        settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
        channel = Channel("push-bench", "u-owner", ChannelKind.MAIL, "imap", settings)
        options = {
            "host": self.server.host,
            "port": self.server.port,
            "username": self.account.username,
            "password": self.server.password,
            "ssl": False,
        }
        return channel, options

    def deliver(self, folder: str, raw: bytes) -> None:
        self.account.add(folder, raw)

    def close(self) -> None:
        self.account.close()
        self.server.stop()


#: Kinds of account, by name.
SOURCES: dict[str, Callable[[], Source]] = {"dovecot": DovecotSource}


@attrs.frozen
class Case:
    name: str
    source: str
    folder: str
    driver: str


#: What is measured; rows for other providers go here.
CASES = [
    Case("IMAP INBOX, Runner", "dovecot", "INBOX", "runner"),
    Case("IMAP Archive, Runner", "dovecot", "Archive", "runner"),
    Case("IMAP INBOX, Celery", "dovecot", "INBOX", "celery"),
    Case("IMAP Archive, Celery", "dovecot", "Archive", "celery"),
]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def runner_driver(source: Source, tmp: Path) -> Iterator[Stored]:
    """``Runner.serve()`` with an hour's interval and tick: only a wake-up syncs."""
    channel, options = source.channel()
    store = SqlStore(f"sqlite:///{tmp / 'bench.sqlite'}")
    store.save_channel(channel)
    runner = Runner(
        SyncEngine(store, SqlDirectory(store)),
        lambda c: connect(c, options),
        interval=timedelta(hours=1),
    )
    serving = threading.Thread(target=runner.serve, kwargs={"tick": timedelta(hours=1)})
    serving.start()
    try:
        _wait(lambda: runner.hub.states() == {channel.id: "watching"}, 30, "the watch")
        _wait(lambda: _synced(store, channel.id), 30, "the first sync")
        time.sleep(1.0)  # the catch-up sync after the watch started
        yield lambda: store.count_associations(channel.id)
    finally:
        runner.stop()
        serving.join(timeout=15)
        store.close()


def _synced(store: SqlStore, channel_id: str) -> bool:
    state = store.channel_state(channel_id)
    return state is not None and state.last_success is not None


def _reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _config(path: Path, database: str, channel: Channel, options: dict[str, Any]) -> None:
    settings = channel.settings
    lines = [
        "[store]",
        f'url = "{database}"',
        "[[channels]]",
        f'id = "{channel.id}"',
        f'user = "{channel.user_id}"',
        f'provider = "{channel.provider}"',
        f'owner = "{settings.owner}"',
        "org_domains = [" + ", ".join(f'"{d}"' for d in sorted(settings.org_domains)) + "]",
        "[channels.options]",
    ]
    for key, value in options.items():
        shown = str(value).lower() if isinstance(value, bool) else value
        lines.append(f'{key} = "{shown}"' if isinstance(value, str) else f"{key} = {shown}")
    path.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def celery_driver(source: Source, tmp: Path) -> Iterator[Stored]:
    """A worker and ``commlink watch`` in processes of their own; no beat."""
    import redis

    from commlink.testing.postgres import reachable, temporary_database

    if not _reachable(REDIS) or not reachable():
        raise RuntimeError("Redis on 127.0.0.1:6379 and PostgreSQL are needed")
    channel, options = source.channel()
    token = secrets.token_hex(6)
    with temporary_database() as engine:
        database = engine.url.render_as_string(hide_password=False)
        config = tmp / "commlink.toml"
        _config(config, database, channel, options)
        env = {
            **os.environ,
            "COMMLINK_BENCH_CONFIG": str(config),
            "COMMLINK_BENCH_PREFIX": f"commlink-bench-{token}:",
            "COMMLINK_BENCH_QUEUE": f"commlink-bench-{token}",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        queue = env["COMMLINK_BENCH_QUEUE"]
        worker = [sys.executable, "-m", "celery", "-A", "push_worker", "worker", "-Q", queue]
        worker += ["--pool=prefork", "--concurrency=1", "--loglevel=WARNING"]
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        worker += ["-n", f"{queue}@%h"]
        watch = [sys.executable, "-m", "commlink", "watch", str(config)]
        watch += ["--app", "push_worker:tasks", "--tick", "1"]
        procs = [_start(worker, env, tmp / "worker.log"), _start(watch, env, tmp / "watch.log")]
        store = SqlStore(database)
        try:
            _wait(lambda: _synced(store, channel.id), 60, "the first sync through Celery")
            time.sleep(1.0)
            yield lambda: store.count_associations(channel.id)
        finally:
            for proc in procs:
                _stop(proc)
            store.close()
            client = redis.Redis(*REDIS)
            stale = list(client.scan_iter(match=f"{env['COMMLINK_BENCH_PREFIX']}*"))
            if stale:
                client.delete(*stale)
            client.close()


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


DRIVERS: dict[str, Callable[[Source, Path], contextlib.AbstractContextManager[Stored]]] = {
    "runner": runner_driver,
    "celery": celery_driver,
}


def measure(case: Case, samples: int, timeout: float = 30.0) -> list[float]:
    """Seconds from each delivery to the message being stored."""
    source = SOURCES[case.source]()
    waits: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp, DRIVERS[case.driver](source, Path(tmp)) as count:
            for n in range(1, samples + 1):
                before = count()
                started = time.perf_counter()
                source.deliver(case.folder, sample_message(n))
                while count() <= before and time.perf_counter() - started < timeout:
                    time.sleep(0.005)
                waits.append(time.perf_counter() - started)
                time.sleep(0.3)
    finally:
        source.close()
    return waits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--target", type=float, default=2.0, help="seconds a case must stay under")
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    failed = False
    print(f"{'case':<28} {'n':>3} {'median':>8} {'max':>8}  result (< {args.target:g} s)")
    for case in CASES:
        if args.only and args.only.lower() not in case.name.lower():
            continue
        try:
            waits = measure(case, args.samples)
        except (RuntimeError, TimeoutError) as exc:
            print(f"{case.name:<28} skipped: {exc}")
            continue
        worst = max(waits)
        ok = worst < args.target
        failed |= not ok
        print(
            f"{case.name:<28} {len(waits):>3} {statistics.median(waits):>7.3f}s"
            f" {worst:>7.3f}s  {'pass' if ok else 'FAIL'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
