"""What servers other than Dovecot-as-configured taught the IMAP provider:
freedoms the standards allow that used to lose or keep mail wrongly.

- A server that rebuilds its index keeps UIDVALIDITY but may restart
  HIGHESTMODSEQ low (Dovecot after losing its index files): mail added
  afterwards has a modseq below the cursor's and must still be imported.
- ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)``: ``*`` is the highest
  UID still present, and Cyrus reports VANISHED only up to it, so the
  expunge of the newest messages went unnoticed (ghost mail).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.imap.provider import ImapProvider
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount, DovecotServer
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import OWNER, sample_message
from server_fixtures import unique_name

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "freedoms",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)


class Env:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.directory = InMemoryDirectory()
        self.directory.add_company("co-client", "Client", ["client.example"])
        self.directory.add_person(
            "p-ann", "Ann Client", ["ann@client.example"], company_id="co-client"
        )
        self.engine = SyncEngine(self.store, self.directory)

    def run(self, provider: ImapProvider) -> SyncReport:
        report = self.engine.run(CHANNEL, provider)
        assert report.errors == []
        return report

    def subjects(self) -> list[str]:
        page = self.store.timeline(Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner"))
        return sorted(t.subject or "" for t in page.items)

    def stored(self, folder: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` the store holds in ``folder``."""
        return self.store.known_ids(CHANNEL.id, folder, ids)


def _modseq(account: ImapAccount, folder: str = "INBOX") -> tuple[int, int]:
    status = account.admin.folder_status(folder, [b"UIDVALIDITY", b"HIGHESTMODSEQ"])
    return int(status[b"UIDVALIDITY"]), int(status[b"HIGHESTMODSEQ"])


@pytest.fixture
def rebuilt(dovecot: DovecotServer) -> Iterator[list[DovecotAccount]]:
    opened: list[DovecotAccount] = []
    yield opened
    for account in opened:
        account.close()


def test_mail_added_after_the_modseq_went_down_is_imported(
    dovecot: DovecotServer, rebuilt: list[DovecotAccount]
) -> None:
    env = Env()
    account = DovecotAccount(dovecot, unique_name("modseq"))
    for n in (1, 2, 3):
        account.add("INBOX", sample_message(n))
    admin = account.admin
    admin.select_folder("INBOX")
    uids = admin.search(["ALL"])
    for _ in range(15):  # flag changes: HIGHESTMODSEQ climbs well above the message count
        admin.add_flags(uids, [b"\\Flagged"])
        admin.remove_flags(uids, [b"\\Flagged"])
    admin.close_folder()
    assert env.run(account.provider).imported == 3
    validity, before = _modseq(account)
    assert before > 30
    account.close()  # no session keeps the old index open

    assert dovecot.delete_index("INBOX", username=account.username)
    again = DovecotAccount(dovecot, account.username)
    rebuilt.append(again)
    again.add("INBOX", sample_message(4))
    assert _modseq(again)[0] == validity
    assert _modseq(again)[1] < before  # the index was rebuilt: the modseq went down

    report = env.run(again.provider)
    assert env.subjects() == ["Proposal 1", "Proposal 2", "Proposal 3", "Proposal 4"]
    assert report.resyncs == 1  # a reconciling pass: nothing fetched twice
    assert report.fetched == 1
    again.add("INBOX", sample_message(5))
    assert env.run(again.provider).imported == 1
    assert env.run(again.provider).imported == 0
    assert len(env.subjects()) == 5


def test_expunging_the_newest_messages_leaves_no_ghosts(imap: ImapAccount) -> None:
    env = Env()
    for n in range(1, 6):
        imap.add("INBOX", sample_message(n))
    env.run(imap.provider)
    listed = _listing(imap)
    assert env.stored("INBOX", listed) == set(listed)
    for n in (4, 5):
        imap.delete("INBOX", f"msg-{n}@conformance")
    report = env.run(imap.provider)
    assert env.subjects() == ["Proposal 1", "Proposal 2", "Proposal 3"]
    assert report.deleted == 2
    assert len(env.stored("INBOX", listed)) == 3


def test_moving_the_newest_messages_away_leaves_no_ghosts(imap: ImapAccount) -> None:
    env = Env()
    for n in range(1, 6):
        imap.add("INBOX", sample_message(n))
    env.run(imap.provider)
    listed = _listing(imap)
    newest = [uid for n in (3, 4, 5) for uid in imap.uids("INBOX", f"msg-{n}@conformance")]
    imap.admin.move(newest, "Archive")
    imap.admin.close_folder()
    report = env.run(imap.provider)
    assert len(env.stored("INBOX", listed)) == 2, "the moved messages are still in the inbox"
    assert len(env.stored("Archive", _listing(imap, "Archive"))) == 3
    assert report.deleted == 3
    assert len(env.subjects()) == 5


def _listing(account: ImapAccount, folder: str = "INBOX") -> list[str]:
    """The provider ids of a folder, as a fresh session sees it."""
    provider = account.new_provider()
    scope = provider.scopes([f for f in provider.folders() if f.id == folder])[0]
    ids: list[str] = []
    page: str | None = None
    while True:
        result = provider.list_page(scope, page)
        ids.extend(result.ids)
        page = result.next
        if page is None:
            return ids
