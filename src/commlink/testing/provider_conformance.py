"""``MailProviderConformance`` and ``CalendarProviderConformance``: one suite
every provider passes.

Subclass a suite in your tests and provide a ``harness`` fixture: an object
with the provider under test and a way to change the mailbox (or calendar)
behind it. The suite checks the port's contract: listings cover each id
once, fetches return what was stored, changes report additions and
deletions, a quiet pass reports nothing, a metadata-only fetch carries every
header the import policy reads (group mail is skipped alike at both detail
levels), and a real sync through ``SyncEngine`` ends with the store matching
the mailbox.

What servers taught: deleting the newest messages is reported like any
other deletion; a listing of nothing, or one made without working
credentials, is never taken for an empty account (nothing stored is swept);
and what RFC 2180 allows a server to do with a message another session
expunged (serve it until the reader is told) is accepted.

``RefusedCredentialsChecks`` adds, for a harness that can build a provider
without working credentials (``refused_provider()``), that its listing fails
with ``AuthError`` instead of coming back empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Protocol

import pytest

from ..errors import AuthError, CursorExpired
from ..model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    Detail,
    Folder,
    FolderKind,
    Message,
)
from ..ports import (
    CalendarProvider,
    ChangeSet,
    FetchedEvent,
    FetchedMessage,
    IdPage,
    MailProvider,
    Scope,
)
from ..records import Target, TargetKind, Viewer, Window
from ..stores.memory import MemoryStore
from ..sync.engine import SyncEngine
from ..sync.fetching import parse_fetched
from .directory import InMemoryDirectory
from .provider_policy import POLICY_CASES, MetadataPolicyChecks, policy_message

__all__ = [
    "POLICY_CASES",
    "CalendarHarness",
    "CalendarProviderConformance",
    "MailHarness",
    "MailProviderConformance",
    "RefusedCredentialsChecks",
    "policy_message",
    "sample_message",
]

OWNER = "owner@home.example"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def sample_message(n: int, *, sender: str = "ann@client.example", to: str = OWNER) -> bytes:
    """A small, well-formed message whose Message-ID is ``<msg-{n}@conformance>``."""
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Ann Client <{sender}>\r\nTo: {to}\r\nSubject: Proposal {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <msg-{n}@conformance>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello, this is message {n}.\r\n"
    ).encode()


class MailHarness(Protocol):
    """What a mail provider's test set-up offers the suite."""

    provider: MailProvider

    def add(self, folder_id: str, raw: bytes) -> None: ...

    def delete(self, folder_id: str, message_id: str) -> None:
        """Delete the message with this Message-ID (no angle brackets)."""
        ...

    def inbox(self) -> str:
        """The folder id of the inbox."""
        ...


class CalendarHarness(Protocol):
    provider: CalendarProvider

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None: ...

    def delete_event(self, calendar_id: str, uid: str) -> None: ...

    def calendar_id(self) -> str:
        """The id of the calendar the suite writes to."""
        ...


def _scope_for(provider: MailProvider | CalendarProvider, folder_id: str) -> Scope:
    folders = provider.folders() if isinstance(provider, MailProvider) else provider.calendars()
    matching = [f for f in folders if f.id == folder_id]
    assert matching, f"folder {folder_id!r} not listed"
    scopes = provider.scopes(matching)
    assert scopes, "no scope for a selected folder"
    return scopes[0]


def _all_ids(provider: MailProvider | CalendarProvider, scope: Scope) -> list[str]:
    ids: list[str] = []
    page: str | None = None
    for _ in range(10_000):
        result = provider.list_page(scope, page)
        ids.extend(result.ids)
        page = result.next
        if page is None:
            return ids
    raise AssertionError("listing never ended")


class RefusedCredentialsChecks:
    """Add to a suite whose harness has ``refused_provider()``: a provider
    for the same account whose credentials the server does not accept (none
    at all, or wrong ones). Its listing must fail with ``AuthError``, never
    come back empty: some servers (Cyrus, Xandikos) answer an anonymous
    request as for a user without calendars instead of with a 401."""

    def test_a_refused_login_is_an_auth_error_not_an_empty_listing(self, harness: Any) -> None:
        refused = harness.refused_provider()
        listing = refused.folders if isinstance(refused, MailProvider) else refused.calendars
        try:
            with pytest.raises(AuthError):
                listing()
        finally:
            refused.close()


class _NoFolders:
    """A mail provider whose folder listing comes back empty."""

    def __init__(self, provider: MailProvider) -> None:
        self._provider = provider

    def folders(self) -> Sequence[Folder]:
        return []

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        return self._provider.scopes(folders)

    def snapshot(self, scope: Scope) -> str:
        return self._provider.snapshot(scope)

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        return self._provider.list_page(scope, page)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        return self._provider.changes(scope, cursor)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        return self._provider.fetch(scope, ids, detail)

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        return None

    def close(self) -> None:
        """The wrapped provider stays open."""


