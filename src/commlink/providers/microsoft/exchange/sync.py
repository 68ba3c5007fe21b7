"""Folder listing and ``SyncFolderItems`` shared by the Exchange providers.

A scope is one folder; its cursor is an EWS sync state. ``snapshot`` runs
``SyncFolderItems`` from an empty state up to now (ids only, 512 per
request, nothing kept). ``list_page`` then lists the folder newest first
with ``FindItem`` (ids and received dates), one page in memory at a time:
a page token holds the received date of the page's last item (and the ids
of that second already listed), so the next page starts below it and a
deletion or arrival between pages neither skips nor repeats anything.
``changes`` sends one ``SyncFolderItems`` per call and reports
``complete=False`` while the server has more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ....model import Folder, FolderKind
from ....ports import ChangeSet, IdPage, Scope
from .account import ExchangeConnection
from .errors import Caller

__all__ = ["FolderSync", "MAX_SYNC_CHANGES", "utc"]

#: The most changes EWS returns per SyncFolderItems request.
MAX_SYNC_CHANGES = 512
_FOLDER_FIELDS = ("name", "folder_class", "parent_folder_id")
#: the item property enumerated with the ids, to list them newest first
_ORDER_FIELD = "datetime_received"


def utc(value: Any) -> datetime | None:
    """An exchangelib date-time as a plain aware UTC ``datetime``."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)


_STAMP = "%Y-%m-%dT%H:%M:%SZ"
#: boundary ids a page token carries before it counts them instead
_SEEN_LIMIT = 50


def _ews_stamp(stamp: str) -> Any:
    from exchangelib import UTC, EWSDateTime

    return EWSDateTime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


@attrs.frozen
class _Token:
    """Where a listing resumes: items received at or before ``stamp``, less
    the ``skip`` first and the ``seen`` ones of that very second (listed
    already). Deletions and arrivals between pages move nothing."""

    stamp: str = ""
    skip: int = 0
    seen: frozenset[str] = frozenset()

    def after(self, page: Sequence[tuple[str, str]]) -> _Token:
        last = page[-1][1]
        at_last = [i for i, when in page if when == last]
        skip, seen = (self.skip, set(self.seen)) if last == self.stamp else (0, set())
        seen.update(at_last)
        if len(seen) > _SEEN_LIMIT:
            return _Token(last, skip + len(seen))
        return _Token(last, skip, frozenset(seen))

    def encode(self) -> str:
        return json.dumps({"t": self.stamp, "skip": self.skip, "seen": sorted(self.seen)})

    @classmethod
    def decode(cls, text: str) -> _Token:
        try:
            data = json.loads(text)
            return cls(str(data["t"]), int(data.get("skip", 0)), frozenset(data.get("seen", ())))
        except (ValueError, KeyError, TypeError):
            return cls()  # an unreadable token lists from the top again


