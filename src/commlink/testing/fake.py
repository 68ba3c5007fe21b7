"""Scripted in-memory providers with fault injection.

``FakeMailbox`` is a mutable mailbox (folders of raw messages plus a change
log); ``FakeMailProvider`` serves it through the ``MailProvider`` port the
way an IMAP-like server would: one scope per folder, ids newest-first,
changes since a sequence number, cursors that can be expired. Faults are
injected per method: ``provider.faults.fail("fetch", TransientError())``.
Every call is recorded in ``provider.calls``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

import attrs

from ..errors import CursorExpired, NotFound
from ..model import Detail, Event, Folder, FolderKind
from ..ports import ChangeSet, FetchedEvent, FetchedMessage, IdPage, Scope

__all__ = ["FakeCalendar", "FakeCalendarProvider", "FakeMailProvider", "FakeMailbox", "Faults"]


@attrs.define
class Faults:
    """Exceptions to raise on upcoming calls, per method name.

    ``fail(method, exc, times=1, after=0)`` raises ``exc`` on ``times``
    calls of ``method`` once ``after`` calls have passed; ``hook`` (if set)
    is called with the method name on every call and may raise itself.
    """

    plan: dict[str, list[tuple[int, BaseException]]] = attrs.field(factory=dict)
    counts: dict[str, int] = attrs.field(factory=dict)
    hook: Callable[[str], None] | None = None

    def fail(self, method: str, exc: BaseException, *, times: int = 1, after: int = 0) -> None:
        start = self.counts.get(method, 0) + after
        self.plan.setdefault(method, []).extend((start + i, exc) for i in range(times))

    def clear(self) -> None:
        self.plan.clear()
        self.hook = None

    def check(self, method: str) -> None:
        n = self.counts.get(method, 0)
        self.counts[method] = n + 1
        if self.hook is not None:
            self.hook(method)
        pending = self.plan.get(method)
        if pending:
            for i, (at, exc) in enumerate(pending):
                if at == n:
                    del pending[i]
                    raise exc


@attrs.define
class FakeMailbox:
    """A mutable mailbox: folders of raw messages and a change log."""

    folders: dict[str, Folder] = attrs.field(factory=dict)
    items: dict[str, dict[str, bytes]] = attrs.field(factory=dict)
    log: list[tuple[int, str, str, str]] = attrs.field(factory=list)  # seq, op, folder, id
    seq: int = 0
    epoch: int = 0
    _ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))

    @classmethod
    def standard(cls) -> FakeMailbox:
        box = cls()
        for folder in (
            Folder("INBOX", "Inbox", FolderKind.INBOX),
            Folder("Sent", "Sent", FolderKind.SENT),
            Folder("Archive", "Archive", FolderKind.ARCHIVE),
            Folder("Spam", "Spam", FolderKind.SPAM),
        ):
            box.add_folder(folder)
        return box

    def add_folder(self, folder: Folder) -> None:
        self.folders[folder.id] = folder
        self.items.setdefault(folder.id, {})

    def remove_folder(self, folder_id: str) -> None:
        for item_id in list(self.items.get(folder_id, {})):
            self.delete(folder_id, item_id)
        self.folders.pop(folder_id, None)
        self.items.pop(folder_id, None)

    def add(self, folder_id: str, raw: bytes) -> str:
        item_id = f"{next(self._ids):08d}"
        self.items[folder_id][item_id] = raw
        self._record("upsert", folder_id, item_id)
        return item_id

    def delete(self, folder_id: str, item_id: str) -> None:
        if self.items.get(folder_id, {}).pop(item_id, None) is not None:
            self._record("delete", folder_id, item_id)

    def move(self, item_id: str, source: str, target: str) -> str:
        """Move like IMAP does: a new id in the target folder."""
        raw = self.items[source][item_id]
        self.delete(source, item_id)
        return self.add(target, raw)

    def touch(self, folder_id: str, item_id: str) -> None:
        """A flag change: the item shows up as changed, content unchanged."""
        if item_id in self.items.get(folder_id, {}):
            self._record("upsert", folder_id, item_id)

    def expire_cursors(self) -> None:
        """Every cursor taken so far becomes invalid."""
        self.epoch += 1

    def _record(self, op: str, folder_id: str, item_id: str) -> None:
        self.seq += 1
        self.log.append((self.seq, op, folder_id, item_id))


class _Paging:
    """Shared listing and change-log logic of the fake providers."""

    box: FakeMailbox
    faults: Faults
    calls: list[str]
    page_size: int
    changes_page: int

    def _call(self, method: str) -> None:
        self.calls.append(method)
        self.faults.check(method)

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        self._call("scopes")
        return [Scope(f.id, f) for f in folders if f.id in self.box.folders]

    def snapshot(self, scope: Scope) -> str:
        self._call("snapshot")
        return f"{self.box.epoch}:{self.box.seq}"

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        self._call("list_page")
        if scope.id not in self.box.items:
            raise NotFound(f"folder {scope.id!r} does not exist")
        ids = sorted(self.box.items[scope.id], reverse=True)
        start = int(page or 0)
        chunk = ids[start : start + self.page_size]
        following = start + self.page_size
        return IdPage(tuple(chunk), str(following) if following < len(ids) else None)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        self._call("changes")
        epoch, _, position = cursor.partition(":")
        if int(epoch) != self.box.epoch or scope.id not in self.box.items:
            raise CursorExpired(f"cursor {cursor} of {scope.id} is no longer valid")
        since = int(position)
        entries = [e for e in self.box.log if e[0] > since and e[2] == scope.id]
        entries = entries[: self.changes_page]
        complete = len(entries) < self.changes_page
        upto = entries[-1][0] if entries and not complete else self.box.seq
        state: dict[str, str] = {}
        for _, op, _, item_id in entries:
            state[item_id] = op
        present = self.box.items[scope.id]
        upserted = tuple(i for i, op in state.items() if op == "upsert" and i in present)
        deleted = tuple(i for i, op in state.items() if op == "delete" or i not in present)
        return ChangeSet(upserted, deleted, f"{self.box.epoch}:{upto}", complete)

    def close(self) -> None:
        self.calls.append("close")


@attrs.define
class FakeMailProvider(_Paging):
    """Serves a ``FakeMailbox`` through the ``MailProvider`` port."""

    box: FakeMailbox = attrs.field(factory=FakeMailbox.standard)
    faults: Faults = attrs.field(factory=Faults)
    calls: list[str] = attrs.field(factory=list)
    page_size: int = 500
    changes_page: int = 1000

    def folders(self) -> Sequence[Folder]:
        self._call("folders")
        return list(self.box.folders.values())

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        self._call("fetch")
        present = self.box.items.get(scope.id, {})
        for item_id in ids:
            raw = present.get(item_id)
            if raw is None:
                yield FetchedMessage(item_id, error="not found")
                continue
            if detail is Detail.METADATA:
                raw = _headers_only(raw)
            yield FetchedMessage(item_id, raw=raw, folders=(scope.id,))

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        return None


@attrs.define
class FakeCalendar:
    """A mutable set of calendars; each item is one calendar object (events)."""

    box: FakeMailbox = attrs.field(factory=FakeMailbox)
    objects: dict[str, tuple[Event, ...]] = attrs.field(factory=dict)

    def add_calendar(self, calendar_id: str, name: str = "") -> None:
        self.box.add_folder(Folder(calendar_id, name or calendar_id, FolderKind.CALENDAR))

    def put(self, calendar_id: str, events: tuple[Event, ...], item_id: str | None = None) -> str:
        """Add or replace a calendar object; returns its id."""
        if item_id is None:
            item_id = self.box.add(calendar_id, b"")
        else:
            self.box.items[calendar_id][item_id] = b""
            self.box.touch(calendar_id, item_id)
        self.objects[item_id] = tuple(attrs.evolve(e, provider_id=item_id) for e in events)
        return item_id

    def delete(self, calendar_id: str, item_id: str) -> None:
        self.box.delete(calendar_id, item_id)
        self.objects.pop(item_id, None)


@attrs.define
class FakeCalendarProvider(_Paging):
    """Serves a ``FakeCalendar`` through the ``CalendarProvider`` port."""

    calendar: FakeCalendar = attrs.field(factory=FakeCalendar)
    faults: Faults = attrs.field(factory=Faults)
    calls: list[str] = attrs.field(factory=list)
    page_size: int = 250
    changes_page: int = 1000

    @property
    def box(self) -> FakeMailbox:  # type: ignore[override]
        return self.calendar.box

    def calendars(self) -> Sequence[Folder]:
        self._call("calendars")
        return list(self.box.folders.values())

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        self._call("fetch")
        present = self.box.items.get(scope.id, {})
        for item_id in ids:
            if item_id not in present:
                yield FetchedEvent(item_id, error="not found")
            else:
                yield FetchedEvent(item_id, self.calendar.objects.get(item_id, ()))


def _headers_only(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = raw.partition(sep)
        if found:
            return head + sep
    return raw
