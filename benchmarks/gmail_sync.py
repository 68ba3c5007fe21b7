"""Initial Gmail sync of 5,000 messages against the local Google API server
with quota enforcement on.

Prints HTTP requests per 1,000 messages (target <= 45: a full fetch asks
for the messages' sizes in one batch, then their raw content in another,
for every 50), throughput as a
fraction of the quota ceiling (target >= 90%, with no unrecovered 429) and
the requests of a no-change incremental pass (target 1 history call).

The quota is scaled up from Gmail's 15,000 units/minute so the run takes
about twenty seconds; the ratio to the ceiling is what matters.

    .venv/bin/python benchmarks/gmail_sync.py [--messages 5000] [--quota 75000]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from google.oauth2.credentials import Credentials

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.google.gmail import GmailProvider
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

OWNER = "owner@home.example"
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _message(n: int) -> bytes:
    return (
        f"From: Client {n % 97} <c{n % 97}@client{n % 13}.example>\r\nTo: {OWNER}\r\n"
        f"Subject: Proposal {n}\r\nDate: {format_datetime(BASE + timedelta(minutes=n))}\r\n"
        f"Message-ID: <bench-{n}@client.example>\r\nContent-Type: text/plain\r\n\r\n"
        + "Some text of the message body.\r\n"
        * 20
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--quota", type=int, default=75000, help="units per minute")
    args = parser.parse_args()

    with GoogleApiServer(user=OWNER) as server:
        for n in range(args.messages):
            server.gmail.add_message(OWNER, _message(n))
        server.set_quota(args.quota)
        provider = GmailProvider(
            Credentials(token=server.token),
            api_endpoint=server.base_url,
            quota_units_per_minute=args.quota,
        )
        channel = Channel("bench", "u", ChannelKind.MAIL, "gmail", ChannelSettings(owner=OWNER))
        engine = SyncEngine(
            MemoryStore(), InMemoryDirectory(), batch_size=500, folder_ttl=timedelta(minutes=5)
        )
        started = time.monotonic()
        report = engine.run(channel, provider)
        elapsed = time.monotonic() - started
        requests = len(server.request_log)
        units = server.units_spent()
        ceiling = args.quota / 60 * elapsed
        print(f"initial sync: {report.summary()}")
        print(f"  messages fetched       {report.fetched}")
        per_thousand = requests / args.messages * 1000
        print(f"  HTTP requests          {requests} ({per_thousand:.1f} per 1,000 messages)")
        print(f"  API calls              {server.counters['calls']}")
        print(f"  quota units            {units} in {elapsed:.1f}s")
        print(f"  throughput             {units / ceiling:.1%} of the {args.quota}/min ceiling")
        limited, retried = server.counters["rate_limited"], provider.client.retries
        print(f"  429 answers            {limited} (retried: {retried})")
        print(f"  errors                 {report.errors or 'none'}")

        before = len(server.request_log)
        quiet = engine.run(channel, provider)
        log = server.request_log[before:]
        history = [p for _, p in log if "/history" in p]
        print(f"no-change pass: {quiet.summary()}")
        print(f"  history requests       {len(history)}")
        print(f"  all requests           {len(log)} ({', '.join(p.split('?')[0] for _, p in log)})")
        provider.close()


if __name__ == "__main__":
    main()