class _NoCalendars:
    """A calendar provider whose calendar listing comes back empty."""

    def __init__(self, provider: CalendarProvider) -> None:
        self._provider = provider

    def calendars(self) -> Sequence[Folder]:
        return []

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return self._provider.scopes(calendars)

    def snapshot(self, scope: Scope) -> str:
        return self._provider.snapshot(scope)

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        return self._provider.list_page(scope, page)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        return self._provider.changes(scope, cursor)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        return self._provider.fetch(scope, ids)

    def close(self) -> None:
        """The wrapped provider stays open."""


def _mail_sync(harness: MailHarness, count: int) -> tuple[MemoryStore, SyncEngine, Channel]:
    """``count`` messages in the inbox, synced into a fresh store."""
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_company("co-client", "Client", ["client.example"])
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"], company_id="co-client")
    channel = Channel(
        "conformance",
        "u-owner",
        ChannelKind.MAIL,
        "test",
        ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
    )
    for n in range(1, count + 1):
        harness.add(harness.inbox(), sample_message(n))
    engine = SyncEngine(store, directory)
    report = engine.run(channel, harness.provider)
    assert report.errors == []
    assert report.imported == count
    return store, engine, channel


class MailProviderConformance(MetadataPolicyChecks):
    """The contract of a ``MailProvider``; subclass and provide ``harness``.

    Set ``changes_may_need_rescan`` for sources that cannot say what changed
    (a Maildir, a rewritten mbox): their ``changes`` may raise
    ``CursorExpired`` instead, and the engine reconciles with a listing.
    """

    changes_may_need_rescan = False

    @pytest.fixture
    def harness(self) -> Iterator[MailHarness]:
        raise NotImplementedError("provide a harness fixture")

    def _messages(self, harness: MailHarness, count: int, start: int = 1) -> list[str]:
        ids = []
        for n in range(start, start + count):
            harness.add(harness.inbox(), sample_message(n))
            ids.append(f"msg-{n}@conformance")
        return ids

    def test_folders_include_an_inbox(self, harness: MailHarness) -> None:
        folders = harness.provider.folders()
        assert any(f.kind is FolderKind.INBOX for f in folders)
        assert len({f.id for f in folders}) == len(folders)

    def test_listing_covers_each_message_once(self, harness: MailHarness) -> None:
        self._messages(harness, 7)
        scope = _scope_for(harness.provider, harness.inbox())
        ids = _all_ids(harness.provider, scope)
        assert len(ids) == 7
        assert len(set(ids)) == 7

    def test_fetch_returns_the_stored_messages(self, harness: MailHarness) -> None:
        expected = self._messages(harness, 3)
        scope = _scope_for(harness.provider, harness.inbox())
        ids = _all_ids(harness.provider, scope)
        fetched = list(harness.provider.fetch(scope, ids, Detail.FULL))
        assert {f.provider_id for f in fetched} == set(ids)
        parsed = [self._parse(f, Detail.FULL) for f in fetched]
        assert sorted(m.message_id for m in parsed) == sorted(expected)
        assert all(m.body and "this is message" in m.body for m in parsed)

    def test_metadata_fetch_has_headers_without_body(self, harness: MailHarness) -> None:
        self._messages(harness, 2)
        scope = _scope_for(harness.provider, harness.inbox())
        ids = _all_ids(harness.provider, scope)
        for item in harness.provider.fetch(scope, ids, Detail.METADATA):
            message = self._parse(item, Detail.METADATA)
            assert message.subject.startswith("Proposal")
            assert message.body is None
            if item.raw is not None:
                assert b"this is message" not in item.raw

    def test_changes_report_additions_and_deletions(self, harness: MailHarness) -> None:
        self._messages(harness, 2)
        scope = _scope_for(harness.provider, harness.inbox())
        cursor = harness.provider.snapshot(scope)
        before = set(_all_ids(harness.provider, scope))
        self._messages(harness, 1, start=50)
        try:
            changes = self._drain(harness.provider, scope, cursor)
        except CursorExpired:
            assert self.changes_may_need_rescan, "changes() gave up on a plain addition"
            changes = ([], [], harness.provider.snapshot(scope))
            assert len(set(_all_ids(harness.provider, scope)) - before) == 1
        else:
            assert len(set(changes[0]) - before) == 1
        harness.delete(harness.inbox(), "msg-1@conformance")
        try:
            removed = self._drain(harness.provider, scope, changes[2])
        except CursorExpired:
            assert self.changes_may_need_rescan, "changes() gave up on a plain deletion"
            assert len(before - set(_all_ids(harness.provider, scope))) == 1
        else:
            assert len(removed[1]) == 1
            assert removed[1][0] in before

    def test_quiet_pass_reports_nothing(self, harness: MailHarness) -> None:
        self._messages(harness, 2)
        scope = _scope_for(harness.provider, harness.inbox())
        cursor = harness.provider.snapshot(scope)
        _all_ids(harness.provider, scope)
        upserted, deleted, _ = self._drain(harness.provider, scope, cursor)
        assert upserted == []
        assert deleted == []

    def test_fetching_a_vanished_id_is_not_an_exception(self, harness: MailHarness) -> None:
        self._messages(harness, 1)
        scope = _scope_for(harness.provider, harness.inbox())
        ids = _all_ids(harness.provider, scope)
        harness.delete(harness.inbox(), "msg-1@conformance")
        items = list(harness.provider.fetch(scope, ids, Detail.FULL))
        # the vanished id is left out, comes back with an error, or - as RFC 2180
        # (4.1) allows a server whose session was not yet told of the expunge,
        # Cyrus does - comes back as the message it was, never as another one
        for item in items:
            assert item.provider_id in ids
            if item.raw is not None or item.message is not None:
                parsed = self._parse(item, Detail.FULL)
                assert parsed.message_id == "msg-1@conformance"

    def test_deleting_the_newest_messages_is_reported(self, harness: MailHarness) -> None:
        """Servers may read ``*`` as the highest UID still present (Cyrus):
        expunging the newest messages must be reported all the same."""
        self._messages(harness, 4)
        scope = _scope_for(harness.provider, harness.inbox())
        cursor = harness.provider.snapshot(scope)
        before = _all_ids(harness.provider, scope)
        assert len(before) == 4
        newest = {"msg-3@conformance", "msg-4@conformance"}
        gone = {
            item.provider_id
            for item in harness.provider.fetch(scope, before, Detail.METADATA)
            if self._parse(item, Detail.METADATA).message_id in newest
        }
        assert len(gone) == 2
        for message_id in sorted(newest):
            harness.delete(harness.inbox(), message_id)
        try:
            upserted, deleted, _ = self._drain(harness.provider, scope, cursor)
        except CursorExpired:
            assert self.changes_may_need_rescan, "changes() gave up on a plain deletion"
            return
        assert gone <= set(deleted), f"expunges of the newest messages not reported: {gone}"
        assert not gone & set(upserted)

    def test_an_empty_listing_is_not_trusted(self, harness: MailHarness) -> None:
        """A provider that suddenly lists no folders at all (a failed or
        unauthenticated listing) must not make the engine sweep the store."""
        store, engine, channel = _mail_sync(harness, 3)
        report = engine.run(channel, _NoFolders(harness.provider))
        assert report.errors, "an empty folder listing was taken for an empty mailbox"
        assert "SweepRefused" in report.errors[0]
        state = store.channel_state(channel.id)
        assert state is not None
        assert "SweepRefused" in state.last_error
        timeline = store.timeline(Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner"))
        assert len(timeline.items) == 3

    def test_sync_end_to_end(self, harness: MailHarness) -> None:
        store = MemoryStore()
        directory = InMemoryDirectory()
        directory.add_company("co-client", "Client", ["client.example"])
        directory.add_person("p-ann", "Ann Client", ["ann@client.example"], company_id="co-client")
        channel = Channel(
            "conformance",
            "u-owner",
            ChannelKind.MAIL,
            "test",
            ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
        )
        self._messages(harness, 4)
        engine = SyncEngine(store, directory, batch_size=3)
        report = engine.run(channel, harness.provider)
        assert report.errors == []
        assert report.imported == 4
        timeline = store.timeline(Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner"))
        assert len(timeline.items) == 4
        harness.delete(harness.inbox(), "msg-2@conformance")
        self._messages(harness, 1, start=60)
        again = engine.run(channel, harness.provider)
        assert again.errors == []
        timeline = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"))
        subjects = sorted(t.subject or "" for t in timeline.items)
        assert subjects == ["Proposal 1", "Proposal 3", "Proposal 4", "Proposal 60"]

    @staticmethod
    def _parse(item: FetchedMessage, detail: Detail) -> Message:
        return parse_fetched(item, detail)

    @staticmethod
    def _drain(
        provider: MailProvider, scope: Scope, cursor: str
    ) -> tuple[list[str], list[str], str]:
        upserted: list[str] = []
        deleted: list[str] = []
        for _ in range(1000):
            changes = provider.changes(scope, cursor)
            upserted.extend(changes.upserted)
            deleted.extend(changes.deleted)
            cursor = changes.cursor
            if changes.complete:
                return upserted, deleted, cursor
        raise AssertionError("changes never completed")


class CalendarProviderConformance:
    """The contract of a ``CalendarProvider``; subclass and provide ``harness``.

    ``changes_may_need_rescan``: as for ``MailProviderConformance``.
    """

    changes_may_need_rescan = False

    @pytest.fixture
    def harness(self) -> Iterator[CalendarHarness]:
        raise NotImplementedError("provide a harness fixture")

    def _put(self, harness: CalendarHarness, n: int) -> None:
        harness.put_event(
            harness.calendar_id(),
            f"evt-{n}@conformance",
            f"Meeting {n}",
            BASE + timedelta(days=n),
            (OWNER, "ann@client.example"),
        )

    def test_listing_and_fetch(self, harness: CalendarHarness) -> None:
        for n in range(1, 4):
            self._put(harness, n)
        scope = _scope_for(harness.provider, harness.calendar_id())
        ids = _all_ids(harness.provider, scope)
        assert len(ids) == len(set(ids)) == 3
        items = list(harness.provider.fetch(scope, ids))
        uids = sorted(e.uid for item in items for e in item.events)
        assert uids == [f"evt-{n}@conformance" for n in range(1, 4)]
        titles = sorted(e.title for item in items for e in item.events)
        assert titles == ["Meeting 1", "Meeting 2", "Meeting 3"]

    def test_changes_and_quiet_pass(self, harness: CalendarHarness) -> None:
        self._put(harness, 1)
        scope = _scope_for(harness.provider, harness.calendar_id())
        cursor = harness.provider.snapshot(scope)
        changes = harness.provider.changes(scope, cursor)
        assert not changes.upserted
        assert not changes.deleted
        before = set(_all_ids(harness.provider, scope))
        self._put(harness, 2)
        try:
            changes = harness.provider.changes(scope, changes.cursor)
        except CursorExpired:
            assert self.changes_may_need_rescan, "changes() gave up on a plain addition"
            assert len(set(_all_ids(harness.provider, scope)) - before) == 1
            changes = ChangeSet((), (), harness.provider.snapshot(scope))
        else:
            assert len(changes.upserted) == 1
        harness.delete_event(harness.calendar_id(), "evt-1@conformance")
        try:
            changes = harness.provider.changes(scope, changes.cursor)
        except CursorExpired:
            assert self.changes_may_need_rescan, "changes() gave up on a plain deletion"
            assert len(_all_ids(harness.provider, scope)) == 1
        else:
            assert len(changes.deleted) == 1

    def test_sync_end_to_end(self, harness: CalendarHarness) -> None:
        store = MemoryStore()
        directory = InMemoryDirectory()
        directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
        channel = Channel(
            "conformance-cal",
            "u-owner",
            ChannelKind.CALENDAR,
            "test",
            ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
        )
        for n in range(1, 4):
            self._put(harness, n)
        engine = SyncEngine(store, directory)
        report = engine.run(channel, harness.provider)
        assert report.errors == []
        window = Window(BASE, BASE + timedelta(days=30))
        target = Target(TargetKind.PERSON, "p-ann")
        assert len(store.events(target, Viewer("u-owner"), window).items) == 3
        harness.delete_event(harness.calendar_id(), "evt-2@conformance")
        assert engine.run(channel, harness.provider).errors == []
        titles = [e.title for e in store.events(target, Viewer("u-owner"), window).items]
        assert titles == ["Meeting 1", "Meeting 3"]

    def test_an_empty_listing_is_not_trusted(self, harness: CalendarHarness) -> None:
        """A provider that suddenly lists no calendars at all (Cyrus answers an
        anonymous request with an empty listing, not a 401) must not make the
        engine sweep the store."""
        store = MemoryStore()
        directory = InMemoryDirectory()
        directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
        channel = Channel(
            "conformance-cal",
            "u-owner",
            ChannelKind.CALENDAR,
            "test",
            ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
        )
        for n in range(1, 4):
            self._put(harness, n)
        engine = SyncEngine(store, directory)
        assert engine.run(channel, harness.provider).errors == []
        report = engine.run(channel, _NoCalendars(harness.provider))
        assert report.errors, "an empty calendar listing was taken for an empty account"
        assert "SweepRefused" in report.errors[0]
        window = Window(BASE, BASE + timedelta(days=30))
        target = Target(TargetKind.PERSON, "p-ann")
        assert len(store.events(target, Viewer("u-owner"), window).items) == 3
