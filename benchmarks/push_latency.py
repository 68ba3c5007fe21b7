"""Push latency: time from a message's delivery to its being stored, with a
polling interval of an hour, so that only push can bring it in time.

Each case delivers ``--samples`` messages (or calendar events) one after
the other to a channel that is up to date and watched, and waits (polling
the store every 5 ms) until it is stored. IMAP channels are woken through
NOTIFY/IDLE; Gmail, Google Calendar and Graph channels through webhooks:
the local server's push (Gmail: Pub/Sub with a signed OIDC token) goes to
``push_app`` served as a ``[push]`` table makes the CLI serve it, with a
``PushKeeper`` subscribing first. Drivers:

- ``runner``: ``Runner.serve()`` in this process, SQLite store, the push
  app wired as ``commlink sync --watch`` wires it;
- ``celery``: a real worker (``celery -A push_worker worker``) and
  ``commlink watch`` (which serves the push app) as separate processes,
  on the local Redis and a temporary PostgreSQL database (skipped when
  either is unreachable).

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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import attrs

from commlink.cli.config import ChannelConfig
from commlink.cli.push import serving_push
from commlink.cli.push_config import parse_push, with_push_defaults
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.registry import connect
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.runner import Runner
from commlink.testing.dovecot import DovecotServer
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT
from commlink.testing.imap_account import ImapAccount
from commlink.testing.microsoft import GraphServer
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

    def push_table(self, public_url: str) -> dict[str, Any] | None:
        """``None`` for a source that pushes through its own connection
        (IMAP); else what the ``[push]`` table needs besides ``listen`` and
        ``public_url``, once the provider side points at ``public_url``."""
        ...

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

    def push_table(self, public_url: str) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        self.account.close()
        self.server.stop()


def _settings() -> ChannelSettings:
    return ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))


class GoogleSource:
    """The local Gmail and Google Calendar; Gmail pushes through the local
    Pub/Sub (a push subscription with OIDC tokens, as an administrator
    sets it up), Calendar through notification channels."""

    topic = "projects/crm-bench/topics/gmail"

    def __init__(self, calendar: bool) -> None:
        self.calendar = calendar
        self.server = GoogleApiServer(user=OWNER).start()
        self.server.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True)
        self.events = 0

    def channel(self) -> tuple[Channel, dict[str, Any]]:
        if self.calendar:
            channel = Channel("push-gcal", "u-owner", ChannelKind.CALENDAR, "google-calendar",
                              _settings())  # fmt: skip
            return channel, {"token": self.server.token, "api_endpoint": self.server.calendar_url}
        channel = Channel("push-gmail", "u-owner", ChannelKind.MAIL, "gmail", _settings())
        return channel, {"token": self.server.token, "api_endpoint": self.server.base_url}

    def deliver(self, folder: str, raw: bytes) -> None:
        if self.calendar:
            self.events += 1
            self.server.calendar.add_event(OWNER, _google_event(self.events))
        else:
            self.server.gmail.add_message(OWNER, raw, labels=(folder,))

    def push_table(self, public_url: str) -> dict[str, Any] | None:
        audience = f"{public_url}/push/gmail"
        self.server.pubsub.create_push_subscription(self.topic, audience, name="bench")
        return {
            "gmail_topic": self.topic,
            "gmail_service_accounts": [PUSH_SERVICE_ACCOUNT],
            "gmail_certs_url": self.server.certs_url,
        }

    def close(self) -> None:
        self.server.wait_for_pushes(5)
        self.server.stop()


class GraphSource:
    """The strict local Graph: subscriptions validated against the push
    app, each change POSTed to it."""

    def __init__(self, calendar: bool) -> None:
        self.calendar = calendar
        self.server = GraphServer(user=OWNER).start()
        self.events = 0

    def channel(self) -> tuple[Channel, dict[str, Any]]:
        options = {"token": self.server.token, "base_url": self.server.base_url, "user": OWNER}
        if self.calendar:
            channel = Channel("push-m365-cal", "u-owner", ChannelKind.CALENDAR, "graph-calendar",
                              _settings())  # fmt: skip
        else:
            channel = Channel("push-m365", "u-owner", ChannelKind.MAIL, "graph", _settings())
        return channel, options

    def deliver(self, folder: str, raw: bytes) -> None:
        if self.calendar:
            self.events += 1
            self.server.calendar.add_event(self.server.calendar.default, _graph_event(self.events))
        else:
            self.server.mail.add_message(raw, folder)

    def push_table(self, public_url: str) -> dict[str, Any] | None:
        return {}

    def close(self) -> None:
        self.server.stop()


def _when(n: int) -> datetime:
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return start + timedelta(days=1, hours=n)


def _google_event(n: int) -> dict[str, Any]:
    start = _when(n)
    return {
        "summary": f"Review {n}",
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "organizer": {"email": OWNER, "self": True},
        "attendees": [{"email": "ann@client.example", "responseStatus": "accepted"}],
    }


def _graph_event(n: int) -> dict[str, Any]:
    start = _when(n)
    stamp = "%Y-%m-%dT%H:%M:%S.0000000"
    return {
        "subject": f"Review {n}",
        "start": {"dateTime": start.strftime(stamp), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(hours=1)).strftime(stamp), "timeZone": "UTC"},
        "organizer": {"emailAddress": {"name": "Owner", "address": OWNER}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": "Ann", "address": "ann@client.example"},
            }
        ],
    }


#: Kinds of account, by name.
SOURCES: dict[str, Callable[[], Source]] = {
    "dovecot": DovecotSource,
    "gmail": lambda: GoogleSource(calendar=False),
    "google-calendar": lambda: GoogleSource(calendar=True),
    "graph": lambda: GraphSource(calendar=False),
    "graph-calendar": lambda: GraphSource(calendar=True),
}


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
    Case("Gmail, Runner", "gmail", "INBOX", "runner"),
    Case("Google Calendar, Runner", "google-calendar", "", "runner"),
    Case("Graph mail, Runner", "graph", "inbox", "runner"),
    Case("Graph calendar, Runner", "graph-calendar", "", "runner"),
    Case("Gmail, Celery", "gmail", "INBOX", "celery"),
    Case("Graph mail, Celery", "graph", "inbox", "celery"),
    Case("Google Calendar, Celery", "google-calendar", "", "celery"),
    Case("Graph calendar, Celery", "graph-calendar", "", "celery"),
]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def runner_driver(source: Source, tmp: Path) -> Iterator[Stored]:
    """``Runner.serve()`` with an hour's interval and tick: only a wake-up syncs.
    For a webhook source, the push app and keeper as ``commlink sync --watch``
    runs them with a ``[push]`` table."""
    channel, options = source.channel()
    push = _push_config(source)
    if push is not None:
        options = dict(with_push_defaults([ChannelConfig(channel, options)], push)[0].options)
    store = SqlStore(f"sqlite:///{tmp / 'bench.sqlite'}")
    store.save_channel(channel)
    runner = Runner(
        SyncEngine(store, SqlDirectory(store)),
        lambda c: connect(c, options),
        interval=timedelta(hours=1),
    )
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        if push is not None:
            serve = serving_push(push, store, runner.wake, runner.connect, announce=False)
            service = stack.enter_context(serve)
            runner.hub.duties.append(service.duty)
        serving = threading.Thread(target=runner.serve, kwargs={"tick": timedelta(hours=1)})
        serving.start()
        try:
            if push is None:
                _wait(lambda: runner.hub.states() == {channel.id: "watching"}, 30, "the watch")
            else:
                _wait(lambda: _subscribed(store, channel.id), 30, "the push subscriptions")
            _wait(lambda: _synced(store, channel.id), 30, "the first sync")
            time.sleep(1.0)  # the catch-up sync after the watch started
            yield lambda: store.count_associations(channel.id)
        finally:
            runner.stop()
            serving.join(timeout=15)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _push_table(source: Source) -> dict[str, Any] | None:
    """The ``[push]`` table for a webhook source, on a free loopback port."""
    port = _free_port()
    public_url = f"http://127.0.0.1:{port}"
    extra = source.push_table(public_url)
    if extra is None:
        return None
    return {"listen": f"127.0.0.1:{port}", "public_url": public_url, **extra}


def _push_config(source: Source) -> Any:
    table = _push_table(source)
    return None if table is None else parse_push(table)


def _subscribed(store: SqlStore, channel_id: str) -> bool:
    return bool(store.subscription_store().subscriptions(channel_id=channel_id))


def _synced(store: SqlStore, channel_id: str) -> bool:
    state = store.channel_state(channel_id)
    return state is not None and state.last_success is not None


def _reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _config(
    path: Path,
    database: str,
    channel: Channel,
    options: dict[str, Any],
    push: dict[str, Any] | None = None,
) -> None:
    settings = channel.settings
    lines = ["[store]", f'url = "{database}"']
    if push is not None:
        lines += ["[push]", *(f"{key} = {_toml(value)}" for key, value in push.items())]
    lines += [
        "[[channels]]",
        f'id = "{channel.id}"',
        f'user = "{channel.user_id}"',
        f'provider = "{channel.provider}"',
        f'owner = "{settings.owner}"',
        "org_domains = [" + ", ".join(f'"{d}"' for d in sorted(settings.org_domains)) + "]",
        "[channels.options]",
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
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
        push = _push_table(source)  # served by the watch process
        _config(config, database, channel, options, push)
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
            if push is not None:
                _wait(lambda: _subscribed(store, channel.id), 30, "the push subscriptions")
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
