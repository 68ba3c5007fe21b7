"""SyncEngine over the IMAP provider against real servers (Dovecot and Cyrus,
with and without CONDSTORE/QRESYNC): mailbox edits behind the provider's back
end with the store matching the mailbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import attrs
import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings, Visibility
from commlink.providers.imap.provider import ImapProvider
from commlink.records import ChannelStatus, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Progress, SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import BASE, OWNER, sample_message

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "imap-1",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)


@attrs.define
class Env:
    account: ImapAccount
    store: MemoryStore = attrs.field(factory=MemoryStore)
    directory: InMemoryDirectory = attrs.field(factory=InMemoryDirectory)
    progress: list[Progress] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.directory.add_company("co-client", "Client", ["client.example"])
        self.directory.add_person(
            "p-ann", "Ann Client", ["ann@client.example"], company_id="co-client"
        )

    def engine(self, **kwargs: object) -> SyncEngine:
        return SyncEngine(self.store, self.directory, progress=self.progress.append, **kwargs)  # type: ignore[arg-type]

    def run(self, provider: ImapProvider | None = None, **kwargs: object) -> SyncReport:
        report = self.engine(**kwargs).run(CHANNEL, provider or self.account.provider)
        assert report.errors == []
        return report

    def subjects(self) -> list[str]:
        page = self.store.timeline(Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner"))
        return sorted(t.subject or "" for t in page.items)


@pytest.fixture
def env(imap: ImapAccount) -> Env:
    return Env(imap)


@pytest.fixture
def env_plain(imap_plain: ImapAccount) -> Env:
    return Env(imap_plain)


def _add(account: ImapAccount, folder: str, *numbers: int) -> None:
    for n in numbers:
        account.add(folder, sample_message(n))


def test_first_sync_then_quiet_pass(env: Env) -> None:
    _add(env.account, "INBOX", 1, 2, 3)
    _add(env.account, "Sent", 4)
    assert env.run().imported == 4
    assert env.subjects() == ["Proposal 1", "Proposal 2", "Proposal 3", "Proposal 4"]
    provider = env.account.provider
    before = provider.round_trips
    quiet = env.run()
    assert quiet.imported == 0
    assert quiet.fetched == 0
    selected = len(env.store.scope_ids(CHANNEL.id))
    # LIST once, STATUS per folder, and at most one UNSELECT of the open folder
    assert provider.round_trips - before <= 1 + selected + 1


def test_uidvalidity_change_resyncs_without_duplicates(env: Env) -> None:
    account = env.account
    account.admin.create_folder("Projects")
    _add(account, "Projects", 1, 2, 3)
    env.run()
    assert env.subjects() == ["Proposal 1", "Proposal 2", "Proposal 3"]
    account.admin.delete_folder("Projects")
    account.admin.create_folder("Projects")
    _add(account, "Projects", 2, 3, 4)
    report = env.run()
    assert report.resyncs >= 1
    assert env.subjects() == ["Proposal 2", "Proposal 3", "Proposal 4"]


def test_message_moved_between_folders(env: Env) -> None:
    account = env.account
    _add(account, "INBOX", 1, 2)
    env.run()
    uids = account.uids("INBOX", "msg-1@conformance")
    validity = account.admin.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    old_id = f"{validity}:{uids[0]}"
    assert env.store.known_ids(CHANNEL.id, "INBOX", [old_id]) == {old_id}
    account.admin.move(uids, "Archive")
    account.admin.close_folder()
    report = env.run()
    assert report.errors == []
    assert report.imported == 1
    assert report.deleted == 1
    assert env.subjects() == ["Proposal 1", "Proposal 2"]
    assert env.store.known_ids(CHANNEL.id, "INBOX", [old_id]) == set()
    new = account.uids("Archive", "msg-1@conformance")
    validity = account.admin.folder_status("Archive", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    new_id = f"{validity}:{new[0]}"
    assert env.store.known_ids(CHANNEL.id, "Archive", [new_id]) == {new_id}


def test_expunge_is_deleted(env: Env) -> None:
    _add(env.account, "INBOX", 1, 2, 3)
    env.run()
    env.account.delete("INBOX", "msg-2@conformance")
    report = env.run()
    assert report.deleted == 1
    assert env.subjects() == ["Proposal 1", "Proposal 3"]


def test_expunge_without_condstore_reconciles(env_plain: Env) -> None:
    _add(env_plain.account, "INBOX", 1, 2, 3)
    env_plain.run()
    env_plain.account.delete("INBOX", "msg-2@conformance")
    _add(env_plain.account, "INBOX", 4)
    report = env_plain.run()
    assert report.resyncs == 1
    assert report.fetched == 1  # only the new message: known ids are not fetched again
    assert env_plain.subjects() == ["Proposal 1", "Proposal 3", "Proposal 4"]


def test_flag_change_is_not_an_upsert_with_condstore(imap: ImapAccount) -> None:
    _add(imap, "INBOX", 1, 2)
    provider = imap.provider
    scope = provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]
    cursor = provider.snapshot(scope)
    uid = imap.uids("INBOX", "msg-2@conformance")[0]
    imap.admin.add_flags([uid], [b"\\Flagged"])
    changes = provider.changes(scope, cursor)
    assert changes.upserted == ()  # flags are not stored: nothing new to fetch
    assert changes.deleted == ()
    assert changes.cursor != cursor  # past the new HIGHESTMODSEQ
    assert provider.changes(scope, changes.cursor).cursor == changes.cursor


def test_flag_change_is_not_seen_without_condstore(imap_plain: ImapAccount) -> None:
    _add(imap_plain, "INBOX", 1)
    provider = imap_plain.provider
    scope = provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]
    cursor = provider.snapshot(scope)
    uid = imap_plain.uids("INBOX", "msg-1@conformance")[0]
    imap_plain.admin.add_flags([uid], [b"\\Flagged"])
    changes = provider.changes(scope, cursor)
    assert changes.upserted == ()
    assert changes.cursor == cursor


def test_mail_arriving_during_a_full_sync(imap: ImapAccount) -> None:
    _arriving_during_a_full_sync(Env(imap))


def test_mail_arriving_during_a_full_sync_without_condstore(imap_plain: ImapAccount) -> None:
    _arriving_during_a_full_sync(Env(imap_plain))


def _arriving_during_a_full_sync(env: Env) -> None:
    _add(env.account, "INBOX", *range(1, 8))
    provider = env.account.new_provider(page_size=2)
    arrived: list[int] = []

    def append_once(progress: Progress) -> None:
        if progress.stage == "full" and not arrived:
            arrived.append(99)
            _add(env.account, "INBOX", 99)

    engine = SyncEngine(env.store, env.directory, batch_size=2, progress=append_once)
    report = engine.run(CHANNEL, provider)
    assert report.errors == []
    assert arrived == [99]
    expected = sorted([f"Proposal {n}" for n in range(1, 8)] + ["Proposal 99"])
    assert env.subjects() == expected
    assert env.run(provider).imported == 0


def test_folder_renamed(env: Env) -> None:
    account = env.account
    account.admin.create_folder("Projects")
    _add(account, "Projects", 1, 2)
    env.run()
    account.admin.rename_folder("Projects", "Clients")
    report = env.run()
    assert report.errors == []
    assert env.subjects() == ["Proposal 1", "Proposal 2"]
    scopes = set(env.store.scope_ids(CHANNEL.id))
    assert "Clients" in scopes
    assert "Projects" not in scopes


BROKEN = [
    # 8-bit headers and body without any charset declared
    "From: Jürgen Müller <ann@client.example>\r\nTo: owner@home.example\r\n"
    "Subject: Grüße aus Köln\r\nMessage-ID: <eight@bit>\r\n\r\nSchöne Grüße\r\n".encode(),
    # latin-1 bytes that are not UTF-8
    b"From: ann@client.example\r\nTo: owner@home.example\r\nSubject: caf\xe9\r\n"
    b"Message-ID: <latin@one>\r\nContent-Type: text/plain\r\n\r\nd\xe9j\xe0 vu\r\n",
    # broken base64 and a multipart without its closing boundary
    b"From: ann@client.example\r\nTo: owner@home.example\r\nSubject: broken\r\n"
    b"Message-ID: <broken@b64>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\n'
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%not base64!!\r\n",
    # no headers at all
    b"just some text without any header\r\n",
    # binary garbage
    bytes(range(1, 256)) * 4,
    # an unparseable From and Date, no Message-ID
    b"From: <<<@@@>>>\r\nDate: yesterday-ish\r\nSubject: odd\r\n\r\nhi\r\n",
]


def test_eight_bit_and_broken_messages(dovecot_account: DovecotAccount) -> None:
    # written straight into the Maildir: an APPEND would be refused or rewritten
    env = Env(dovecot_account)
    dovecot_account.server.deliver("INBOX", BROKEN, username=dovecot_account.username)
    report = env.run()
    assert report.fetched == len(BROKEN)
    assert report.imported + sum(report.skipped.values()) == len(BROKEN)
    assert "Grüße aus Köln" in env.subjects()


@pytest.mark.parametrize("visibility", [Visibility.FULL, Visibility.METADATA])
def test_sync_never_sets_seen(env: Env, visibility: Visibility) -> None:
    _add(env.account, "INBOX", 1, 2)
    env.account.add("Archive", sample_message(3), flags=(b"\\Flagged",))
    channel = attrs.evolve(CHANNEL, settings=attrs.evolve(CHANNEL.settings, visibility=visibility))
    report = env.engine().run(channel, env.account.provider)
    assert report.errors == []
    assert report.imported == 3
    admin = env.account.admin
    for folder in ("INBOX", "Archive"):
        admin.select_folder(folder, readonly=True)
        flags = admin.get_flags(admin.search(["ALL"]))
        assert flags
        assert all(b"\\Seen" not in f for f in flags.values())


def test_wrong_password_is_failed_auth(env: Env) -> None:
    from commlink.errors import AuthError

    bad = env.account.new_provider(password="wrong")
    with pytest.raises(AuthError):
        bad.folders()
    report = env.engine().run(CHANNEL, env.account.new_provider(password="wrong"))
    assert report.status is ChannelStatus.FAILED_AUTH
    state = env.store.channel_state(CHANNEL.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH


def test_a_date_far_ahead_of_arrival_takes_the_servers_internaldate(env: Env) -> None:
    # INTERNALDATE is the time of the APPEND: now
    future = sample_message(7).replace(
        format_datetime(BASE + timedelta(minutes=7)).encode(), b"Fri, 31 Dec 9999 23:59:59 +0000"
    )
    env.account.add(env.account.inbox(), future)
    before = datetime.now(timezone.utc)
    env.run()
    (summary,) = env.store.timeline(
        Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner")
    ).items
    assert abs(summary.last_at - before) < timedelta(hours=1)
    view = env.store.thread(summary.thread_id, Viewer("u-owner"))
    assert view is not None
    assert "date-after-arrival" in view.messages[0].warnings