class FolderSync:
    """Folders, snapshots, listings and changes for one mailbox."""

    def __init__(self, connection: ExchangeConnection, caller: Caller, page_size: int) -> None:
        self.connection = connection
        self.call = caller
        self.page_size = max(1, page_size)

    @property
    def account(self) -> Any:
        return self.connection.account

    # -- folders --------------------------------------------------------------

    def _folder_objects(self, names: Sequence[str]) -> list[Any]:
        from exchangelib.folders import Folder as EwsFolder
        from exchangelib.folders import Root
        from exchangelib.properties import DistinguishedFolderId, Mailbox

        root = Root(account=self.account)
        mailbox = Mailbox(email_address=self.account.primary_smtp_address)
        return [
            EwsFolder(root=root, _distinguished_id=DistinguishedFolderId(id=name, mailbox=mailbox))
            for name in names
        ]

    def _fields(self) -> list[Any]:
        from exchangelib.fields import FieldPath
        from exchangelib.folders import Folder as EwsFolder

        return [FieldPath(field=EwsFolder.get_field_by_fieldname(n)) for n in _FOLDER_FIELDS]

    def distinguished(self, names: Sequence[str]) -> dict[str, Any]:
        """The distinguished folders that exist, by name (one GetFolder)."""
        from exchangelib.services import GetFolder

        def run() -> list[Any]:
            service = GetFolder(account=self.account)
            return list(
                service.call(
                    folders=self._folder_objects(names),
                    additional_fields=self._fields(),
                    shape="IdOnly",
                )
            )

        found = self.call("GetFolder", run)
        return {
            name: folder
            for name, folder in zip(names, found, strict=False)
            if not isinstance(folder, BaseException)
        }

    def descendants(self, parent: Any) -> list[Any]:
        """Every folder below ``parent`` (FindFolder, deep traversal)."""
        from exchangelib.services import FindFolder

        def run() -> list[Any]:
            service = FindFolder(account=self.account, page_size=1000)
            return list(
                service.call(
                    folders=[parent],
                    additional_fields=self._fields(),
                    restriction=None,
                    shape="IdOnly",
                    depth="Deep",
                    max_items=None,
                    offset=0,
                )
            )

        return [f for f in self.call("FindFolder", run) if not isinstance(f, BaseException)]

    @staticmethod
    def as_folder(folder: Any, kind: FolderKind, root_id: str | None = None) -> Folder:
        parent = folder.parent_folder_id.id if folder.parent_folder_id is not None else None
        if parent == root_id:
            parent = None
        return Folder(str(folder.id), str(folder.name or folder.id), kind, parent)

    # -- listing --------------------------------------------------------------

    def _sync_page(
        self, scope: Scope, state: str | None
    ) -> tuple[list[tuple[str, Any]], str, bool]:
        from exchangelib.properties import FolderId
        from exchangelib.services import SyncFolderItems

        def run() -> tuple[list[tuple[str, Any]], str, bool]:
            service = SyncFolderItems(account=self.account)
            changes = list(
                service.call(
                    folder=FolderId(id=scope.id),
                    shape="IdOnly",
                    additional_fields=[],
                    sync_state=state or None,
                    ignore=None,
                    max_changes_returned=MAX_SYNC_CHANGES,
                    sync_scope=None,
                )
            )
            return changes, str(service.sync_state), bool(service.includes_last_item_in_range)

        return self.call("SyncFolderItems", run)

    def snapshot(self, scope: Scope) -> str:
        """Run the folder's sync state up to now (ids are not kept)."""
        state: str | None = None
        while True:
            _, state, last = self._sync_page(scope, state)
            if last:
                return state

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """One ``FindItem`` page, newest first, below the previous page's date."""
        token = _Token.decode(page) if page else _Token()
        found = self._find_page(scope, token, self.page_size + len(token.seen))
        fresh = [(i, when) for i, when in found if i not in token.seen][: self.page_size]
        if len(found) < self.page_size + len(token.seen) or not fresh:
            return IdPage(tuple(i for i, _ in fresh), None)
        return IdPage(tuple(i for i, _ in fresh), token.after(fresh).encode())

    def _find_page(self, scope: Scope, token: _Token, size: int) -> list[tuple[str, str]]:
        """``(id, received stamp)`` of up to ``size`` items at or before the token's date."""
        from exchangelib import Q
        from exchangelib.fields import FieldOrder, FieldPath
        from exchangelib.folders import Folder as EwsFolder
        from exchangelib.folders import Root
        from exchangelib.items import Item
        from exchangelib.restriction import Restriction
        from exchangelib.services import FindItem

        folder = EwsFolder(root=Root(account=self.account), id=scope.id)
        received = FieldPath(field=Item.get_field_by_fieldname(_ORDER_FIELD))
        restriction = None
        if token.stamp:
            # EWS shows whole seconds but keeps finer ones: "before the next
            # second" takes in every message of the token's second
            bound = _ews_stamp(token.stamp) + timedelta(seconds=1)
            restriction = Restriction(
                Q(datetime_received__lt=bound), folders=[folder], applies_to=Restriction.ITEMS
            )

        def run() -> list[Any]:
            service = FindItem(account=self.account, page_size=size)
            return list(
                service.call(
                    folders=[folder],
                    additional_fields=[received],
                    restriction=restriction,
                    order_fields=[FieldOrder(field_path=received, reverse=True)],
                    shape="IdOnly",
                    query_string=None,
                    depth="Shallow",
                    calendar_view=None,
                    max_items=size,
                    offset=token.skip,
                )
            )

        found = []
        for item in self.call("FindItem", run):
            if isinstance(item, BaseException):
                continue
            when = utc(getattr(item, _ORDER_FIELD, None))
            found.append((str(item.id), when.strftime(_STAMP) if when else ""))
        return found

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        changes, state, last = self._sync_page(scope, cursor)
        upserted: dict[str, None] = {}
        deleted: dict[str, None] = {}
        for kind, item in changes:
            if kind in ("create", "update"):
                upserted[str(item.id)] = None
                deleted.pop(str(item.id), None)
            elif kind == "delete":
                deleted[str(item.id)] = None
                upserted.pop(str(item.id), None)
            # read-flag changes carry nothing commlink keeps
        return ChangeSet(tuple(upserted), tuple(deleted), state, complete=last)

    # -- fetching -------------------------------------------------------------

    def get_items(
        self, ids: Sequence[str], field_names: Sequence[str], model: Any, batch: int
    ) -> Iterator[tuple[str, Any]]:
        """``(id, item or exception)`` for each id, ``batch`` ids per GetItem."""
        from exchangelib.fields import FieldPath
        from exchangelib.properties import ItemId
        from exchangelib.services import GetItem

        fields = [FieldPath(field=model.get_field_by_fieldname(n)) for n in field_names]
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]

            def run(chunk: list[str] = chunk) -> list[Any]:
                service = GetItem(account=self.account, chunk_size=len(chunk))
                return list(
                    service.call(
                        items=[ItemId(id=i) for i in chunk],
                        additional_fields=fields,
                        shape="IdOnly",
                    )
                )

            found = self.call("GetItem", run)
            yield from zip(chunk, found, strict=False)
