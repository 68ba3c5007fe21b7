"""A Google Takeout-style mbox import keeps Gmail's threads and labels."""

from __future__ import annotations

from commlink.cli.demo import DEMO_DATA
from commlink.model import Channel, ChannelKind, ChannelSettings, Detail, FolderKind
from commlink.providers.files.mbox import MboxProvider
from commlink.records import PageRequest, Reason, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory

DEMO = DEMO_DATA / "demo.mbox"


def test_labels_become_folders_with_kinds() -> None:
    provider = MboxProvider(DEMO)
    kinds = {f.name: f.kind for f in provider.folders()}
    provider.close()
    assert kinds["Inbox"] is FolderKind.INBOX
    assert kinds["Sent"] is FolderKind.SENT
    assert kinds["Spam"] is FolderKind.SPAM
    assert kinds["Important"] is FolderKind.IMPORTANT
    assert kinds["Category Promotions"] is FolderKind.CATEGORY


def test_thread_ids_and_labels_reach_the_store() -> None:
    provider = MboxProvider(DEMO)
    scope = provider.scopes(provider.folders())[0]
    first_page = provider.list_page(scope, None)
    first = next(provider.fetch(scope, first_page.ids[:1], Detail.FULL))
    assert first.thread_hint == "1780000000000000000"
    assert first.folders == ("Inbox", "Important")

    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_company("globex", "Globex", ["globex.example"])
    settings = ChannelSettings(owner="alice@northwind.example")
    channel = Channel("takeout", "alice", ChannelKind.MAIL, "mbox", settings)
    report = SyncEngine(store, directory).run(channel, provider)
    provider.close()
    assert report.errors == []
    threads = store.timeline(
        Target(TargetKind.COMPANY, "globex"), Viewer("alice"), PageRequest(limit=10)
    ).items
    # g4 keeps only In-Reply-To and changes the subject: still one Gmail thread
    assert [t.message_count for t in threads] == [4]
    reasons = {s.reason for s in store.skips("takeout", Viewer("alice"))}
    assert reasons >= {Reason.EXCLUDED_FOLDER, Reason.GROUP}
