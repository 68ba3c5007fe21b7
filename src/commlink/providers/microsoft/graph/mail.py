"""Outlook mail through Microsoft Graph v1.0 (``/users/{id}/mailFolders``).

Each selected mail folder is a scope. The snapshot reads the folder's
``messages/delta`` round to its ``@odata.deltaLink`` (the cursor); the full
listing is a second round ordered by ``receivedDateTime`` (newest first),
paged by its next links, so only one page is ever held in memory.
Incremental passes follow the delta link a page at a time: ``@removed``
entries are deletions (a message moved away counts as removed from its old
folder and new in the other; with immutable ids it keeps its id). An expired delta link raises
``CursorExpired``.

A metadata fetch is JSON batches of 20 GETs of the messages' header
properties and ``internetMessageHeaders`` (Graph returns those only to a GET
that ``$select``s them, not in delta rounds). A full fetch needs each
message's size (``PidTagMessageSize``): the delta rounds of a FULL provider
``$expand`` it, else those GETs do. A message above
``Limits.max_message_bytes`` keeps its headers only; the others' MIME content
(``$value``) comes in batches within ``fetch_batch_bytes``, and a message
alone is streamed, never read past the size limit.

Owner aliases: ``aliases()`` lists the mailbox's SMTP proxy addresses
(``ports.AliasSource``; the sync engine merges them with the configured ones).
Push: a ``PushSource`` with one subscription per selected folder
(``me/mailFolders('{id}')/messages``) to ``push_url``, kept by
``commlink.sync.push.PushKeeper``; the host's endpoint runs
``notify.GraphWebhook``. ``watch()`` returns ``None``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import attrs

from ....errors import (
    AuthError,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
)
from ....mime.parse import parse_message
from ....model import Attachment, Detail, Folder, FolderKind, Limits
from ....ports import ChangeSet, FetchedMessage, IdPage, Scope
from ...sizing import DEFAULT_LIMITS, plan_fetch
from .client import BATCH_LIMIT, BatchItem, GraphClient, GraphReply
from .folder_provider import GraphFolderProvider, delta_changes, user_path
from .headers import (
    MESSAGE_SIZE,
    METADATA_PROPERTIES,
    headers_from_properties,
    message_size,
    parse_graph_time,
)

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
#: What a metadata-only message is built from (GET only: see the module doc).
_HEADER_PROPERTIES = (*_BASE_PROPERTIES, "internetMessageId", *METADATA_PROPERTIES)
_HEAD_QUERY = "?$select=" + ",".join(_HEADER_PROPERTIES)
_SIZE_EXPAND = f"singleValueExtendedProperties($filter=id eq '{MESSAGE_SIZE}')"
_SIZE_QUERY = quote(_SIZE_EXPAND, safe="$=()'")
#: A $batch holds base64 bodies in JSON, read and parsed at once: several
#: messages share this fraction of ``fetch_batch_bytes``.
BATCH_SHARE = 3
_FOLDER_PROPERTIES = "id,displayName,parentFolderId,childFolderCount"
_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)
_BOUNDARY = re.compile(rb"boundary=(\"[^\"\r\n]+\"|[^;\s]+)", re.IGNORECASE)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class GraphMailProvider(GraphFolderProvider):
    """A mailbox through Graph; ``client`` carries the tokens and retries.

    ``user`` is ``"me"`` (delegated) or a user id / principal name (app-only).
    ``page_size`` is both the delta page size (``odata.maxpagesize``) and
    the listing page size. ``limits`` bound the size of a message and of a
    fetch request. ``delta_detail`` is the detail the channel fetches at:
    with ``Detail.FULL`` the delta rounds read each message's size too, so
    a full fetch plans its MIME requests without asking for the sizes.
    Headers always come from GETs of the messages. ``push_url`` and
    ``push_lifecycle_url`` are where Graph sends change and lifecycle
    notifications (none: the mailbox is not watched).
    """

    PUSH_PROVIDER = "graph"
    PUSH_FOLDERS = "mailFolders"
    PUSH_ITEMS = "messages"

    def __init__(
        self,
        client: GraphClient,
        *,
        user: str = "me",
        delta_detail: Detail = Detail.METADATA,
        page_size: int = 500,
        include_hidden: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        push_url: str | None = None,
        push_lifecycle_url: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(client, user, page_size, push_url, push_lifecycle_url, clock)
        self.include_hidden = include_hidden
        self.limits = limits
        self._delta_params = {
            "$select": ",".join(_BASE_PROPERTIES),
            "$orderby": "receivedDateTime desc",
        }
        if delta_detail is Detail.FULL:
            self._delta_params["$expand"] = _SIZE_EXPAND
        self._well_known: dict[str, FolderKind] | None = None
        self._skipped: set[str] = set()

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
        return self._round_link(scope, link)

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Ids newest first: a delta round ordered by ``receivedDateTime``,
        read a page at a time; ``page`` is its ``@odata.nextLink``. A next link
        that expired starts the listing again (what is stored is skipped)."""
        found: JSON | None = None
        if page and not self.client.owns(page):
            log.info("listing of %s has a link to another host; listing again", scope.id)
        elif page:
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
        found = self._delta_page(cursor)
        items: dict[str, JSON] = {}
        self._items[scope.id] = items  # only the page in hand
        return delta_changes(found, items)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """Metadata: the headers in batches of 20 GETs. Full: MIME within
        the byte budget, the sizes taken from the delta round (else asked
        for with the headers); a missing message or a failed item comes back
        with ``error`` set, one above ``max_message_bytes`` with its headers
        only (``oversize``)."""
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            if detail is Detail.METADATA:
                for item_id, head in self._heads(chunk, sized=False):
                    yield (
                        head
                        if isinstance(head, FetchedMessage)
                        else self._metadata(scope, item_id, head)
                    )
            else:
                yield from self._full(scope, chunk)

    def _heads(
        self, ids: Sequence[str], *, sized: bool
    ) -> Iterator[tuple[str, JSON | FetchedMessage]]:
        """One ``$batch`` of GETs of the header properties and
        ``internetMessageHeaders`` (with the size when ``sized``)."""
        query = _HEAD_QUERY + (f"&$expand={_SIZE_QUERY}" if sized else "")
        calls = [BatchItem(i, self._message_path(i) + query) for i in ids]
        for key, result in self.client.batch(calls):
            if isinstance(result, ProviderError):
                yield str(key), _failed(str(key), result)
            else:
                yield str(key), result.json

    def _full(self, scope: Scope, chunk: Sequence[str]) -> Iterator[FetchedMessage]:
        listed = self._items.get(scope.id, {})
        heads: dict[str, JSON] = {}
        sizes: dict[str, int | None] = {}
        for item_id in chunk:
            size = message_size(listed.get(item_id, {}))
            if size is not None:
                heads[item_id], sizes[item_id] = listed[item_id], size
        unsized = [i for i in chunk if i not in sizes]
        for item_id, head in self._heads(unsized, sized=True) if unsized else ():
            if isinstance(head, FetchedMessage):
                yield head
            else:
                heads[item_id], sizes[item_id] = head, message_size(head)
        order = [i for i in chunk if i in sizes]
        yield from self._bodies(scope, {i: heads[i] for i in order}, sizes)

    def _bodies(
        self, scope: Scope, heads: dict[str, JSON], sizes: Mapping[str, int | None]
    ) -> Iterator[FetchedMessage]:
        plan = plan_fetch(
            ((i, sizes.get(i)) for i in heads),
            self.limits,
            max_count=BATCH_LIMIT,
            budget=self.limits.fetch_batch_bytes // BATCH_SHARE,
        )
        bare = [i for i in plan.oversize if "internetMessageHeaders" not in heads[i]]
        for item_id, head in self._heads(bare, sized=False) if bare else ():
            if isinstance(head, FetchedMessage):
                plan.oversize.pop(item_id, None)
                yield head
            else:
                heads[item_id] = head
        for item_id, size in plan.oversize.items():
            yield self._headers_only(scope, item_id, heads[item_id], size)
        for batch in plan.batches:
            if len(batch) == 1:
                yield self._download(scope, batch[0], heads[batch[0]])
                continue
            calls = [BatchItem(i, self._message_path(i) + "/$value") for i in batch]
            for key, result in self.client.batch(calls):
                item_id = str(key)
                if isinstance(result, ProviderError):
                    yield _failed(item_id, result)
                else:
                    fetched = self._mime(scope, item_id, result, heads[item_id])
                    del result  # the MIME goes before the message is parsed
                    yield fetched
                    del fetched  # and this message before the next is asked for

    def _download(self, scope: Scope, item_id: str, head: JSON) -> FetchedMessage:
        """One message's MIME, streamed and cut off past ``max_message_bytes``
        (its headers only, then)."""
        limit = self.limits.max_message_bytes
        try:
            body, size = self.client.download(self._message_path(item_id) + "/$value", limit)
        except (AuthError, RateLimited):
            raise
        except ProviderError as exc:  # as a batch item's failure would be
            return _failed(item_id, exc)
        if body is None:
            if "internetMessageHeaders" not in head:
                [(_, found)] = list(self._heads([item_id], sized=False))
                if isinstance(found, FetchedMessage):
                    return found
                head = found
            return self._headers_only(scope, item_id, head, size)
        return self._mime(scope, item_id, GraphReply(200, {}, body), head)

    def _headers_only(
        self, scope: Scope, item_id: str, head: JSON, size: int | None
    ) -> FetchedMessage:
        return attrs.evolve(self._metadata(scope, item_id, head), oversize=size)

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """Change notifications come to the host's webhook instead (``PushSource``)."""
        return None

    # -- AttachmentSource -----------------------------------------------------

    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """One attachment's content, streamed (``AttachmentSource``; see
        ``graph.attachments``)."""
        from .attachments import open_graph_attachment

        return open_graph_attachment(
            self.client, self._message_path(provider_id), attachments, index, max_bytes
        )

    # -- Graph extras ---------------------------------------------------------

    def aliases(self) -> tuple[str, ...]:
        """The mailbox's primary address and SMTP proxy addresses (the engine
        merges them with ``ChannelSettings.aliases``)."""
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

    def _message_path(self, item_id: str) -> str:
        return f"{self._root}/messages/{quote(item_id, safe='')}"

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
        if not isinstance(body, bytes) or not body or body.isspace():
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
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    if end < 0:
        return "mime-truncated:no-body"
    head = raw[:end]  # the body is not copied
    found = _BOUNDARY.search(head)
    if found is None or not _MULTIPART.search(head):
        return None
    boundary = found.group(1).strip(b'"')
    if b"--" + boundary + b"--" not in raw:
        return "mime-truncated:no-closing-boundary"
    return None


def _failed(item_id: str, error: ProviderError) -> FetchedMessage:
    if isinstance(error, NotFound):
        return FetchedMessage(item_id, error="not found")
    return FetchedMessage(item_id, error=f"could not fetch: {error}"[:500])


def _folders(scope: Scope, item: JSON) -> tuple[str, ...]:
    # the scope's folder: the listing says the message is there
    return (scope.id,)
