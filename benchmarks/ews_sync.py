"""Initial Exchange (EWS) sync of 5,000 messages against the local EWS
server, through exchangelib and the engine into SqlStore on SQLite.

Prints HTTP requests per 1,000 messages (target <= 30), time, messages per
second and the requests of a no-change incremental pass (target: one
SyncFolderItems per folder). ``run(messages)`` returns the figures as a
dict for combined reports.

    .venv/bin/python benchmarks/ews_sync.py [--messages 5000] [--sent 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from corpus import OWNER, messages

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.microsoft.exchange import ExchangeMailProvider, connect
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import EwsServer

PASSWORD = "bench-password"


def run(count: int = 5000, sent_share: float = 0.2, people: int = 2000) -> dict[str, Any]:
    """Sync ``count`` messages (``sent_share`` of them in Sent Items) and
    return the figures."""
    with tempfile.TemporaryDirectory() as tmp, EwsServer(user=OWNER, password=PASSWORD) as server:
        every = max(1, round(1 / sent_share)) if sent_share > 0 else 0
        for n, raw in enumerate(messages(count, people)):
            folder = "sentitems" if every and n % every == 0 else "inbox"
            server.add_message(folder, raw)
        provider = ExchangeMailProvider(
            connect(
                OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=PASSWORD
            )
        )
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        channel = Channel("bench", "u", ChannelKind.MAIL, "exchange", ChannelSettings(owner=OWNER))
        engine = SyncEngine(
            store, InMemoryDirectory(), batch_size=500, folder_ttl=timedelta(minutes=5)
        )
        started = time.monotonic()
        report = engine.run(channel, provider)
        elapsed = time.monotonic() - started
        initial = dict(server.requests)
        requests = sum(initial.values())
        before = dict(server.requests)
        quiet = engine.run(channel, provider)
        quiet_requests = {
            k: v - before.get(k, 0) for k, v in server.requests.items() if v != before.get(k, 0)
        }
        figures = {
            "messages": count,
            "imported": report.imported,
            "skipped": sum(report.skipped.values()),
            "skipped_by_reason": {r.value: n for r, n in sorted(report.skipped.items(), key=str)},
            "errors": list(report.errors) + list(quiet.errors),
            "folders": report.scopes,
            "seconds": round(elapsed, 2),
            "messages_per_second": round(count / elapsed, 1) if elapsed else 0.0,
            "requests": requests,
            "requests_by_operation": initial,
            "requests_per_1000": round(requests / count * 1000, 1) if count else 0.0,
            "client_requests": provider.requests_sent,
            "quiet_pass_requests": sum(quiet_requests.values()),
            "quiet_pass_by_operation": quiet_requests,
        }
        provider.close()
        store.close()
        return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--sent", type=float, default=0.2, help="share of mail in Sent Items")
    args = parser.parse_args(argv)
    figures = run(args.messages, args.sent)
    print(f"initial sync of {figures['messages']} messages over {figures['folders']} folders")
    reasons = ", ".join(f"{k} {v}" for k, v in figures["skipped_by_reason"].items())
    print(f"  imported / skipped     {figures['imported']} / {figures['skipped']} ({reasons})")
    print(
        f"  time                   {figures['seconds']}s ({figures['messages_per_second']} msg/s)"
    )
    by_operation = ", ".join(
        f"{k} {v}" for k, v in sorted(figures["requests_by_operation"].items())
    )
    print(f"  HTTP requests          {figures['requests']} ({by_operation})")
    print(f"  per 1,000 messages     {figures['requests_per_1000']} (target <= 30)")
    quiet = ", ".join(f"{k} {v}" for k, v in sorted(figures["quiet_pass_by_operation"].items()))
    print(f"no-change pass: {figures['quiet_pass_requests']} requests ({quiet})")
    print(f"errors: {figures['errors'] or 'none'}")


if __name__ == "__main__":
    main()
