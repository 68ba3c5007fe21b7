"""Outlook mail through Microsoft Graph v1.0 (``/users/{id}/mailFolders``).

Each selected mail folder is a scope. The snapshot reads the folder's
``messages/delta`` round to its ``@odata.deltaLink`` (the cursor); the full
listing is a second round ordered by ``receivedDateTime`` (newest first),
paged by its next links, so only one page is ever held in memory.
Incremental passes follow the delta link a page at a time: ``@removed``
entries are deletions (a message moved away counts as removed from its old
folder and new in the other; with immutable ids it keeps its id). An expired delta link raises
``CursorExpired``. Messages are fetched in JSON batches of 20: the MIME
content (``$value``) for full detail, or only the header properties for
metadata detail (read by the delta round already, so no request at all).

Owner aliases: ``aliases()`` lists the mailbox's SMTP proxy addresses.
Push: see ``commlink.providers.microsoft.graph.notify``; ``watch()`` returns ``None``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import attrs

from ....errors import CursorExpired, NotFound, ProviderError
from ....mime.parse import parse_message
from ....model import Detail, Folder, FolderKind
from ....ports import ChangeSet, FetchedMessage, IdPage, Scope
from .client import BatchItem, GraphClient, GraphReply
from .headers import METADATA_PROPERTIES, headers_from_properties, parse_graph_time

__all__ = ["WELL_KNOWN_FOLDERS", "GraphMailProvider", "truncation", "user_path"]

log = logging.getLogger("commlink.providers.microsoft.graph")

JSON = Mapping[str, Any]

#: Well-known folder names and what they are for.
WELL_KNOWN_FOLDERS = {
    "inbox": FolderKind.INBOX,
    "sentitems": FolderKind.SENT,
    "drafts": FolderKind.DRAFTS,
    "outbox": FolderKind.DRAFTS,  # unsent mail, never imported
    "deleteditems": FolderKind.TRASH,
    "junkemail": FolderKind.SPAM,
    "archive": FolderKind.ARCHIVE,
    "clutter": FolderKind.CATEGORY,
}
#: Well-known folders that hold no mail of the owner's (left out with their children).
_NOT_MAIL = ("conversationhistory", "syncissues")
#: What every listing needs: the order (date) and the thread hint.
_BASE_PROPERTIES = ("receivedDateTime", "conversationId")
#: What a metadata-only message is built from.
_HEADER_PROPERTIES = (*_BASE_PROPERTIES, "internetMessageId", *METADATA_PROPERTIES)
_FOLDER_PROPERTIES = "id,displayName,parentFolderId,childFolderCount"
_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)
_BOUNDARY = re.compile(rb"boundary=(\"[^\"\r\n]+\"|[^;\s]+)", re.IGNORECASE)


def user_path(user: str) -> str:
    """``/me`` or ``/users/{id}`` (an id or user principal name)."""
    return "/me" if user == "me" else f"/users/{quote(user, safe='@')}"


class GraphMailProvider:
    """A mailbox through Graph; ``client`` carries the tokens and retries.

    ``user`` is ``"me"`` (delegated) or a user id / principal name (app-only).
    ``delta_detail`` is the detail the channel fetches at: with
    ``Detail.METADATA`` the delta rounds read the header properties too, so
    a metadata fetch sends no request. ``page_size`` is both the delta page
    size (``odata.maxpagesize``) and the listing page size.
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        user: str = "me",
        delta_detail: Detail = Detail.METADATA,
        page_size: int = 500,
        include_hidden: bool = False,
    ) -> None:
        self.client = client
        self.user = user
        self.page_size = max(1, page_size)
        self.include_hidden = include_hidden
        properties = _HEADER_PROPERTIES if delta_detail is Detail.METADATA else _BASE_PROPERTIES
        self._delta_params = {
            "$select": ",".join(properties),
            "$orderby": "receivedDateTime desc",
        }
        self._root = user_path(user)
        self._well_known: dict[str, FolderKind] | None = None
        self._skipped: set[str] = set()
        self._items: dict[str, dict[str, JSON]] = {}

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (a batch counts once)."""
        return self.client.requests_sent

    @property
    def _prefer(self) -> tuple[str, ...]:
        return (f"odata.maxpagesize={self.page_size}",)

    # -- MailProvider ---------------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """Every mail folder, child folders included (hidden ones only with
        ``include_hidden``), with well-known folders mapped to their kind."""
        kinds = self._known_folders()
        params = {"$select": _FOLDER_PROPERTIES, "$top": "250"}
        if self.include_hidden:
            params["includeHiddenFolders"] = "true"
        found: list[Folder] = []
        level = [
            item
            for page in self.client.pages(f"{self._root}/mailFolders", params)
            for item in page.get("value", [])
        ]
        names: dict[str, str] = {}
        while level:
            parents: list[JSON] = []
            for item in level:
                folder_id = str(item["id"])
                if folder_id in self._skipped:
                    continue  # with its children
                kind = kinds.get(folder_id, FolderKind.CUSTOM)
                parent = str(item.get("parentFolderId") or "") or None
                name = str(item.get("displayName") or folder_id)
                if parent in names:
                    name = f"{names[parent]}/{name}"
                names[folder_id] = name
                found.append(Folder(folder_id, name, kind, parent if parent in names else None))
                if int(item.get("childFolderCount") or 0) > 0:
                    parents.append(item)
            level = self._children(parents, params)
        return found

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """One scope per selected mail folder."""
        return [Scope(f.id, f) for f in folders if f.kind is not FolderKind.CALENDAR]

    def snapshot(self, scope: Scope) -> str:
        """Reads the folder's delta round to its ``@odata.deltaLink``, the
        cursor (the messages it returns are not kept: the listing reads them)."""
        link = ""
        for page in self.client.pages(self._delta_path(scope), self._delta_params, self._prefer):
            link = str(page.get("@odata.deltaLink") or link)
        if not link:
            raise ProviderError(f"the delta round of {scope.id} ended without a deltaLink")
        return link

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Ids newest first: a delta round ordered by ``receivedDateTime``,
        read a page at a time; ``page`` is its ``@odata.nextLink``. A next link
        that expired starts the listing again (what is stored is skipped)."""
        found: JSON | None = None
        if page:
            try:
                found = self.client.get(page, prefer=self._prefer)
            except CursorExpired:
                log.info("listing of %s expired; listing again", scope.id)
        if found is None:
            found = self.client.get(self._delta_path(scope), self._delta_params, self._prefer)
        items = {str(item["id"]): item for item in found.get("value", []) if "@removed" not in item}
        self._items[scope.id] = items  # only the page in hand: memory stays flat
        next_link = found.get("@odata.nextLink")
        return IdPage(tuple(items), str(next_link) if next_link else None)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """One page of changes since a delta (or next) link."""
        if not cursor.startswith(("http://", "https://")):
            raise CursorExpired(f"not a delta link: {cursor[:80]!r}")
        found = self.client.get(cursor, prefer=self._prefer)
        items: dict[str, JSON] = {}
        upserted: dict[str, None] = {}
        deleted: dict[str, None] = {}
        for item in found.get("value", []):
            item_id = str(item.get("id"))
            if "@removed" in item:
                items.pop(item_id, None)
                upserted.pop(item_id, None)
                deleted[item_id] = None
            else:
                items[item_id] = item
                deleted.pop(item_id, None)
                upserted[item_id] = None
        self._items[scope.id] = items
        next_link = found.get("@odata.nextLink")
        link = next_link or found.get("@odata.deltaLink")
        if not link:
            raise ProviderError("a delta page without nextLink or deltaLink")
        return ChangeSet(tuple(upserted), tuple(deleted), str(link), complete=not next_link)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """MIME (full) or header properties (metadata) in batches of 20; a
        missing message or a failed item comes back with ``error`` set."""
        items = self._items.get(scope.id, {})
        wanted = list(dict.fromkeys(ids))
        if detail is Detail.METADATA:
            ready = [i for i in wanted if "toRecipients" in items.get(i, {})]
            for item_id in ready:
                yield self._metadata(scope, item_id, items[item_id])
            done = set(ready)
            todo = [i for i in wanted if i not in done]
            select = ",".join(_HEADER_PROPERTIES)
            suffix = f"?$select={select}"
        else:
            todo = wanted
            suffix = "/$value"
        calls = [BatchItem(i, f"{self._root}/messages/{quote(i, safe='')}{suffix}") for i in todo]
        for key, result in self.client.batch(calls):
            item_id = str(key)
            if isinstance(result, NotFound):
                yield FetchedMessage(item_id, error="not found")
            elif isinstance(result, ProviderError):
                yield FetchedMessage(item_id, error=f"could not fetch: {result}"[:500])
            elif detail is Detail.METADATA:
                yield self._metadata(scope, item_id, result.json)
            else:
                yield self._mime(scope, item_id, result, items.get(item_id, {}))

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """Change notifications are wired by the host (``graph_notify``)."""
        return None

    def close(self) -> None:
        self.client.close()

    # -- Graph extras ---------------------------------------------------------

    def aliases(self) -> tuple[str, ...]:
        """The mailbox's primary address and SMTP proxy addresses
        (for ``ChannelSettings.aliases``)."""
        found = self.client.get(self._root, {"$select": "mail,proxyAddresses"})
        addresses: dict[str, None] = {}
        if found.get("mail"):
            addresses[str(found["mail"])] = None
        for proxy in found.get("proxyAddresses", []) or []:
            scheme, _, address = str(proxy).partition(":")
            if scheme.lower() == "smtp" and "@" in address:
                addresses[address] = None
        return tuple(addresses)

    # -- helpers --------------------------------------------------------------

    def _known_folders(self) -> dict[str, FolderKind]:
        """Well-known folder ids, learned once with one batch of
        ``/mailFolders/{name}`` requests."""
        if self._well_known is None:
            names = [*WELL_KNOWN_FOLDERS, *_NOT_MAIL]
            calls = [BatchItem(n, f"{self._root}/mailFolders/{n}?$select=id") for n in names]
            kinds: dict[str, FolderKind] = {}
            skipped: set[str] = set()
            for key, result in self.client.batch(calls):
                if isinstance(result, NotFound):
                    continue  # e.g. no archive folder yet
                if isinstance(result, ProviderError):
                    raise result
                folder_id = str(result.json.get("id") or "")
                if not folder_id:
                    continue
                if key in WELL_KNOWN_FOLDERS:
                    kinds[folder_id] = WELL_KNOWN_FOLDERS[str(key)]
                else:
                    skipped.add(folder_id)
            self._well_known = kinds
            self._skipped = skipped
        return self._well_known

    def _delta_path(self, scope: Scope) -> str:
        return f"{self._root}/mailFolders/{quote(scope.id, safe='')}/messages/delta"

    def _children(self, parents: Sequence[JSON], params: Mapping[str, str]) -> list[JSON]:
        """The child folders of ``parents``, one batch per level."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        calls = [
            BatchItem(
                str(p["id"]),
                f"{self._root}/mailFolders/{quote(str(p['id']), safe='')}/childFolders?{query}",
            )
            for p in parents
        ]
        found: list[JSON] = []
        for _, result in self.client.batch(calls):
            if isinstance(result, NotFound):
                continue  # deleted while listing
            if isinstance(result, ProviderError):
                raise result
            page = result.json
            found.extend(page.get("value", []))
            link = page.get("@odata.nextLink")
            while link:
                page = self.client.get(str(link))
                found.extend(page.get("value", []))
                link = page.get("@odata.nextLink")
        return found

    def _metadata(self, scope: Scope, item_id: str, item: JSON) -> FetchedMessage:
        return FetchedMessage(
            item_id,
            raw=headers_from_properties(item),
            folders=_folders(scope, item),
            thread_hint=str(item.get("conversationId") or "") or None,
            date=parse_graph_time(item.get("receivedDateTime")),
        )

    def _mime(self, scope: Scope, item_id: str, reply: GraphReply, item: JSON) -> FetchedMessage:
        body = reply.body
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        if not isinstance(body, bytes) or not body.strip():
            return FetchedMessage(item_id, error="Graph returned no MIME content")
        folders = _folders(scope, item)
        thread = str(item.get("conversationId") or "") or None
        date = parse_graph_time(item.get("receivedDateTime"))
        problem = truncation(body)
        if problem is None:
            return FetchedMessage(item_id, raw=body, folders=folders, thread_hint=thread, date=date)
        # parsed here so the repair is on record with the message
        message = parse_message(
            body, provider_id=item_id, fallback_date=date, folders=folders, thread_hint=thread
        )
        message = attrs.evolve(message, warnings=(*message.warnings, problem))
        return FetchedMessage(item_id, message=message, folders=folders, thread_hint=thread)


def truncation(raw: bytes) -> str | None:
    """Why MIME content looks cut short (no header/body separator, or a
    multipart without its closing boundary), else ``None``."""
    head, separator, _ = raw.partition(b"\r\n\r\n")
    if not separator:
        head, separator, _ = raw.partition(b"\n\n")
    if not separator:
        return "mime-truncated:no-body"
    found = _BOUNDARY.search(head)
    if found is None or not _MULTIPART.search(head):
        return None
    boundary = found.group(1).strip(b'"')
    if b"--" + boundary + b"--" not in raw:
        return "mime-truncated:no-closing-boundary"
    return None


def _folders(scope: Scope, item: JSON) -> tuple[str, ...]:
    # the scope's folder: the listing says the message is there
    return (scope.id,)
