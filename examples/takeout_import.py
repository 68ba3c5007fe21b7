"""Import a Google Takeout mailbox export (an mbox file) into SQLite.

Takeout's ``X-Gmail-Labels`` become folders (Spam, Trash and Drafts are left
out; so is anything you exclude) and ``X-GM-THRID`` keeps Gmail's threads.
Re-running after a newer export imports only what changed.

    python examples/takeout_import.py "All mail Including Spam and Trash.mbox" you@example.com
"""

from __future__ import annotations

import argparse

from commlink import Channel, ChannelKind, ChannelSettings, FolderSelection
from commlink.providers.files.mbox import MboxProvider
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mbox")
    parser.add_argument("owner", help="your own address")
    parser.add_argument("--db", default="takeout.sqlite")
    parser.add_argument("--exclude", nargs="*", default=["category"], help="folder ids or kinds")
    args = parser.parse_args()

    store = SqlStore(f"sqlite:///{args.db}")

    def show(p: Progress) -> None:
        print(f"\r{p.done:,} listed, {p.imported:,} imported", end="", flush=True)

    engine = SyncEngine(store, SqlDirectory(store), progress=show)
    channel = Channel(
        "takeout",
        "me",
        ChannelKind.MAIL,
        "mbox",
        ChannelSettings(owner=args.owner, folders=FolderSelection(exclude=frozenset(args.exclude))),
    )
    provider = MboxProvider(args.mbox)
    try:
        report = engine.run(channel, provider)
    finally:
        provider.close()
    print()
    print(report.summary())


if __name__ == "__main__":
    main()
