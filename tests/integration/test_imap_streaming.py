"""The IMAP provider's streamed fetch and its flag-only rule, against real
servers (Dovecot and Cyrus, with and without CONDSTORE/QRESYNC):

- a flag change is not new content: flagging 192 messages fetches no byte
  of any message and imports nothing; only UIDs from the old UIDNEXT on are new;
- pages fetched ahead arrive once each, and a connection dropped in the
  middle of a FETCH (``doveadm kick``, a socket shut down) loses nothing
  and hands nothing out twice.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections import Counter

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy, Detail, Limits
from commlink.ports import Scope
from commlink.providers.imap.provider import ImapProvider
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Progress, SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import OWNER, sample_message

pytestmark = pytest.mark.integration

CHANNEL = Channel(
    "stream",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
)


class Env:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.directory = InMemoryDirectory()
        self.directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
        self.engine = SyncEngine(self.store, self.directory)

    def run(self, provider: ImapProvider) -> SyncReport:
        report = self.engine.run(CHANNEL, provider)
        assert report.errors == []
        return report

    def subjects(self) -> list[str]:
        page = self.store.timeline(
            Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), PageRequest(limit=1000)
        )
        return [t.subject or "" for t in page.items]


def big_message(n: int, size: int) -> bytes:
    line = b"%07d " % n + b"y" * 68 + b"\r\n"
    return sample_message(n).replace(b"Hello", line * (size // len(line)) + b"Hello")


def _inbox(provider: ImapProvider) -> Scope:
    return provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]


def _listing(provider: ImapProvider, scope: Scope) -> list[str]:
    ids: list[str] = []
    page = None
    while True:
        result = provider.list_page(scope, page)
        ids.extend(result.ids)
        if result.next is None:
            return ids
        page = result.next


def _flag_everything(account: ImapAccount, folder: str = "INBOX") -> int:
    admin = account.admin
    admin.select_folder(folder)
    uids = admin.search(["ALL"])
    admin.add_flags(uids, [b"\\Flagged", b"$Label1"])
    admin.remove_flags(uids[::2], [b"$Label1"])
    admin.close_folder()
    return len(uids)


def _append_many(account: ImapAccount, numbers: range, folder: str = "INBOX") -> None:
    admin = account.admin
    for n in numbers:
        admin.append(folder, sample_message(n))


def test_flagging_192_messages_fetches_nothing_and_imports_nothing(imap: ImapAccount) -> None:
    _flags_are_not_new_content(imap)


def test_without_condstore_only_uids_from_the_old_uidnext_are_new(
    imap_plain: ImapAccount,
) -> None:
    _flags_are_not_new_content(imap_plain)


def _flags_are_not_new_content(account: ImapAccount) -> None:
    _append_many(account, range(1, 193))
    env = Env()
    provider = account.provider
    assert env.run(provider).imported == 192
    assert _flag_everything(account) == 192

    before = (provider.bytes_fetched, provider.round_trips)
    report = env.run(provider)
    assert (report.imported, report.fetched, report.deleted) == (0, 0, 0)
    assert provider.bytes_fetched == before[0]  # not a byte of any message
    folders = len(env.store.scope_ids(CHANNEL.id))
    # LIST, STATUS per folder and at most one UNSELECT: no SELECT, no FETCH
    assert provider.round_trips - before[1] <= 1 + folders + 1

    # new mail together with flag changes: only UIDs from the old UIDNEXT on
    new = sample_message(500)
    account.add("INBOX", new)
    _flag_everything(account)
    before = (provider.bytes_fetched, provider.round_trips)
    report = env.run(provider)
    assert (report.imported, report.fetched) == (1, 1)
    assert provider.bytes_fetched - before[0] == len(new)
    assert len(env.subjects()) == 193
    assert env.run(provider).imported == 0


def test_flags_and_an_expunge_in_one_pass(imap: ImapAccount) -> None:
    _append_many(imap, range(1, 11))
    env = Env()
    assert env.run(imap.provider).imported == 10
    _flag_everything(imap)
    imap.delete("INBOX", "msg-4@conformance")
    before = imap.provider.bytes_fetched
    report = env.run(imap.provider)
    assert (report.imported, report.fetched, report.deleted) == (0, 0, 1)
    assert imap.provider.bytes_fetched == before
    assert "Proposal 4" not in env.subjects()
    assert len(env.subjects()) == 9


def test_pages_fetched_ahead_arrive_once_each(imap: ImapAccount) -> None:
    _append_many(imap, range(1, 48))
    provider = imap.new_provider(page_size=5)
    env = Env()
    env.engine = SyncEngine(env.store, env.directory, batch_size=5)
    report = env.run(provider)
    assert report.imported == 47
    subjects = env.subjects()
    assert sorted(subjects) == sorted(f"Proposal {n}" for n in range(1, 48))
    # every message read once: the pages fetched ahead were the pages asked for
    assert provider.bytes_fetched == sum(len(sample_message(n)) for n in range(1, 48))


def test_a_page_of_stored_mail_is_not_fetched_ahead(imap: ImapAccount) -> None:
    _append_many(imap, range(1, 21))
    provider = imap.new_provider(page_size=5)
    scope = _inbox(provider)
    first = provider.list_page(scope, None)
    # only part of the page is wanted (the rest is stored): no fetch ahead
    assert len(list(provider.fetch(scope, first.ids[:2], Detail.FULL))) == 2
    assert provider.list_page(scope, first.next).ids
    assert provider.bytes_fetched == sum(len(sample_message(n)) for n in (19, 20))


def test_a_fetch_given_up_halfway_is_fetched_whole_next_time(imap: ImapAccount) -> None:
    _append_many(imap, range(1, 13))
    provider = imap.new_provider(page_size=4)
    scope = _inbox(provider)
    page = provider.list_page(scope, None)
    halfway = provider.fetch(scope, page.ids, Detail.FULL)
    assert next(halfway).raw is not None
    del halfway  # the caller failed on the first message
    again = [f.provider_id for f in provider.fetch(scope, page.ids, Detail.FULL)]
    assert sorted(again) == sorted(page.ids)
    following = provider.list_page(scope, page.next)
    assert len(list(provider.fetch(scope, following.ids, Detail.FULL))) == 4


def _kick(account: DovecotAccount) -> None:
    server = account.server
    kicked = subprocess.run(
        ["doveadm", "-c", str(server.config_path), "kick", account.username],
        capture_output=True,
        check=False,
    )
    assert kicked.returncode == 0, kicked.stderr


def test_a_kick_in_the_middle_of_a_fetch_loses_and_repeats_nothing(
    dovecot_account: DovecotAccount,
) -> None:
    # 24 MB: more than the socket buffers hold, so the kick cuts a literal
    count = 80
    for n in range(1, count + 1):
        dovecot_account.add("INBOX", big_message(n, 300_000))
    provider = dovecot_account.new_provider(limits=Limits(fetch_batch_bytes=2 * 2**20))
    scope = _inbox(provider)
    ids = _listing(provider, scope)
    assert len(ids) == count
    seen: Counter[str] = Counter()
    for fetched in provider.fetch(scope, ids, Detail.FULL):
        seen[fetched.provider_id] += 1
        assert fetched.raw is not None
        assert fetched.raw.startswith(b"From: Ann")
        assert b"%07d " % int(fetched.raw.split(b"Proposal ")[1].split(b"\r")[0]) in fetched.raw
        if len(seen) == 3:
            _kick(dovecot_account)
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert provider.conn.connects == 2


def test_a_socket_shut_in_the_middle_of_a_fetch_loses_and_repeats_nothing(
    imap: ImapAccount,
) -> None:
    count = 30
    for n in range(1, count + 1):
        imap.add("INBOX", big_message(n, 200_000))
    provider = imap.new_provider(limits=Limits(fetch_batch_bytes=2**20))
    scope = _inbox(provider)
    ids = _listing(provider, scope)
    seen: Counter[str] = Counter()
    for fetched in provider.fetch(scope, ids, Detail.FULL):
        seen[fetched.provider_id] += 1
        if len(seen) == 2:  # the worker is reading ahead: cut under its feet
            provider.conn.client.socket().shutdown(socket.SHUT_RDWR)
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert provider.conn.connects == 2


def test_a_kick_during_a_full_sync_imports_everything_once(
    dovecot_account: DovecotAccount,
) -> None:
    count = 60
    for n in range(1, count + 1):
        dovecot_account.add("INBOX", big_message(n, 100_000))
    provider = dovecot_account.new_provider(page_size=10, limits=Limits(fetch_batch_bytes=2**20))
    env = Env()
    kicked = threading.Event()

    def kick_once(progress: Progress) -> None:
        if progress.imported and not kicked.is_set():
            kicked.set()
            _kick(dovecot_account)

    env.engine = SyncEngine(env.store, env.directory, batch_size=10, progress=kick_once)
    report = env.run(provider)
    assert kicked.is_set()
    assert report.imported == count
    subjects = env.subjects()
    assert len(subjects) == len(set(subjects)) == count
    assert provider.conn.connects >= 2
