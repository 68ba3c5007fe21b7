"""Initial Microsoft Graph mail sync of 5,000 messages (full detail) against
the local Graph server into a SQLite ``SqlStore``, then a no-change pass.

Messages come from ``corpus.py`` (multipart, 4-8 KB); those the owner sent
go to Sent Items, the rest to the Inbox. Prints HTTP requests per 1,000
messages (target <= 60), time and messages per second, and the requests of
a no-change incremental pass (target: one delta request per folder).

    .venv/bin/python benchmarks/graph_sync.py [--messages 5000] [--page-size 500]

``run()`` returns the figures as a dict for ``microsoft_sync.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import OWNER, messages

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy, Detail
from commlink.providers.microsoft.graph import GraphClient, GraphMailProvider, StaticToken
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.microsoft import GraphServer

__all__ = ["main", "run"]


def run(count: int = 5000, page_size: int = 500, workdir: Path | None = None) -> dict[str, float]:
    """Sync ``count`` messages; the figures of the initial and no-change passes."""
    with tempfile.TemporaryDirectory() as tmp, GraphServer(user=OWNER) as server:
        root = workdir or Path(tmp)
        sent = 0
        for raw in messages(count, people=2000):
            outgoing = raw.startswith(f"From: Owner <{OWNER}>".encode())
            server.mail.add_message(raw, "sentitems" if outgoing else "inbox")
            sent += outgoing
        store = SqlStore(f"sqlite:///{root}/graph-bench.sqlite")
        channel = Channel(
            "bench",
            "owner",
            ChannelKind.MAIL,
            "graph",
            ChannelSettings(
                owner=OWNER,
                org_domains=frozenset({"northwind.example"}),
                contact_policy=ContactPolicy.NONE,
            ),
        )
        engine = SyncEngine(
            store, SqlDirectory(store), batch_size=500, folder_ttl=timedelta(minutes=5)
        )
        client = GraphClient(StaticToken(server.token), base_url=server.base_url)
        provider = GraphMailProvider(
            client, user=OWNER, delta_detail=Detail.FULL, page_size=page_size
        )
        try:
            started = time.perf_counter()
            report = engine.run(channel, provider)
            elapsed = time.perf_counter() - started
            assert not report.errors, report.errors
            initial = provider.requests_sent
            folders = report.scopes

            before = provider.requests_sent
            started = time.perf_counter()
            quiet = engine.run(channel, provider)
            quiet_time = time.perf_counter() - started
            assert not quiet.errors, quiet.errors
            quiet_requests = provider.requests_sent - before
        finally:
            provider.close()
            store.close()
        return {
            "messages": float(count),
            "sent_items": float(sent),
            "imported": float(report.imported),
            "skipped": float(sum(report.skipped.values())),
            "requests": float(initial),
            "requests_per_1000": initial / count * 1000,
            "seconds": elapsed,
            "messages_per_second": count / elapsed,
            "folders": float(folders),
            "quiet_requests": float(quiet_requests),
            "quiet_requests_per_folder": quiet_requests / max(folders, 1),
            "quiet_seconds": quiet_time,
        }


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args(argv)
    figures = run(args.messages, args.page_size)
    print(f"Graph initial sync of {args.messages} messages (full detail, SQLite store)")
    print(f"  imported               {figures['imported']:.0f} (skipped {figures['skipped']:.0f})")
    print(
        f"  HTTP requests          {figures['requests']:.0f} "
        f"({figures['requests_per_1000']:.1f} per 1,000 messages; target <= 60)"
    )
    print(f"  time                   {figures['seconds']:.1f} s")
    print(f"  throughput             {figures['messages_per_second']:.0f} messages/s")
    print("no-change pass")
    print(
        f"  HTTP requests          {figures['quiet_requests']:.0f} for "
        f"{figures['folders']:.0f} folders (target: 1 per folder)"
    )
    print(f"  time                   {figures['quiet_seconds'] * 1000:.0f} ms")
    return figures


if __name__ == "__main__":
    main()
