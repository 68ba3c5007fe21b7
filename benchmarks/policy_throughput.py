"""Parse + filters + matching throughput against a large CRM directory.

Generates N messages (default 20,000) and a directory of P people (default
200,000) with their companies and opportunities in the SQLite store, then
runs ``mime.parse_message`` and the policy pipeline (filters, contact
rules, matching, threading) in batches of 500, counting directory calls.
The directory's calls are timed too: their share of filters + matching,
and per method the milliseconds per call and microseconds per key looked up
(the policy stage's largest part against a directory this size).
Rates are by wall clock and by CPU time of this process (the second is
steadier on a machine that is busy elsewhere).

Every figure is given twice: with CPython's default garbage collector
thresholds and with ``commlink.tune_gc()`` (what the ``commlink`` executable
and a sync worker use, docs/deployment.md). The passes alternate between
the two (A B B A, ``--rounds`` passes each) in one process.

``--gc-freeze`` moves everything built before the run (the directory, the
generated messages, the imported modules) out of the collector's sight with
``gc.freeze()``, as ``tune_gc(freeze=True)`` does once a worker has started.

    python benchmarks/policy_throughput.py [--messages N] [--people P] [--rounds R] [--gc-freeze]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import attrs

sys.path.insert(0, str(Path(__file__).parent))

from corpus import COMPANIES, OWNER, messages, person

from commlink.mime.parse import parse_message
from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.policy.pipeline import evaluate
from commlink.records import CompanyRef, NewContact, OpportunityRef, PersonRef
from commlink.runtime import tune_gc
from commlink.stores.sql import SqlDirectory, SqlStore

T = TypeVar("T")


class CountingDirectory:
    """Counts calls, keys and seconds per method, delegating to the SQL directory."""

    def __init__(self, inner: SqlDirectory) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def _timed(self, name: str, keys: int, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            self.keys[name] += keys

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        return self._timed(
            "people_by_addresses", len(keys), lambda: self.inner.people_by_addresses(keys)
        )

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        return self._timed(
            "companies_by_domains", len(domains), lambda: self.inner.companies_by_domains(domains)
        )

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        return self._timed(
            "opportunities_for",
            len(company_ids) + len(person_ids),
            lambda: self.inner.opportunities_for(company_ids, person_ids),
        )

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        return self._timed("create_contacts", len(new), lambda: self.inner.create_contacts(new))


def build_directory(directory: SqlDirectory, people: int) -> None:
    companies = min(COMPANIES, people)
    for i in range(companies):
        directory.add_company(f"co{i}", f"Client {i}", [f"client{i}.example"])
    directory.add_people_bulk(
        (f"p{i}", person(i)[0], [person(i)[1]], f"co{i % companies}") for i in range(people)
    )
    for i in range(0, companies, 4):
        directory.add_opportunity(f"opp{i}", f"Deal {i}", f"co{i}", [f"p{i}"])


@attrs.define
class Pass:
    """One pass over all messages: seconds and CPU seconds per stage."""

    parse: float = 0.0
    policy: float = 0.0
    parse_cpu: float = 0.0
    policy_cpu: float = 0.0
    kept: int = 0
    reasons: Counter[str] = attrs.Factory(Counter)
    batches: int = 0


def one_pass(raws: list[bytes], channel: Channel, directory: CountingDirectory, size: int) -> Pass:
    done = Pass()
    for start in range(0, len(raws), size):
        t0, c0 = time.perf_counter(), time.process_time()
        parsed = [
            parse_message(raw, provider_id=str(start + i))
            for i, raw in enumerate(raws[start : start + size])
        ]
        t1, c1 = time.perf_counter(), time.process_time()
        result = evaluate(parsed, channel, {}, directory, {})
        t2, c2 = time.perf_counter(), time.process_time()
        done.parse += t1 - t0
        done.policy += t2 - t1
        done.parse_cpu += c1 - c0
        done.policy_cpu += c2 - c1
        done.kept += len(result.records)
        done.reasons.update(s.reason.value for s in result.skipped)
        done.batches += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2, help="passes per collector setting")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after set-up")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{tmp}/bench.sqlite")
        sql_directory = SqlDirectory(store)
        t = time.perf_counter()
        build_directory(sql_directory, args.people)
        print(f"directory: {args.people:,} people loaded in {time.perf_counter() - t:.1f}s")
        raws = list(messages(args.messages, args.people))
        size = sum(len(r) for r in raws) / len(raws)
        directory = CountingDirectory(sql_directory)
        channel = Channel(
            "bench",
            "owner",
            ChannelKind.MAIL,
            "bench",
            ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
        )
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
            print(f"gc.freeze() after set-up: {gc.get_freeze_count():,} objects frozen")
        default = gc.get_threshold()
        settings = {
            "CPython's default": lambda: gc.set_threshold(*default),
            "commlink.tune_gc()": tune_gc,
        }
        passes: dict[str, list[Pass]] = {name: [] for name in settings}
        thresholds: dict[str, tuple[int, int, int]] = {}
        # A B B A ...: the first pass also warms caches, and the machine drifts
        names = list(settings)
        order = [name for r in range(args.rounds) for name in (names[::-1] if r % 2 else names)]
        for name in order:
            gc.set_threshold(*default)
            settings[name]()
            thresholds[name] = gc.get_threshold()
            passes[name].append(one_pass(raws, channel, directory, args.batch))
        gc.set_threshold(*default)
        n = len(raws) * args.rounds
        first = passes[order[0]][0]
        print(f"messages: {len(raws):,} (avg {size / 1024:.1f} KiB), batches of {args.batch}")
        print(f"{args.rounds} passes per collector setting, alternated ({', '.join(order)})")
        for name, done in passes.items():
            parse = sum(p.parse for p in done)
            policy = sum(p.policy for p in done)
            parse_cpu = sum(p.parse_cpu for p in done)
            policy_cpu = sum(p.policy_cpu for p in done)
            shown = ", ".join(f"{t:,}" for t in thresholds[name])
            print(f"\ngarbage collector: {name} (thresholds {shown})")
            print(f"{'':19}{'wall':>10} {'CPU':>10}")
            print(f"parse:             {n / parse:10,.0f} {n / parse_cpu:10,.0f} msg/s")
            print(f"filters+matching:  {n / policy:10,.0f} {n / policy_cpu:10,.0f} msg/s")
            print(
                f"parse+policy:      {n / (parse + policy):10,.0f} "
                f"{n / (parse_cpu + policy_cpu):10,.0f} msg/s  (target >= 15,000)"
            )
        passes_run = args.rounds * len(settings)
        calls = sum(directory.calls.values()) // passes_run
        print(f"\nkept {first.kept:,}; skipped {dict(first.reasons)}")
        print(
            f"directory calls: {calls} in {first.batches} batches = "
            f"{calls / first.batches:.2f} per batch (target <= 3) "
            f"{ {k: v // passes_run for k, v in directory.calls.items()} }"
        )
        # where filters+matching spend their time: the directory's share, by method
        policy = sum(p.policy for done in passes.values() for p in done)
        print(f"directory time: {sum(directory.seconds.values()) / policy:.0%} of filters+matching")
        for name, seconds in directory.seconds.items():
            keys = directory.keys[name]
            print(
                f"  {name:<22}{seconds / directory.calls[name] * 1000:6.2f} ms per call, "
                f"{keys / directory.calls[name]:6.0f} keys, "
                f"{seconds / max(keys, 1) * 1e6:5.2f} us per key"
            )


if __name__ == "__main__":
    main()
