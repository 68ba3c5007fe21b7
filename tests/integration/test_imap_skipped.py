"""Reconciling IMAP folders without CONDSTORE (Dovecot and Cyrus): an
expunge makes the engine list the folder again, and skipped mail is not
fetched again; an id another folder skipped is still fetched when it is new."""

from __future__ import annotations

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import Reason, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import OWNER, sample_message

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "imap-skips",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)


def newsletter(n: int) -> bytes:
    return (
        f"From: News <news@list.example>\r\nTo: {OWNER}\r\nSubject: News {n}\r\n"
        f"List-Id: <weekly.list.example>\r\nMessage-ID: <news-{n}@list.example>\r\n"
        "Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nnews\r\n"
    ).encode()


def sync(store: MemoryStore, account: ImapAccount) -> SyncReport:
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
    report = SyncEngine(store, directory).run(CHANNEL, account.provider)
    assert report.errors == []
    return report


def subjects(store: MemoryStore) -> list[str]:
    page = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"))
    return sorted(t.subject or "" for t in page.items)


def test_an_expunge_does_not_fetch_skipped_mail_again(imap_plain: ImapAccount) -> None:
    for n in range(1, 4):
        imap_plain.add("INBOX", sample_message(n))
    for n in range(1, 20):
        imap_plain.add("INBOX", newsletter(n))
    store = MemoryStore()
    assert sync(store, imap_plain).skipped == {Reason.GROUP: 19}
    imap_plain.delete("INBOX", "msg-1@conformance")
    imap_plain.delete("INBOX", "msg-2@conformance")
    imap_plain.add("INBOX", sample_message(4))
    report = sync(store, imap_plain)
    assert report.resyncs == 1
    assert report.fetched == 1  # the new message only
    assert (report.imported, report.deleted, report.unchanged) == (1, 2, 20)
    assert subjects(store) == ["Proposal 3", "Proposal 4"]


def test_new_mail_is_fetched_though_another_folder_skipped_its_id(
    imap_plain: ImapAccount,
) -> None:
    """Cyrus gives folders made in the same second the same UIDVALIDITY, so
    ``Work`` and ``Lists`` share ids: a message new to ``Work`` is fetched
    even though ``Lists`` skipped a message under that id."""
    imap_plain.admin.create_folder("Lists")
    imap_plain.admin.create_folder("Work")
    for n in range(1, 4):
        imap_plain.add("Lists", newsletter(n))
    imap_plain.add("Work", sample_message(1))
    store = MemoryStore()
    sync(store, imap_plain)
    imap_plain.add("Work", sample_message(2))
    imap_plain.add("Work", sample_message(3))
    imap_plain.delete("Work", "msg-1@conformance")  # a reconcile, and no stored id left
    report = sync(store, imap_plain)
    assert report.imported == 2
    assert subjects(store) == ["Proposal 2", "Proposal 3"]
