"""``MailProviderConformance`` and ``CalendarProviderConformance``: one suite
every provider passes.

Subclass a suite in your tests and provide a ``harness`` fixture: an object
with the provider under test and a way to change the mailbox (or calendar)
behind it. The suite checks the port's contract: listings cover each id
once, fetches return what was stored, changes report additions and
deletions, a quiet pass reports nothing, and a real sync through
``SyncEngine`` ends with the store matching the mailbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Protocol

import pytest

from ..errors import CursorExpired
from ..mime.parse import parse_message
from ..model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    Detail,
    FolderKind,
    Message,
)
from ..ports import CalendarProvider, ChangeSet, MailProvider, Scope
from ..records import Target, TargetKind, Viewer, Window
from ..stores.memory import MemoryStore
from ..sync.engine import SyncEngine
from .directory import InMemoryDirectory

__all__ = [
    "CalendarHarness",
    "CalendarProviderConformance",
    "MailHarness",
    "MailProviderConformance",
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


class MailProviderConformance:
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
        parsed = [self._parse(f.provider_id, f.raw, f.message, Detail.FULL) for f in fetched]
        assert sorted(m.message_id for m in parsed) == sorted(expected)
        assert all(m.body and "this is message" in m.body for m in parsed)

    def test_metadata_fetch_has_headers_without_body(self, harness: MailHarness) -> None:
        self._messages(harness, 2)
        scope = _scope_for(harness.provider, harness.inbox())
        ids = _all_ids(harness.provider, scope)
        for item in harness.provider.fetch(scope, ids, Detail.METADATA):
            message = self._parse(item.provider_id, item.raw, item.message, Detail.METADATA)
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
        # the vanished id is either left out or comes back with an error
        assert all(i.raw is None and i.message is None for i in items)

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
    def _parse(
        provider_id: str, raw: bytes | None, message: Message | None, detail: Detail
    ) -> Message:
        if message is not None:
            return message
        assert raw is not None
        return parse_message(raw, provider_id=provider_id, detail=detail)

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
