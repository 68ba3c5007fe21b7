"""How many idle channels one worker keeps fresh within 5 minutes.

For each kind (Gmail and Graph on their local API servers, IMAP on a
private Dovecot, Maildir folders under /tmp) the run creates a fleet of
channels with a few messages each, imports them once, then times quiet
passes over the whole fleet with one ``Runner.run_once`` per pass (the
way a worker syncs its due channels; default concurrency, one provider
opened and closed per channel step) over a ``SqlStore`` on PostgreSQL when
it is reachable, else SQLite.

Prints per kind: quiet passes per second (channel steps), requests per
channel pass (HTTP requests; IMAP commands after login), mean/p95 ms per
channel step (``SyncReport.duration``), SQL statements and PostgreSQL
backend CPU per channel pass (read from /proc for the database's backends;
pg_stat_statements is not needed; 10 ms clock-tick resolution, backends
that close mid-run are missed) and the largest fleet one worker keeps
fresh: 300 s / seconds per quiet channel pass.
Targets: >= 10,000 Gmail/Graph channels and >= 2,000 IMAP channels.

The Google and Graph servers run as threads of the same process, so their
CPU counts against the worker here; the fleet sizes are pessimistic.

    .venv/bin/python benchmarks/fleet.py [--kinds gmail,graph,imap,maildir]
        [--channels N] [--passes 3] [--messages 3] [--sqlite] [--reuse]

``--reuse`` keeps one provider per channel open across passes and runs the
engine directly, to show what opening providers per step costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.sync.runner import Runner
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.postgres import reachable, temporary_database

OWNER = "owner@home.example"
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
FRESHNESS = 300.0  # seconds: new mail visible within 5 minutes
TARGETS = {"gmail": 10_000, "graph": 10_000, "imap": 2_000, "maildir": None}
DEFAULT_CHANNELS = {"gmail": 200, "graph": 200, "imap": 100, "maildir": 200}

Connect = Callable[[Channel], Any]


@dataclass
class Fleet:
    """Channels of one kind, how to open their providers, and a request count."""

    channels: list[Channel]
    connect: Connect
    requests: Callable[[], int] | None


def _message(channel: int, n: int, owner: str = OWNER) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=channel * 10 + n))
    return (
        f"From: Ann <ann{n}@client{channel % 17}.example>\r\nTo: {owner}\r\n"
        f"Subject: Fleet {channel}-{n}\r\nDate: {date}\r\n"
        f"Message-ID: <fleet-{channel}-{n}@bench>\r\nContent-Type: text/plain\r\n\r\n"
        f"Hello {n}\r\n"
    ).encode()


def _channel(kind: str, n: int, owner: str) -> Channel:
    settings = ChannelSettings(owner=owner, contact_policy=ContactPolicy.NONE)
    return Channel(f"{kind}-{n}", f"u{n}", ChannelKind.MAIL, kind, settings)


@contextlib.contextmanager
def gmail_fleet(count: int, messages: int) -> Iterator[Fleet]:
    from google.oauth2.credentials import Credentials

    from commlink.providers.google.gmail import GmailProvider
    from commlink.testing.google import GoogleApiServer

    with GoogleApiServer(user=OWNER) as server:
        tokens: dict[str, str] = {}
        channels = []
        for n in range(count):
            user = f"user{n}@home.example"
            tokens[f"gmail-{n}"] = token = f"token-{n}"
            server.add_token(token, user)
            server.gmail.mailbox(user)
            for m in range(messages):
                server.gmail.add_message(user, _message(n, m, user))
            channels.append(_channel("gmail", n, user))

        def connect(channel: Channel) -> GmailProvider:
            credentials = Credentials(token=tokens[channel.id])
            return GmailProvider(credentials, api_endpoint=server.base_url)

        yield Fleet(channels, connect, lambda: len(server.request_log))


@contextlib.contextmanager
def graph_fleet(count: int, messages: int) -> Iterator[Fleet]:
    from commlink.providers.microsoft.graph import GraphClient, GraphMailProvider, StaticToken
    from commlink.testing.microsoft import GraphServer

    # The local Graph serves one mailbox: every channel follows it with its
    # own delta links, as many mailboxes would.
    with GraphServer(user=OWNER) as server:
        for m in range(messages):
            server.mail.add_message(_message(0, m))
        channels = [_channel("graph", n, OWNER) for n in range(count)]

        def connect(_: Channel) -> GraphMailProvider:
            client = GraphClient(StaticToken(server.token), base_url=server.base_url)
            return GraphMailProvider(client, user=OWNER)

        yield Fleet(channels, connect, lambda: len(server.request_log))


@contextlib.contextmanager
def imap_fleet(count: int, messages: int) -> Iterator[Fleet]:
    from commlink.providers.imap.provider import ImapProvider
    from commlink.testing.dovecot import DovecotServer

    with DovecotServer() as server:
        channels = []
        for n in range(count):
            user = f"fleet{n}"
            server.add_user(user)
            server.deliver("INBOX", [_message(n, m) for m in range(messages)], username=user)
            channels.append(_channel("imap", n, OWNER))

        opened: list[ImapProvider] = []

        def connect(channel: Channel) -> ImapProvider:
            user = "fleet" + channel.id.split("-")[1]
            provider = ImapProvider(
                server.host, server.port, username=user, password=server.password, ssl=False
            )
            opened.append(provider)
            return provider

        # commands sent after login (a closed provider keeps its count)
        yield Fleet(channels, connect, lambda: sum(p.round_trips for p in opened))


@contextlib.contextmanager
def maildir_fleet(count: int, messages: int) -> Iterator[Fleet]:
    from commlink.providers.files.maildir import MaildirProvider

    with tempfile.TemporaryDirectory(prefix="fleet-maildir-") as tmp:
        channels = []
        for n in range(count):
            root = Path(tmp) / f"box{n}"
            for folder in (root, root / ".Sent"):
                for sub in ("cur", "new", "tmp"):
                    (folder / sub).mkdir(parents=True)
            for m in range(messages):
                (root / "cur" / f"{1_700_000_000 + m}.M{m}P{n}.bench:2,S").write_bytes(
                    _message(n, m)
                )
            channels.append(_channel("maildir", n, OWNER))

        def connect(channel: Channel) -> MaildirProvider:
            return MaildirProvider(Path(tmp) / f"box{channel.id.split('-')[1]}")

        yield Fleet(channels, connect, None)


FLEETS = {"gmail": gmail_fleet, "graph": graph_fleet, "imap": imap_fleet, "maildir": maildir_fleet}


# -- PostgreSQL backend CPU ----------------------------------------------------------


def _backend_cpu(engine: sa.Engine) -> dict[int, float] | None:
    """CPU seconds by backend pid of this database's connections, or None
    when /proc is not readable for them (another host, other rights)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        found = {}
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            found[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
        return found


def _cpu_spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# -- measuring -----------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    channels: int
    imported: float
    steps_per_second: float
    requests_per_step: float | None
    mean_ms: float
    p95_ms: float
    db_cpu_ms: float | None
    statements: float
    errors: int

    @property
    def fleet(self) -> int:
        return int(FRESHNESS * self.steps_per_second)


def _quiet_pass(
    runner: Runner, channels: list[Channel], providers: dict[str, Any] | None
) -> list[SyncReport]:
    """One pass the way a worker runs it (``run_once``), or, with
    ``providers``, the engine over providers kept open between passes."""
    if providers is None:
        return runner.run_once(channels)
    engine = runner.engine
    with ThreadPoolExecutor(max_workers=runner.concurrency) as pool:
        return list(pool.map(lambda c: engine.run(c, providers[c.id]), channels))


def measure(
    kind: str, count: int, messages: int, passes: int, store_url: sa.Engine, reuse: bool
) -> Result:
    store = SqlStore(store_url)
    statements = [0]

    def counted(*_: object) -> None:
        statements[0] += 1

    sa.event.listen(store_url, "before_cursor_execute", counted)
    with FLEETS[kind](count, messages) as fleet:
        for channel in fleet.channels:
            store.save_channel(channel)
        engine = SyncEngine(store, InMemoryDirectory(), folder_ttl=timedelta(minutes=5))
        runner = Runner(engine, fleet.connect, watch=False)
        started = time.perf_counter()
        first = runner.run_once(fleet.channels)
        imported = time.perf_counter() - started
        failed = [r for r in first if r.errors or not r.complete]
        if failed:
            raise RuntimeError(f"{kind}: first import failed: {failed[0].summary()}")
        providers = {c.id: fleet.connect(c) for c in fleet.channels} if reuse else None
        durations: list[float] = []
        errors = 0
        statements[0] = 0
        requests_before = fleet.requests() if fleet.requests else 0
        cpu_before = _backend_cpu(store_url)
        started = time.perf_counter()
        for _ in range(passes):
            reports = _quiet_pass(runner, fleet.channels, providers)
            durations += [r.duration for r in reports]
            errors += sum(1 for r in reports if r.errors or r.fetched)
        elapsed = time.perf_counter() - started
        cpu = _cpu_spent(cpu_before, _backend_cpu(store_url))
        steps = passes * len(fleet.channels)
        requests = (fleet.requests() - requests_before) / steps if fleet.requests else None
        sa.event.remove(store_url, "before_cursor_execute", counted)
        for provider in (providers or {}).values():
            provider.close()
    ms = sorted(d * 1000 for d in durations)
    return Result(
        kind,
        count,
        imported,
        steps / elapsed,
        requests,
        statistics.fmean(ms),
        ms[int(0.95 * (len(ms) - 1))],
        cpu * 1000 / steps if cpu is not None else None,
        statements[0] / steps,
        errors,
    )


@contextlib.contextmanager
def database(sqlite: bool) -> Iterator[sa.Engine]:
    if not sqlite and reachable():
        with temporary_database() as engine:
            yield engine
        return
    with tempfile.TemporaryDirectory(prefix="fleet-db-") as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/fleet.sqlite")
        yield engine
        engine.dispose()


def report(results: list[Result], backend: str, reuse: bool) -> None:
    how = "providers kept open" if reuse else "Runner.run_once, a provider per step"
    print(f"\nquiet passes, one worker ({how}), store: {backend}")
    head = (
        f"{'kind':8} {'chans':>5} {'import s':>8} {'steps/s':>8} {'req/step':>8} "
        f"{'mean ms':>8} {'p95 ms':>8} {'sql/step':>8} {'db cpu ms':>9} {'fleet@5min':>10}  target"
    )
    print(head)
    for r in results:
        target = TARGETS[r.kind]
        verdict = (
            "-" if target is None else f">= {target:,} " + ("ok" if r.fleet >= target else "MISS")
        )
        requests = f"{r.requests_per_step:.1f}" if r.requests_per_step is not None else "n/a"
        cpu = f"{r.db_cpu_ms:.2f}" if r.db_cpu_ms is not None else "n/a"
        print(
            f"{r.kind:8} {r.channels:>5} {r.imported:>8.1f} {r.steps_per_second:>8.1f} "
            f"{requests:>8} {r.mean_ms:>8.1f} {r.p95_ms:>8.1f} {r.statements:>8.1f} "
            f"{cpu:>9} {r.fleet:>10,}  {verdict}"
        )
        if r.errors:
            print(f"  {r.kind}: {r.errors} quiet steps reported errors or fetched mail")
    print(
        "req/step: HTTP requests per channel pass (IMAP: commands after login; "
        "n/a: Maildir has none);"
        " sql/step: statements sent; db cpu: PostgreSQL backend CPU per channel pass"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="gmail,graph,imap,maildir")
    parser.add_argument("--channels", type=int, help="per kind (default 200; IMAP 100)")
    parser.add_argument("--passes", type=int, default=3, help="quiet passes to time")
    parser.add_argument("--messages", type=int, default=3, help="per mailbox")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even if PostgreSQL runs")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep one provider per channel open across passes (the engine without Runner)",
    )
    args = parser.parse_args()

    results = []
    with database(args.sqlite) as engine:
        backend = engine.dialect.name
        for kind in args.kinds.split(","):
            count = args.channels or DEFAULT_CHANNELS[kind]
            results.append(measure(kind, count, args.messages, args.passes, engine, args.reuse))
            print(f"{kind}: done", flush=True)
    report(results, backend, args.reuse)


if __name__ == "__main__":
    main()
