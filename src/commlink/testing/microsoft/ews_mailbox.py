"""The mailbox behind ``EwsServer``: folders, items and a change log.

Every change to a folder's items is appended to the folder's log with a
sequence number; a sync state names the folder, its epoch and a position
(either inside the first enumeration or in the log). Invalidating a folder
bumps its epoch so older sync states are refused.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32

import attrs

__all__ = ["CalendarEntry", "EwsMailbox", "MailItem", "Person", "StoredFolder", "SyncStateError"]

#: Folders every mailbox has: (distinguished id, name, folder class).
MAIL_FOLDERS = (
    ("inbox", "Inbox", "IPF.Note"),
    ("sentitems", "Sent Items", "IPF.Note"),
    ("drafts", "Drafts", "IPF.Note"),
    ("deleteditems", "Deleted Items", "IPF.Note"),
    ("junkemail", "Junk Email", "IPF.Note"),
    ("", "Archive", "IPF.Note"),  # Outlook's archive folder: not a distinguished one
    ("outbox", "Outbox", "IPF.Note"),
    ("syncissues", "Sync Issues", "IPF.Note"),
    ("conversationhistory", "Conversation History", "IPF.Note"),
    ("calendar", "Calendar", "IPF.Appointment"),
)


class SyncStateError(Exception):
    """A sync state that is malformed, of another folder or invalidated."""


@attrs.define
class StoredFolder:
    id: str
    name: str
    folder_class: str
    parent: str
    distinguished: str = ""
    epoch: int = 1
    log: list[tuple[int, str, str]] = attrs.field(factory=list)  # (seq, kind, item id)


@attrs.frozen
class Person:
    email: str
    name: str = ""
    response: str = "Unknown"


@attrs.define
class MailItem:
    id: str
    folder: str
    mime: bytes
    received: datetime
    number: int

    @property
    def message_id(self) -> str:
        value = _headers(self.mime).get("Message-ID", "") or ""
        return str(value).strip().strip("<>")

    def headers(self) -> list[tuple[str, str]]:
        """Every header in order, repeated ones too (as ``InternetMessageHeaders``)."""
        parsed = BytesHeaderParser(policy=compat32).parsebytes(self.mime)
        return [(k, " ".join(str(v).split())) for k, v in parsed.items()]

    @property
    def conversation_id(self) -> str:
        subject = str(_headers(self.mime).get("Subject", "") or "").strip()
        while subject.lower().startswith(("re:", "fw:", "fwd:")):
            subject = subject.split(":", 1)[1].strip()
        digest = hashlib.sha1(subject.lower().encode()).digest()
        return base64.b64encode(b"CONV" + digest).decode()


@attrs.define
class CalendarEntry:
    """A calendar item; ``recurrence`` is an EWS pattern as a dict (see
    ``EwsMailbox.put_event``)."""

    id: str
    folder: str
    uid: str
    subject: str
    start: datetime
    end: datetime
    number: int
    all_day: bool = False
    location: str = ""
    body: str = ""
    organizer: Person | None = None
    required: tuple[Person, ...] = ()
    optional: tuple[Person, ...] = ()
    cancelled: bool = False
    recurrence: dict[str, object] | None = None
    modified: tuple[tuple[str, datetime, datetime, datetime], ...] = ()  # id, start, end, original
    deleted: tuple[datetime, ...] = ()
    sequence: int = 0
    timezone: str = "UTC"  # a Windows time zone id, as EWS names them
    modified_at: datetime = attrs.field(factory=lambda: datetime.now(timezone.utc))
    broken: bool = False  # answered with an item-level error


Item = MailItem | CalendarEntry


def _headers(mime: bytes) -> dict[str, str]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(mime)
    return {k: str(v) for k, v in parsed.items()}


class EwsMailbox:
    """One user's mailbox: folders by id, items by id, a log per folder."""

    def __init__(self, email: str) -> None:
        self.email = email
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self.last_seq = 0
        #: notified on every change (streaming notifications wait on it)
        self.changed = threading.Condition(self.lock)
        self.folders: dict[str, StoredFolder] = {}
        self.items: dict[str, Item] = {}
        #: the directory entry (what ``ResolveNames`` finds): its display name
        #: and its other addresses with their routing types (``smtp:``, ``SIP:``)
        self.display_name = email.partition("@")[0]
        self.proxy_addresses: list[str] = []
        root = self._new_folder("Top of Information Store", "", "", "msgfolderroot")
        for distinguished, name, folder_class in MAIL_FOLDERS:
            self._new_folder(name, folder_class, root.id, distinguished)

    def directory_addresses(self) -> list[str]:
        """The entry's addresses as the directory holds them: the primary
        ``SMTP:`` address first, then ``proxy_addresses``."""
        with self.lock:
            return [f"SMTP:{self.email}", *self.proxy_addresses]

    # -- folders --------------------------------------------------------------

    def _new_folder(
        self, name: str, folder_class: str, parent: str, distinguished: str = ""
    ) -> StoredFolder:
        folder_id = base64.b64encode(f"F{next(self._ids):06d}:{self.email}".encode()).decode()
        folder = StoredFolder(folder_id, name, folder_class, parent, distinguished)
        self.folders[folder_id] = folder
        return folder

    def distinguished(self, name: str) -> StoredFolder | None:
        return next((f for f in self.folders.values() if f.distinguished == name), None)

    def folder_id(self, name_or_id: str) -> str:
        """A folder's id from its distinguished name, display name or id."""
        with self.lock:
            if name_or_id in self.folders:
                return name_or_id
            found = self.distinguished(name_or_id) or next(
                (f for f in self.folders.values() if f.name == name_or_id), None
            )
            if found is None:
                raise KeyError(name_or_id)
            return found.id

    def add_folder(
        self, name: str, parent: str = "msgfolderroot", folder_class: str = "IPF.Note"
    ) -> str:
        with self.lock:
            return self._new_folder(name, folder_class, self.folder_id(parent)).id

    def remove_distinguished(self, name: str) -> None:
        """Drop a distinguished folder (a server without an archive folder)."""
        with self.lock:
            folder = self.distinguished(name)
            if folder is not None:
                del self.folders[folder.id]

    def descendants(self, parent: str) -> list[StoredFolder]:
        with self.lock:
            found: list[StoredFolder] = []
            todo = [parent]
            while todo:
                current = todo.pop(0)
                children = [f for f in self.folders.values() if f.parent == current]
                found.extend(children)
                todo.extend(f.id for f in children)
            return found

    def invalidate(self, folder: str) -> None:
        """Refuse every sync state issued so far for this folder."""
        with self.lock:
            self.folders[self.folder_id(folder)].epoch += 1

    # -- items ----------------------------------------------------------------

    def _new_item_id(self, folder: str) -> tuple[str, int]:
        number = next(self._ids)
        raw = f"I{number:08d}:{folder[:12]}:{self.email}".encode()
        return base64.b64encode(raw).decode(), number

    def _log(self, folder: str, kind: str, item_id: str) -> None:
        self.last_seq = next(self._seq)
        self.folders[folder].log.append((self.last_seq, kind, item_id))
        self.changed.notify_all()

    def changes_after(self, folders: set[str], seq: int) -> list[tuple[int, str, str, str]]:
        """``(seq, kind, item id, folder id)`` logged in ``folders`` after ``seq``."""
        with self.lock:
            found = [
                (entry[0], entry[1], entry[2], folder_id)
                for folder_id in folders
                if folder_id in self.folders
                for entry in self.folders[folder_id].log
                if entry[0] > seq
            ]
            return sorted(found)

    def add_message(self, folder: str, mime: bytes, received: datetime | None = None) -> str:
        with self.lock:
            folder_id = self.folder_id(folder)
            item_id, number = self._new_item_id(folder_id)
            base = datetime(2026, 1, 1, tzinfo=timezone.utc)
            when = received or base + timedelta(seconds=number, milliseconds=250)
            self.items[item_id] = MailItem(item_id, folder_id, mime, when, number)
            self._log(folder_id, "Create", item_id)
            return item_id

    def put_event(self, folder: str, entry: CalendarEntry) -> str:
        """Store an event; an event with the same UID in the folder is updated."""
        with self.lock:
            folder_id = self.folder_id(folder)
            for current in self.items.values():
                if (
                    isinstance(current, CalendarEntry)
                    and current.folder == folder_id
                    and current.uid == entry.uid
                ):
                    updated = attrs.evolve(
                        entry, id=current.id, folder=folder_id, number=current.number
                    )
                    self.items[current.id] = updated
                    self._log(folder_id, "Update", current.id)
                    return current.id
            item_id, number = self._new_item_id(folder_id)
            self.items[item_id] = attrs.evolve(entry, id=item_id, folder=folder_id, number=number)
            self._log(folder_id, "Create", item_id)
            return item_id

    def find(self, message_id: str) -> str:
        """The item id of the message with this Message-ID (or event UID)."""
        with self.lock:
            for item in self.items.values():
                if isinstance(item, MailItem) and item.message_id == message_id:
                    return item.id
                if isinstance(item, CalendarEntry) and item.uid == message_id:
                    return item.id
        raise KeyError(message_id)

    def delete(self, item_id: str) -> None:
        with self.lock:
            item = self.items.pop(item_id)
            self._log(item.folder, "Delete", item_id)

    def touch(self, item_id: str) -> None:
        """Record an update to an item (a flag or category change)."""
        with self.lock:
            self._log(self.items[item_id].folder, "Update", item_id)

    def move(self, item_id: str, folder: str) -> str:
        """Move an item; like Exchange, it gets a new id in its new folder."""
        with self.lock:
            item = self.items.pop(item_id)
            target = self.folder_id(folder)
            self._log(item.folder, "Delete", item_id)
            new_id, number = self._new_item_id(target)
            self.items[new_id] = attrs.evolve(item, id=new_id, folder=target, number=number)
            self._log(target, "Create", new_id)
            return new_id

    def in_folder(self, folder: str) -> list[Item]:
        with self.lock:
            folder_id = self.folder_id(folder)
            return sorted(
                (i for i in self.items.values() if i.folder == folder_id), key=lambda i: i.number
            )

    # -- synchronisation ------------------------------------------------------

    def sync(
        self, folder: str, state: str, max_changes: int
    ) -> tuple[list[tuple[str, str]], str, bool]:
        """One SyncFolderItems page: ``[(change kind, item id)]``, the new
        state and whether it includes the last change."""
        with self.lock:
            stored = self.folders[folder]
            if not state:
                return self._enumerate(stored, 0, self._last_seq(stored), max_changes)
            mode, position, start = self._decode(stored, state)
            if mode == "enum":
                return self._enumerate(stored, position, start, max_changes)
            return self._replay(stored, position, max_changes)

    def _last_seq(self, folder: StoredFolder) -> int:
        return folder.log[-1][0] if folder.log else 0

    def _enumerate(
        self, folder: StoredFolder, after: int, start: int, max_changes: int
    ) -> tuple[list[tuple[str, str]], str, bool]:
        present = [i for i in self.in_folder(folder.id) if i.number > after]
        page = present[:max_changes]
        if len(present) > max_changes:
            state = self._encode(folder, "enum", page[-1].number, start)
            return [("Create", i.id) for i in page], state, False
        return [("Create", i.id) for i in page], self._encode(folder, "log", start, 0), True

    def _replay(
        self, folder: StoredFolder, after: int, max_changes: int
    ) -> tuple[list[tuple[str, str]], str, bool]:
        final: dict[str, str] = {}
        created: set[str] = set()
        last = after
        entries = [e for e in folder.log if e[0] > after]
        for seq, kind, item_id in entries:
            if item_id not in final and len(final) >= max_changes:
                return self._changes(final, created), self._encode(folder, "log", last, 0), False
            if kind == "Create":
                created.add(item_id)
                final[item_id] = "Create"
            elif kind == "Delete":
                final[item_id] = "Delete"
            elif final.get(item_id) != "Create":
                final[item_id] = "Update"
            last = seq
        return self._changes(final, created), self._encode(folder, "log", last, 0), True

    @staticmethod
    def _changes(final: dict[str, str], created: set[str]) -> list[tuple[str, str]]:
        # an item created and deleted within the range is not reported at all
        return [(k, i) for i, k in final.items() if not (k == "Delete" and i in created)]

    @staticmethod
    def _encode(folder: StoredFolder, mode: str, position: int, start: int) -> str:
        text = f"{folder.id}|{folder.epoch}|{mode}|{position}|{start}"
        return base64.b64encode(b"SS1" + text.encode()).decode()

    @staticmethod
    def _decode(folder: StoredFolder, state: str) -> tuple[str, int, int]:
        try:
            raw = base64.b64decode(state, validate=True)
            if not raw.startswith(b"SS1"):
                raise ValueError("not a sync state")
            folder_id, epoch, mode, position, start = raw[3:].decode().split("|")
            if folder_id != folder.id or int(epoch) != folder.epoch or mode not in ("enum", "log"):
                raise ValueError("stale")
            return mode, int(position), int(start)
        except ValueError as exc:
            raise SyncStateError(str(exc)) from None
