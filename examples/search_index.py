"""Keep a host's full-text search index current from commlink's host events.

The store writes events to its outbox in the same transaction as the mail
(``SqlStore(..., outbox=True)``); an ``OutboxRelay`` hands them, in order,
to ``SearchIndex.deliver``. Events carry ids, never content: the index reads
each message through the store with the channel owner as viewer, so
visibility rules still apply. The index (SQLite FTS5, in the host's own
database file) records the id of the last event it applied in the same
transaction as its rows, so an event delivered twice after a crash is
skipped: each one takes effect exactly once.

    python examples/search_index.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from commlink import Channel, ChannelKind, ChannelSettings, HostEvent, OutboxRelay, Viewer
from commlink.cli.demo import DEMO_DATA
from commlink.events import MESSAGE_CREATED, MESSAGE_DELETED, MESSAGE_UPDATED
from commlink.providers.files.mbox import MboxProvider
from commlink.records import CompanyRef, NewContact, OpportunityRef, PersonRef
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine


class NoDirectory:
    """A CRM with no records yet (see quickstart.py for a real one)."""

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        return {}

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        return {}

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        return {}

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        return {}


class SearchIndex:
    """A full-text index of each channel's messages, fed by host events."""

    def __init__(self, path: Path, store: SqlStore) -> None:
        self.db = sqlite3.connect(path)
        self.store = store
        with self.db:
            self.db.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5("
                "channel_id UNINDEXED, message_id UNINDEXED, thread_id UNINDEXED, subject, body)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS applied (last_event_id INTEGER)")
            if self.db.execute("SELECT count(*) FROM applied").fetchone()[0] == 0:
                self.db.execute("INSERT INTO applied VALUES (0)")

    def deliver(self, events: Sequence[HostEvent]) -> None:
        with self.db:  # one transaction: the rows and the last applied id
            (last,) = self.db.execute("SELECT last_event_id FROM applied").fetchone()
            for event in events:
                if event.id <= last:
                    continue  # delivered again after a crash: already applied
                if event.type in (MESSAGE_CREATED, MESSAGE_UPDATED, MESSAGE_DELETED):
                    self._drop(event)
                if event.type in (MESSAGE_CREATED, MESSAGE_UPDATED):
                    self._add(event)
                last = event.id
            self.db.execute("UPDATE applied SET last_event_id = ?", (last,))

    def _drop(self, event: HostEvent) -> None:
        self.db.execute(
            "DELETE FROM docs WHERE channel_id = ? AND message_id = ?",
            (event.channel_id, event.message_id),
        )

    def _add(self, event: HostEvent) -> None:
        channel = self.store.channel(event.channel_id)
        if channel is None:
            return  # removed since: its deletion events follow
        view = self.store.thread(event.thread_id, Viewer(channel.user_id))
        shown = [m for m in view.messages if m.message_id == event.message_id] if view else []
        if shown:
            message = shown[0]
            self.db.execute(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?)",
                (
                    event.channel_id,
                    event.message_id,
                    event.thread_id,
                    message.subject or "",
                    message.body or "",
                ),
            )

    def search(self, words: str) -> list[str]:
        rows = self.db.execute(
            "SELECT subject FROM docs WHERE docs MATCH ? ORDER BY rank", (words,)
        ).fetchall()
        return [subject for (subject,) in rows]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM docs").fetchone()[0])


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        SqlStore(f"sqlite:///{tmp}/crm.sqlite", outbox=True) as store,
    ):
        channel = Channel(
            "alice-mail",
            "alice",
            ChannelKind.MAIL,
            "mbox",
            ChannelSettings(owner="alice@northwind.example"),
        )
        with MboxProvider(DEMO_DATA / "demo.mbox") as provider:
            print(SyncEngine(store, NoDirectory()).run(channel, provider).summary())
        index = SearchIndex(Path(tmp) / "search.sqlite", store)
        relay = OutboxRelay(store.outbox(), index, consumer="search")
        print(f"delivered {relay.drain()} events; {index.count()} messages indexed")
        print("search 'renewal':", index.search("renewal"))
        store.remove_channel(channel.id)  # the user disconnects the mailbox
        print(f"delivered {relay.drain()} events; {index.count()} messages indexed")
        index.db.close()


if __name__ == "__main__":
    main()
