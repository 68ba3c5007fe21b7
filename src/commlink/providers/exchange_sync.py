"""Folder listing and ``SyncFolderItems`` shared by the Exchange providers.

A scope is one folder. Its cursor is an EWS sync state. ``snapshot``
enumerates the folder with ``SyncFolderItems`` from an empty state (ids and
received dates only, 512 per request) until the state is current; that
enumeration is also the full listing, so the listing and the cursor agree
exactly. ``list_page`` serves it newest first; a page token names the last
id served with its date, so a listing resumed in another process (which
enumerates again) neither skips nor repeats items when the folder changed
meanwhile. ``changes`` sends one ``SyncFolderItems`` per call and reports
``complete=False`` while the server has more.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ..model import Folder, FolderKind
from ..ports import ChangeSet, IdPage, Scope
from .exchange_account import ExchangeConnection
from .exchange_errors import Caller

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


@attrs.define
class _Listing:
    """A folder's enumeration: sort keys ``(-received, id)`` in order."""

    keys: list[tuple[float, str]]
    fresh: bool


class FolderSync:
    """Folders, snapshots, listings and changes for one mailbox."""

    def __init__(self, connection: ExchangeConnection, caller: Caller, page_size: int) -> None:
        self.connection = connection
        self.call = caller
        self.page_size = max(1, page_size)
        self._listings: dict[str, _Listing] = {}

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
        self, scope: Scope, state: str | None, max_changes: int, with_order: bool
    ) -> tuple[list[tuple[str, Any]], str, bool]:
        from exchangelib.fields import FieldPath
        from exchangelib.items import Item
        from exchangelib.properties import FolderId
        from exchangelib.services import SyncFolderItems

        fields = [FieldPath(field=Item.get_field_by_fieldname(_ORDER_FIELD))] if with_order else []

        def run() -> tuple[list[tuple[str, Any]], str, bool]:
            service = SyncFolderItems(account=self.account)
            changes = list(
                service.call(
                    folder=FolderId(id=scope.id),
                    shape="IdOnly",
                    additional_fields=fields,
                    sync_state=state or None,
                    ignore=None,
                    max_changes_returned=max_changes,
                    sync_scope=None,
                )
            )
            return changes, str(service.sync_state), bool(service.includes_last_item_in_range)

        return self.call("SyncFolderItems", run)

    def _enumerate(self, scope: Scope) -> tuple[_Listing, str]:
        """Every item of the folder and the sync state that follows it."""
        seen: dict[str, float] = {}
        state: str | None = None
        while True:
            changes, state, last = self._sync_page(scope, state, MAX_SYNC_CHANGES, True)
            for kind, item in changes:
                if kind == "delete":
                    seen.pop(str(item.id), None)
                elif kind in ("create", "update"):
                    when = utc(getattr(item, _ORDER_FIELD, None))
                    seen[str(item.id)] = when.timestamp() if when else 0.0
            if last:
                keys = sorted((-stamp, item_id) for item_id, stamp in seen.items())
                return _Listing(keys, fresh=True), state

    def snapshot(self, scope: Scope) -> str:
        listing, state = self._enumerate(scope)
        self._listings[scope.id] = listing
        return state

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        listing = self._listings.get(scope.id)
        if listing is None or (page is None and not listing.fresh):
            listing, _ = self._enumerate(scope)
            self._listings[scope.id] = listing
        listing.fresh = False
        start = 0
        if page is not None:
            stamp, _, item_id = page.partition("|")
            start = bisect.bisect_right(listing.keys, (float(stamp), item_id))
        chunk = listing.keys[start : start + self.page_size]
        ids = tuple(item_id for _, item_id in chunk)
        if start + len(chunk) >= len(listing.keys):
            self._listings.pop(scope.id, None)
            return IdPage(ids, None)
        last_stamp, last_id = chunk[-1]
        return IdPage(ids, f"{last_stamp!r}|{last_id}")

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        changes, state, last = self._sync_page(scope, cursor, MAX_SYNC_CHANGES, False)
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
