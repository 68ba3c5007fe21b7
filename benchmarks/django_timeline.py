"""Timeline reads through the Django ORM store at 50,000 threads on PostgreSQL.

A fresh PostgreSQL database gets the Django app's tables (``migrate``) and
the reference SQL store's; the same T one-message threads (default 50,000)
with people of a company are committed into each store in batches of 1,000
through ``Store.commit`` (parsed and matched by the policy first, as a sync
would). Then ``timeline`` is timed for the company and for one of its
people: the first page and pages further down (random pages among the
first ~40, and the last pages). Prints p50/p99 of wall time per store, and
the CPU time the benchmark process spent per call (other work on a shared
machine inflates wall time, not that); target p99 < 50 ms for the ORM store.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database ``test``).

    python benchmarks/django_timeline.py [--threads 50000] [--queries 300] [--keep]
    python benchmarks/django_timeline.py --reuse NAME   # reads only, on a kept database
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

OWNER = "owner@northwind.example"
PEOPLE = 400


def _message(n: int, rng: random.Random) -> bytes:
    person = rng.randrange(PEOPLE)
    date = format_datetime(datetime.fromtimestamp(1_700_000_000 + n * 600, timezone.utc))
    if rng.random() < 0.5:
        sender, to = f"Buyer {person} <buyer{person}@bigco.example>", f"Owner <{OWNER}>"
    else:
        sender, to = f"Owner <{OWNER}>", f"Buyer {person} <buyer{person}@bigco.example>"
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Deal {n}\r\nDate: {date}\r\n"
        f"Message-ID: <bigco-{n}@generated.example>\r\n\r\nAbout deal {n}.\r\n"
    ).encode()


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as c:
        c.execute(sql)


def configure(name: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=True,
        INSTALLED_APPS=["commlink.contrib.django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "CONN_MAX_AGE": None,
            }
        },
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load(store: Any, threads: int) -> float:
    """Commit ``threads`` one-message threads linked to company ``bigco``;
    returns messages per second of the commits alone."""
    from commlink.mime.parse import parse_message
    from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
    from commlink.policy.pipeline import evaluate
    from commlink.records import SyncBatch
    from commlink.testing.directory import InMemoryDirectory

    directory = InMemoryDirectory()
    directory.add_company("bigco", "BigCo", ["bigco.example"])
    for person in range(PEOPLE):
        directory.add_person(f"p{person}", f"Buyer {person}", [f"buyer{person}@bigco.example"])
    settings = ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"northwind.example"}),
        contact_policy=ContactPolicy.NONE,
    )
    channel = Channel("bigco-mail", "owner", ChannelKind.MAIL, "maildir", settings)
    store.save_channel(channel)
    rng = random.Random(11)
    spent = 0.0
    size = 1000
    for start in range(0, threads, size):
        parsed = [
            parse_message(_message(n, rng), provider_id=str(n))
            for n in range(start, min(threads, start + size))
        ]
        result = evaluate(parsed, channel, {}, directory, {})
        batch = SyncBatch(
            channel.id,
            "INBOX",
            messages=result.records,
            links=result.links,
            skipped=result.skipped,
            generation=1,
        )
        began = time.perf_counter()
        store.commit(batch)
        spent += time.perf_counter() - began
    return threads / spent


def _percentile(times: Sequence[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(label: str, store: Any, queries: int) -> list[float]:
    from commlink.records import PageRequest, Target, TargetKind, Viewer

    viewer = Viewer("someone-else")
    worst: list[float] = []
    for target in (Target(TargetKind.COMPANY, "bigco"), Target(TargetKind.PERSON, "p7")):
        first = store.timeline(target, viewer)
        tokens = [first.next]
        while tokens[-1] is not None:  # every page, to reach the last ones
            tokens.append(store.timeline(target, viewer, PageRequest(after=tokens[-1])).next)
        pages = [t for t in tokens if t is not None]
        rng = random.Random(5)
        choices: list[tuple[str, Sequence[str | None]]] = [
            ("first page", [None]),
            ("pages 2-41", pages[:40]),
            ("last pages", pages[-40:]),
        ]
        for name, pool in choices:
            if not pool:
                continue  # a timeline of one page
            times: list[float] = []
            cpu: list[float] = []
            for _ in range(queries):
                request = PageRequest(after=rng.choice(pool))
                began, began_cpu = time.perf_counter(), time.process_time()
                store.timeline(target, viewer, request)
                times.append(time.perf_counter() - began)
                cpu.append(time.process_time() - began_cpu)
            worst.append(_percentile(times, 0.99))
            print(
                f"{label:<10} {target.kind.value:<8} ({len(pages) + 1:>4} pages) {name:<11}: "
                f"p50 {statistics.median(times) * 1000:6.2f} ms, "
                f"p99 {_percentile(times, 0.99) * 1000:6.2f} ms "
                f"(this process's CPU: p50 {statistics.median(cpu) * 1000:5.2f} ms)"
            )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="NAME", help="time reads on a kept database")
    args = parser.parse_args()
    name = args.reuse or f"commlink_bench_{secrets.token_hex(4)}"
    if not args.reuse:
        _admin(f'CREATE DATABASE "{name}"')
    try:
        configure(name)
        from django.db import connection

        from commlink.contrib.django.store import DjangoStore
        from commlink.stores.sql import SqlStore

        orm = DjangoStore()
        sql = SqlStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        if not args.reuse:
            rate = load(orm, args.threads)
            sql_rate = load(sql, args.threads)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            print(f"{args.threads} threads on PostgreSQL: {name}")
            print(f"commit: ORM store {rate:,.0f} msg/s, SqlStore {sql_rate:,.0f} msg/s")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        worst = latency("ORM store", orm, args.queries)
        latency("SqlStore", sql, args.queries)
        verdict = "met" if max(worst) < 0.050 else "MISSED"
        print(f"ORM store worst p99 {max(worst) * 1000:.2f} ms: target p99 < 50 ms {verdict}")
        sql.close()
        connection.close()
    finally:
        if not args.keep:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
