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

The peer, in the same run: notmuch, the mail indexer built on Xapian. The
same messages are written as files (one per message, held by any number of
channels), indexed by ``notmuch new``, and the same searches in the same
order are run through notmuch's Python bindings (``notmuch2``, Debian
package python3-notmuch2, in ``/usr/bin/python3``): newest first, the
first 50 messages with their Message-ID, date, subject and sender. A
person's timeline becomes ``(from:ADDRESS or to:ADDRESS)`` with the word,
a month ``date:`` with the word. notmuch has no viewers: it searches
everything, where commlink checks each channel's visibility for the
viewer. The ratios printed are commlink's p50 and p99 over notmuch's
(below 1.0, commlink answers sooner). ``--skip notmuch`` leaves it out.

    python benchmarks/search_latency.py [--messages 100000] [--queries 400]
                                        [--stores sqlite postgres] [--skip notmuch]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
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
from commlink.stores.sql_checkpoint import checkpointer

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


def _mailbox(messages: int) -> Iterator[tuple[MessageRecord, list[int]]]:
    """Each generated message with the indexes of the channels holding it."""
    rng = random.Random(20)
    for n in range(messages):
        record = _record(n, rng)
        held = [rng.randrange(len(CHANNELS))]
        if rng.random() < 0.03:
            held.append((held[0] + 1) % len(CHANNELS))
        yield record, held


def fill(store: SqlStore, messages: int, batch: int = 2_000) -> None:
    """Commit the generated mailbox in batches."""
    for spec in CHANNELS:
        store.save_channel(_channel(*spec))
    store.commit(SyncBatch(CHANNELS[0][0], "INBOX", links=_crm_links()))
    mailbox = _mailbox(messages)
    while part := list(itertools.islice(mailbox, batch)):
        by_channel: dict[str, list[MessageRecord]] = {}
        for record, held in part:
            for index in held:
                by_channel.setdefault(CHANNELS[index][0], []).append(record)
        for channel_id, records in by_channel.items():
            store.commit(SyncBatch(channel_id, "INBOX", messages=tuple(records), generation=1))


def _crm_links() -> tuple[AddressLinks, ...]:
    """Every other correspondent is a CRM person, ``crm-N``."""
    return tuple(
        AddressLinks(_person(n).key, (Link(TargetKind.PERSON, f"crm-{n}"),))
        for n in range(0, PEOPLE, 2)
    )


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


#: searches run first, untimed, to warm the caches
WARM_UP = 20


def plan(messages: int, queries: int) -> list[tuple[str, SearchQuery, Viewer]]:
    """The searches in order: ``WARM_UP`` as the first owner, then ``queries``
    as a viewer drawn for each (the same list for commlink and the peer)."""
    rng = random.Random(7)
    source = _queries(messages, rng)
    searches = [(kind, query, VIEWERS[0]) for kind, query in itertools.islice(source, WARM_UP)]
    for kind, query in itertools.islice(source, queries):
        searches.append((kind, query, rng.choice(VIEWERS)))
    return searches


