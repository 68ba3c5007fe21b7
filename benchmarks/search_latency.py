"""Search latency at 100,000 messages, on SQLite (FTS5) and PostgreSQL (GIN).

A generated mailbox: N messages (default 100,000) in four channels of
three owners (FULL, FULL, SUBJECT and METADATA visibility, so every
visibility path is taken), 3% of them held by two channels. Words follow a
Zipf law over a 20,000-word vocabulary (a few words occur in most
messages, most in very few); bodies have 40 to 160 words, subjects 3 to 8;
2,000 correspondents with names, half linked to CRM people.

Then a few hundred searches of mixed kinds, each as the owner of a channel
and as another user, first page of 50: a rare word, a common word, two
words, a quoted phrase, a correspondent's name, a word within a person's
timeline, a word within a month, and a person's mail without words.
Prints p50 and p99 per kind and overall, per store (target p99 < 50 ms).

Needs PostgreSQL on 127.0.0.1:5432 for the PostgreSQL run.

    python benchmarks/search_latency.py [--messages 100000] [--queries 400]
                                        [--stores sqlite postgres]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from commlink.model import (
    Address,
    Channel,
    ChannelKind,
    ChannelSettings,
    Direction,
    Message,
    Participant,
    Role,
    Visibility,
)
from commlink.records import (
    AddressLinks,
    Link,
    MessageRecord,
    SearchQuery,
    SyncBatch,
    Target,
    TargetKind,
    Viewer,
    Window,
)
from commlink.stores.sql import SqlStore

START = datetime(2023, 1, 1, tzinfo=timezone.utc)
VOCABULARY = 20_000
PEOPLE = 2_000
CHANNELS = (
    ("c-full-1", "owner-1", Visibility.FULL),
    ("c-full-2", "owner-2", Visibility.FULL),
    ("c-subject", "owner-3", Visibility.SUBJECT),
    ("c-metadata", "owner-3", Visibility.METADATA),
)
VIEWERS = (Viewer("owner-1"), Viewer("someone-else"))
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "su", "da", "gi", "ho", "ju")


def _word(n: int) -> str:
    """A distinct made-up word for rank ``n``."""
    letters = []
    n += len(SYLLABLES)
    while n:
        n, rest = divmod(n, len(SYLLABLES))
        letters.append(SYLLABLES[rest])
    return "".join(letters)


WORDS = [_word(n) for n in range(VOCABULARY)]
# Zipf (s = 1): the cumulative weights to sample ranks by bisection
_CUMULATIVE = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(VOCABULARY)))


def _text(rng: random.Random, count: int) -> str:
    total = _CUMULATIVE[-1]
    return " ".join(
        WORDS[bisect.bisect_left(_CUMULATIVE, rng.random() * total)] for _ in range(count)
    )


def _person(n: int) -> Address:
    key = f"person{n}@client{n % 97}.example"
    return Address(key=key, email=key, name=f"{_word(n + 5000).title()} {_word(n + 9000).title()}")


def _channel(channel_id: str, user_id: str, visibility: Visibility) -> Channel:
    settings = ChannelSettings(owner=f"{user_id}@northwind.example", visibility=visibility)
    return Channel(channel_id, user_id, ChannelKind.MAIL, "imap", settings)


def _record(n: int, rng: random.Random) -> MessageRecord:
    people = rng.sample(range(PEOPLE), rng.randint(1, 3))
    participants = (
        Participant(_person(people[0]), Role.FROM),
        *(Participant(_person(p), Role.TO) for p in people[1:]),
    )
    body = _text(rng, rng.randint(40, 160))
    message = Message(
        provider_id=f"p{n}",
        message_id=f"m{n}@generated.example",
        date=START + timedelta(minutes=10 * n + rng.randint(0, 9)),
        subject=_text(rng, rng.randint(3, 8)).capitalize(),
        participants=participants,
        folders=("INBOX",),
        body=body,
        snippet=body[:120],
    )
    return MessageRecord(message, thread_id=f"t{n // 3}", direction=Direction.INCOMING)


def fill(store: SqlStore, messages: int, batch: int = 2_000) -> None:
    """Commit the generated mailbox in batches."""
    rng = random.Random(20)
    for spec in CHANNELS:
        store.save_channel(_channel(*spec))
    links = tuple(
        AddressLinks(_person(n).key, (Link(TargetKind.PERSON, f"crm-{n}"),))
        for n in range(0, PEOPLE, 2)
    )
    store.commit(SyncBatch(CHANNELS[0][0], "INBOX", links=links))
    for start in range(0, messages, batch):
        by_channel: dict[str, list[MessageRecord]] = {}
        for n in range(start, min(messages, start + batch)):
            record = _record(n, rng)
            held = [rng.randrange(len(CHANNELS))]
            if rng.random() < 0.03:
                held.append((held[0] + 1) % len(CHANNELS))
            for index in held:
                by_channel.setdefault(CHANNELS[index][0], []).append(record)
        for channel_id, records in by_channel.items():
            store.commit(SyncBatch(channel_id, "INBOX", messages=tuple(records), generation=1))


def _queries(messages: int, rng: random.Random) -> Iterator[tuple[str, SearchQuery]]:
    last = START + timedelta(minutes=10 * messages)
    while True:
        kind = rng.choice(
            (
                "rare word",
                "common word",
                "two words",
                "phrase",
                "name",
                "person",
                "month",
                "mail of",
            )
        )
        if kind == "rare word":
            yield kind, SearchQuery(WORDS[rng.randrange(2_000, VOCABULARY)])
        elif kind == "common word":
            yield kind, SearchQuery(WORDS[rng.randrange(0, 20)])
        elif kind == "two words":
            yield (
                kind,
                SearchQuery(f"{WORDS[rng.randrange(20, 500)]} {WORDS[rng.randrange(0, 2_000)]}"),
            )
        elif kind == "phrase":
            yield kind, SearchQuery('"' + _text(rng, 2) + '"')
        elif kind == "name":
            yield kind, SearchQuery(_person(rng.randrange(PEOPLE)).name.split()[0])
        elif kind == "person":
            target = Target(TargetKind.PERSON, f"crm-{2 * rng.randrange(PEOPLE // 2)}")
            yield kind, SearchQuery(WORDS[rng.randrange(0, 200)], target=target)
        elif kind == "month":
            start = START + (last - START) * rng.random()
            window = Window(start, start + timedelta(days=30))
            yield kind, SearchQuery(WORDS[rng.randrange(0, 2_000)], window=window)
        else:
            yield kind, SearchQuery("", participant=_person(rng.randrange(PEOPLE)).key)


def _percentile(times: Sequence[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(store: SqlStore, label: str, messages: int, queries: int) -> float:
    """Time ``queries`` searches; prints per-kind figures, returns the p99 in ms."""
    rng = random.Random(7)
    source = _queries(messages, rng)
    for _kind, query in itertools.islice(source, 20):  # warm the caches
        store.search(query, VIEWERS[0])
    times: dict[str, list[float]] = {}
    found: dict[str, list[int]] = {}
    cpu: list[float] = []
    for kind, query in itertools.islice(source, queries):
        viewer = rng.choice(VIEWERS)
        started, started_cpu = time.perf_counter(), time.process_time()
        page = store.search(query, viewer)
        times.setdefault(kind, []).append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        found.setdefault(kind, []).append(len(page.items))
    every = [t for ts in times.values() for t in ts]
    for kind in sorted(times):
        ts = times[kind]
        print(
            f"  {label:<10} {kind:<12} n={len(ts):3}  p50 {statistics.median(ts) * 1000:6.2f} ms"
            f"  p99 {_percentile(ts, 0.99) * 1000:6.2f} ms  "
            f"hits/page (median) {statistics.median(found[kind]):.0f}"
        )
    p99 = _percentile(every, 0.99) * 1000
    print(
        f"{label}: {len(every)} searches, p50 {statistics.median(every) * 1000:.2f} ms, "
        f"p99 {p99:.2f} ms (target p99 < 50 ms); this process's CPU per search: "
        f"p50 {statistics.median(cpu) * 1000:.2f} ms, p99 {_percentile(cpu, 0.99) * 1000:.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    return p99


def _run(label: str, open_store: Callable[[], Any], messages: int, queries: int) -> None:
    with open_store() as store:
        started = time.perf_counter()
        fill(store, messages)
        took = time.perf_counter() - started
        print(f"{label}: {messages:,} messages committed in {took:.1f}s ({messages / took:,.0f}/s)")
        if store.engine.dialect.name == "postgresql":
            # what autovacuum does after a bulk load (PostgreSQL 13+ vacuums
            # after inserts too): statistics, hint bits and the visibility map
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        measure(store, label, messages, queries)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args(argv)
    if "sqlite" in args.stores:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "search.sqlite"
            _run("sqlite", lambda: SqlStore(f"sqlite:///{path}"), args.messages, args.queries)
    if "postgres" in args.stores:
        from commlink.testing.postgres import reachable, temporary_database

        if not reachable():
            print("postgres: not reachable on 127.0.0.1:5432, skipped", file=sys.stderr)
            return
        with temporary_database() as engine:
            _run("postgres", lambda: SqlStore(engine), args.messages, args.queries)


if __name__ == "__main__":
    main()
