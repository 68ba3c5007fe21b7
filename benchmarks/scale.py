"""Scale-out: many channels into PostgreSQL on Celery workers, and timeline reads.

Import: C channels (default 200) of M generated messages each (default
500, Maildirs written once under ``--corpus``) are synced into a fresh
PostgreSQL database by one Celery worker with 1 process, then with 2
processes (``--workers 1 2``), through ``commlink.contrib.celery``: one
``dispatch`` queues every channel and the clock stops when all are ACTIVE.
It prints messages/s per run and the speed-up (target >= 1.7x on 2 cores),
with the machine's load average, since other work on the machine skews it.

Timeline: a company with T threads (default 50,000) is added to the last
import's database; ``SqlStore.timeline`` for it is timed for the first page
and for pages further down (target p99 < 50 ms).

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

    python benchmarks/scale.py [--channels 200] [--messages 500] [--workers 1 2]
                               [--threads 50000] [--queries 300] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

REDIS_URL = "redis://127.0.0.1:6379/0"
OWNER = "owner@northwind.example"


def _settings() -> Any:
    from commlink.model import ChannelSettings, ContactPolicy

    return ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"northwind.example"}),
        contact_policy=ContactPolicy.NONE,
    )


# -- the Celery app the worker processes run (``celery -A scale worker``) ------


def build_app() -> tuple[Any, Any]:
    """The benchmark's Celery app and commlink tasks, from ``COMMLINK_SCALE_*``."""
    from celery import Celery

    from commlink.contrib.celery import install
    from commlink.providers.files.maildir import MaildirProvider
    from commlink.stores.sql import SqlDirectory, SqlStore

    env = os.environ
    root = Path(env["COMMLINK_SCALE_CORPUS"])
    app = Celery("commlink_scale")
    app.conf.update(
        broker_url=REDIS_URL,
        broker_transport_options={
            "global_keyprefix": env["COMMLINK_SCALE_PREFIX"],
            "visibility_timeout": 3600,
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=env["COMMLINK_SCALE_QUEUE"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    tasks = install(
        app,
        store_factory=lambda: SqlStore(env["COMMLINK_SCALE_DB"]),
        provider_factory=lambda channel: MaildirProvider(root / channel.id),
        directory_factory=SqlDirectory,
        lease_ttl=timedelta(minutes=5),
        batch_size=500,
        max_batches=20,
    )
    return app, tasks


if "COMMLINK_SCALE_DB" in os.environ:
    app, tasks = build_app()


# -- corpus --------------------------------------------------------------------


def write_corpus(root: Path, channels: int, per_channel: int) -> None:
    """One Maildir per channel; messages are numbered across channels, so
    every Message-ID is distinct (replies point within the channel)."""
    marker = root / f".complete-v2-{channels}x{per_channel}"  # v2: arrival times in names
    if marker.exists():
        return
    from corpus import arrival, messages

    stream = messages(channels * per_channel, people=50_000)
    for c in range(channels):
        box = root / f"ch{c:03d}"
        shutil.rmtree(box, ignore_errors=True)  # an older corpus's files
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True)
        for i in range(per_channel):
            raw = next(stream)
            stamp = arrival(c * per_channel + i)
            (box / "cur" / f"{stamp}.M{i}P{c}.scale:2,S").write_bytes(raw)
    marker.touch()


def warm_page_cache(root: Path) -> None:
    """Read every message once, so no run pays for the disk."""
    for path in root.glob("ch*/cur/*"):
        path.read_bytes()


# -- one import run ------------------------------------------------------------


def cpu_seconds(group: int) -> tuple[float, float]:
    """CPU seconds used so far by the worker's process group and by
    PostgreSQL backend processes (``/proc``, Linux only; zeros elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    workers = database = 0.0
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0, 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if int(fields[2]) == group:
            workers += used
        elif command.startswith(b"postgres: "):
            database += used
    return workers, database


@contextlib.contextmanager
def worker(env: dict[str, str], processes: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        command = [sys.executable, "-m", "celery", "-A", "scale", "worker", "--pool=prefork"]
        command += [f"--concurrency={processes}", "-Q", env["COMMLINK_SCALE_QUEUE"]]
        command += ["-n", f"scale-{secrets.token_hex(3)}@%h", "--loglevel=WARNING"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        proc = subprocess.Popen(
            command,
            cwd=HERE,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def import_run(
    corpus: Path, channels: int, per_channel: int, processes: int, keep: bool
) -> tuple[float, Any]:
    """Sync every channel with one worker of ``processes`` processes; returns
    messages/s and (when ``keep``) the database's context manager, still open."""
    import redis
    import sqlalchemy as sa

    from commlink.model import Channel, ChannelKind
    from commlink.stores.sql import SqlStore
    from commlink.testing.postgres import temporary_database

    database = temporary_database()
    engine = database.__enter__()
    url = engine.url.render_as_string(hide_password=False)
    token = secrets.token_hex(6)
    env = {
        "COMMLINK_SCALE_DB": url,
        "COMMLINK_SCALE_CORPUS": str(corpus),
        "COMMLINK_SCALE_PREFIX": f"commlink-scale-{token}:",
        "COMMLINK_SCALE_QUEUE": f"commlink-scale-{token}",
    }
    os.environ.update(env)
    bench_app, bench_tasks = build_app()
    store = SqlStore(engine)
    settings = _settings()
    for c in range(channels):
        store.save_channel(Channel(f"ch{c:03d}", "owner", ChannelKind.MAIL, "maildir", settings))
    log = Path(tempfile.gettempdir()) / f"commlink-scale-worker-{token}.log"
    try:
        with worker(env, processes, log) as proc:
            deadline = time.monotonic() + 60
            while not bench_app.control.ping(timeout=0.5):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the worker did not start; see {log}")
            load_before = os.getloadavg()[0]
            cpu_before = cpu_seconds(proc.pid)
            started = time.perf_counter()
            bench_tasks.run_dispatch()
            query = sa.text("SELECT count(*) FROM commlink_channel_states WHERE status = 'active'")
            while True:
                with engine.connect() as conn:
                    if conn.execute(query).scalar_one() >= channels:
                        break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            load_after = os.getloadavg()[0]
            cpu_after = cpu_seconds(proc.pid)
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM commlink_message_assocs").scalar()
            skipped = conn.exec_driver_sql("SELECT count(*) FROM commlink_skips").scalar()
        total = channels * per_channel
        assert stored is not None
        assert skipped is not None
        assert stored + skipped == total, (stored, skipped, total)
        rate = total / elapsed
        print(
            f"{processes} worker process{'es' if processes > 1 else ''}: {rate:7,.0f} msg/s "
            f"({total:,} messages in {elapsed:5.1f}s; {stored:,} stored, {skipped:,} skipped; "
            f"load average {load_before:.1f} before, {load_after:.1f} after)\n"
            f"    CPU: workers {cpu_after[0] - cpu_before[0]:.1f}s, "
            f"PostgreSQL (all databases) {cpu_after[1] - cpu_before[1]:.1f}s"
        )
    finally:
        store.close()
        bench_app.close()
        client = redis.Redis.from_url(REDIS_URL)
        stale = list(client.scan_iter(match=f"{env['COMMLINK_SCALE_PREFIX']}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
        if not keep:
            database.__exit__(None, None, None)
    return rate, (database, engine) if keep else None


# -- timeline ------------------------------------------------------------------


def _company_message(n: int, rng: random.Random) -> bytes:
    person = rng.randrange(400)
    t0 = 1_700_000_000 + n * 600
    from datetime import datetime, timezone

    date = format_datetime(datetime.fromtimestamp(t0, timezone.utc))
    if rng.random() < 0.5:
        sender, to = f"Buyer {person} <buyer{person}@bigco.example>", f"Owner <{OWNER}>"
    else:
        sender, to = f"Owner <{OWNER}>", f"Buyer {person} <buyer{person}@bigco.example>"
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Deal {n}\r\nDate: {date}\r\n"
        f"Message-ID: <bigco-{n}@generated.example>\r\n\r\nAbout deal {n}.\r\n"
    ).encode()


def add_company_threads(engine: Any, threads: int) -> None:
    """``threads`` one-message threads with people of ``bigco.example``,
    linked to company ``bigco`` through the policy, committed in batches."""
    from commlink.mime.parse import parse_message
    from commlink.model import Channel, ChannelKind
    from commlink.policy.pipeline import evaluate
    from commlink.records import SyncBatch
    from commlink.stores.sql import SqlStore
    from commlink.testing.directory import InMemoryDirectory

    directory = InMemoryDirectory()
    directory.add_company("bigco", "BigCo", ["bigco.example"])
    channel = Channel("bigco-mail", "owner", ChannelKind.MAIL, "maildir", _settings())
    store = SqlStore(engine)
    store.save_channel(channel)
    rng = random.Random(11)
    size = 1000
    for start in range(0, threads, size):
        parsed = [
            parse_message(_company_message(n, rng), provider_id=str(n))
            for n in range(start, min(threads, start + size))
        ]
        result = evaluate(parsed, channel, {}, directory, {})
        store.commit(
            SyncBatch(
                channel.id,
                "INBOX",
                messages=result.records,
                links=result.links,
                skipped=result.skipped,
                generation=1,
            )
        )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def _percentile(times: Sequence[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timeline_latency(engine: Any, queries: int) -> None:
    from commlink.records import PageRequest, Target, TargetKind, Viewer
    from commlink.stores.sql import SqlStore

    store = SqlStore(engine)
    target = Target(TargetKind.COMPANY, "bigco")
    viewer = Viewer("someone-else")
    first = store.timeline(target, viewer)
    assert len(first.items) == 50
    assert first.next is not None
    tokens = [first.next]
    for _ in range(40):  # pages 2..41, about 2,000 threads down
        page = store.timeline(target, viewer, PageRequest(after=tokens[-1]))
        if page.next is None:
            break
        tokens.append(page.next)
    rng = random.Random(5)
    for label, after in (("first page", lambda: None), ("later pages", lambda: rng.choice(tokens))):
        times: list[float] = []
        for _ in range(queries):
            request = PageRequest(after=after())
            started = time.perf_counter()
            store.timeline(target, viewer, request)
            times.append(time.perf_counter() - started)
        print(
            f"timeline, company with {len(tokens)}+ pages of 50 threads, {label:<11}: "
            f"p50 {statistics.median(times) * 1000:6.2f} ms, "
            f"p99 {_percentile(times, 0.99) * 1000:6.2f} ms (target p99 < 50 ms)"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--corpus", default=str(Path(tempfile.gettempdir()) / "commlink-scale"))
    args = parser.parse_args()

    corpus = Path(args.corpus)
    started = time.perf_counter()
    write_corpus(corpus, args.channels, args.messages)
    print(
        f"corpus: {args.channels} Maildirs x {args.messages} messages in {corpus} "
        f"(ready in {time.perf_counter() - started:.1f}s); {os.cpu_count()} CPUs"
    )
    # The first import after the corpus is written (or evicted) reads it from
    # disk and warms PostgreSQL; unmeasured, so the measured runs compare
    # like with like whatever their order.
    warm_page_cache(corpus)
    print("warm-up (not measured):", end=" ", flush=True)
    import_run(corpus, min(10, args.channels), args.messages, 1, keep=False)
    rates: dict[int, float] = {}
    kept: Any = None
    for n, processes in enumerate(args.workers):
        last = n == len(args.workers) - 1
        rates[processes], held = import_run(
            corpus, args.channels, args.messages, processes, keep=last
        )
        kept = held or kept
    if len(rates) >= 2:
        low, high = min(rates), max(rates)
        print(
            f"speed-up {high} vs {low} process(es): {rates[high] / rates[low]:.2f}x "
            f"(target >= 1.7x for 2 vs 1 on 2 cores)"
        )
    database, engine = kept
    try:
        started = time.perf_counter()
        add_company_threads(engine, args.threads)
        print(f"added {args.threads:,} company threads in {time.perf_counter() - started:.1f}s")
        timeline_latency(engine, args.queries)
    finally:
        database.__exit__(None, None, None)


if __name__ == "__main__":
    main()