def measure(store: SqlStore, label: str, messages: int, queries: int) -> tuple[float, float]:
    """Time ``queries`` searches; prints per-kind figures, returns p50 and p99 in ms."""
    searches = plan(messages, queries)
    for _kind, query, viewer in searches[:WARM_UP]:
        store.search(query, viewer)
    times: dict[str, list[float]] = {}
    found: dict[str, list[int]] = {}
    cpu: list[float] = []
    for kind, query, viewer in searches[WARM_UP:]:
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
    p50, p99 = statistics.median(every) * 1000, _percentile(every, 0.99) * 1000
    print(
        f"{label}: {len(every)} searches, p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (target p99 < 50 ms); this process's CPU per search: "
        f"p50 {statistics.median(cpu) * 1000:.2f} ms, p99 {_percentile(cpu, 0.99) * 1000:.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    return p50, p99


# -- the peer: notmuch ----------------------------------------------------------------


def _rfc5322(record: MessageRecord) -> bytes:
    """A generated message as a file (the fields commlink stores and searches)."""
    message = record.message

    def shown(participant: Participant) -> str:
        return f"{participant.address.name} <{participant.address.email}>"

    senders = [p for p in message.participants if p.role is Role.FROM]
    recipients = [p for p in message.participants if p.role is Role.TO]
    words = (message.body or "").split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    head = [
        f"From: {', '.join(shown(p) for p in senders)}",
        *([f"To: {', '.join(shown(p) for p in recipients)}"] if recipients else []),
        f"Subject: {message.subject}",
        f"Date: {format_datetime(message.date)}",
        f"Message-ID: <{message.message_id}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()


def _notmuch_query(kind: str, query: SearchQuery) -> str:
    """The same search in notmuch's query language."""
    words = query.text.strip('"')
    text = f'"{words}"' if query.text.startswith('"') else " and ".join(words.split())
    if kind == "person":
        assert query.target is not None
        n = int(query.target.id.removeprefix("crm-"))
        address = _person(n).key
        return f"{text} and (from:{address} or to:{address})"
    if kind == "month":
        assert query.window is not None
        start, end = int(query.window.start.timestamp()), int(query.window.end.timestamp())
        return f"{text} and date:@{start}..@{end - 1}"  # a window's end is not in it
    if kind == "mail of":
        return f"from:{query.participant} or to:{query.participant}"
    return text


#: the Python that Debian's python3-notmuch2 is installed for
SYSTEM_PYTHON = "/usr/bin/python3"
#: run by the system's python3, which has notmuch's bindings: times each search
#: in the database at argv[1], read from the JSON list at argv[2]
_NOTMUCH_SEARCHES = """
import json, sys, time
import notmuch2
db = notmuch2.Database(sys.argv[1])
searches = json.load(open(sys.argv[2]))
def page(query):
    found = []
    for m in db.messages(query, sort=notmuch2.Database.SORT.NEWEST_FIRST):
        found.append((m.messageid, m.date, m.header("subject"), m.header("from")))
        if len(found) == 50:
            break
    return len(found)
warm = int(sys.argv[3])
for kind, query in searches[:warm]:
    page(query)
out = []
for kind, query in searches[warm:]:
    started, cpu = time.perf_counter(), time.process_time()
    hits = page(query)
    out.append((kind, time.perf_counter() - started, time.process_time() - cpu, hits))
print(json.dumps(out))
"""


def notmuch_available() -> str:
    """Why notmuch cannot run here, or ``""``."""
    if shutil.which("notmuch") is None:
        return "notmuch not installed (Debian: notmuch)"
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import notmuch2"], capture_output=True)
    if check.returncode != 0:
        return f"{SYSTEM_PYTHON} has no notmuch2 module (Debian: python3-notmuch2)"
    return ""


def run_notmuch(messages: int, queries: int, work: Path) -> tuple[float, float]:
    """Index the mailbox with notmuch and time the same searches; returns p50, p99 in ms."""
    root = work / "mail"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    started = time.perf_counter()
    for n, (record, _held) in enumerate(_mailbox(messages)):
        (root / "cur" / f"{n}.generated:2,S").write_bytes(_rfc5322(record))
    wrote = time.perf_counter() - started
    config = work / "notmuch-config"
    config.write_text(
        f"[database]\npath={root}\n[new]\ntags=\n[maildir]\nsynchronize_flags=false\n"
    )
    started = time.perf_counter()
    subprocess.run(["notmuch", f"--config={config}", "new", "--quiet"], check=True)
    took = time.perf_counter() - started
    print(
        f"notmuch: {messages:,} messages written as files in {wrote:.1f}s, "
        f"indexed by notmuch new in {took:.1f}s ({messages / took:,.0f}/s)"
    )
    searches = [(kind, _notmuch_query(kind, query)) for kind, query, _ in plan(messages, queries)]
    listing = work / "searches.json"
    listing.write_text(json.dumps(searches))
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", _NOTMUCH_SEARCHES, str(root), str(listing), str(WARM_UP)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "NOTMUCH_CONFIG": str(config)},
    )
    results = json.loads(out.stdout)
    times: dict[str, list[float]] = {}
    found: dict[str, list[int]] = {}
    for kind, seconds, _cpu, hits in results:
        times.setdefault(kind, []).append(seconds)
        found.setdefault(kind, []).append(hits)
    for kind in sorted(times):
        ts = times[kind]
        print(
            f"  {'notmuch':<10} {kind:<12} n={len(ts):3}  "
            f"p50 {statistics.median(ts) * 1000:6.2f} ms"
            f"  p99 {_percentile(ts, 0.99) * 1000:6.2f} ms  "
            f"hits/page (median) {statistics.median(found[kind]):.0f}"
        )
    every = [t for ts in times.values() for t in ts]
    cpu = [c for _kind, _s, c, _h in results]
    p50, p99 = statistics.median(every) * 1000, _percentile(every, 0.99) * 1000
    print(
        f"notmuch: {len(every)} searches, p50 {p50:.2f} ms, p99 {p99:.2f} ms; CPU per search: "
        f"p50 {statistics.median(cpu) * 1000:.2f} ms, p99 {_percentile(cpu, 0.99) * 1000:.2f} ms"
    )
    return p50, p99


def _run(
    label: str, open_store: Callable[[], Any], messages: int, queries: int
) -> tuple[float, float]:
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
        else:
            # what the store's thread does once commits stop: merge the
            # search index's segments (docs/search.md)
            merging = checkpointer(store.engine)
            started = time.perf_counter()
            while not merging.merged and time.perf_counter() - started < 600:
                time.sleep(0.1)
            print(f"{label}: search index merged {time.perf_counter() - started:.1f}s after")
        return measure(store, label, messages, queries)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["notmuch"], help="leave out")
    args = parser.parse_args(argv)
    figures: dict[str, tuple[float, float]] = {}
    if "sqlite" in args.stores:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "search.sqlite"
            figures["sqlite"] = _run(
                "sqlite", lambda: SqlStore(f"sqlite:///{path}"), args.messages, args.queries
            )
    if "postgres" in args.stores:
        from commlink.testing.postgres import reachable, temporary_database

        if not reachable():
            print("postgres: not reachable on 127.0.0.1:5432, skipped", file=sys.stderr)
        else:
            with temporary_database() as engine:
                figures["postgres"] = _run(
                    "postgres", lambda: SqlStore(engine), args.messages, args.queries
                )
    if "notmuch" in args.skip:
        return
    missing = notmuch_available()
    if missing:
        print(f"notmuch: left out, {missing}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        peer = run_notmuch(args.messages, args.queries, Path(tmp))
    for label, (p50, p99) in figures.items():
        print(
            f"{label} / notmuch: p50 {p50 / peer[0]:.2f}x, p99 {p99 / peer[1]:.2f}x "
            f"({p50:.2f} / {p99:.2f} ms against {peer[0]:.2f} / {peer[1]:.2f} ms)"
        )


if __name__ == "__main__":
    main()
