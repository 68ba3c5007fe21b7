"""``ExchangeMailProvider``: an Exchange Server mailbox through EWS (exchangelib).

Scopes are folders: the distinguished ones (inbox, sent items, drafts,
deleted items, junk) and every mail folder below the message folder root
(an "Archive" folder at the top counts as the archive). Cursors are ``SyncFolderItems``
sync states (see ``exchange_sync``). Provider ids are EWS ItemIds; EWS
gives an item a new id when it moves, so a move shows up as a deletion in
one folder and a creation in the other, and the engine stores the message
again under its new id.

Messages are read with ``GetItem`` in batches: ``InternetMessageHeaders``
for a metadata fetch, with the ``ConversationId`` (thread hint) and
``DateTimeReceived`` (date). A full fetch reads those with the item ``Size``
first: a message above ``Limits.max_message_bytes`` keeps its headers only,
the others' ``MimeContent`` comes in ``GetItem`` batches of at most
``fetch_batch`` items within ``fetch_batch_bytes``, read as a stream and
decoded as it arrives (see ``exchange.mime``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import attrs

from ....model import ALWAYS_EXCLUDED_KINDS, Attachment, Detail, Folder, FolderKind, Limits
from ....ports import FetchedMessage, Scope
from ...header_names import METADATA_HEADERS as _POLICY_HEADERS
from ...sizing import DEFAULT_LIMITS, plan_fetch
from .account import ExchangeConnection
from .aliases import resolve_aliases
from .errors import Caller, item_error
from .folder_provider import ExchangeFolderProvider
from .mime import read_mime
from .sync import FolderSync, utc
from .watch import StreamingWatch

__all__ = [
    "ARCHIVE_NAMES",
    "DISTINGUISHED_MAIL_FOLDERS",
    "HIDDEN_FOLDERS",
    "METADATA_HEADERS",
    "ExchangeMailProvider",
]

log = logging.getLogger("commlink.exchange")

#: Distinguished mail folders and what they are for.
DISTINGUISHED_MAIL_FOLDERS = {
    "inbox": FolderKind.INBOX,
    "sentitems": FolderKind.SENT,
    "drafts": FolderKind.DRAFTS,
    "deleteditems": FolderKind.TRASH,
    "junkemail": FolderKind.SPAM,
    "outbox": FolderKind.DRAFTS,  # not sent yet: never imported
}
#: Distinguished folders whose trees are never listed (client bookkeeping).
HIDDEN_FOLDERS = ("syncissues", "conversationhistory")
#: Exchange Server has no distinguished archive folder: Outlook's one-click
#: "Archive" is a folder of that name at the top of the mailbox.
ARCHIVE_NAMES = frozenset({"archive"})

#: The headers a metadata fetch keeps: what the parser and policy use.
METADATA_HEADERS = frozenset(h.lower() for h in (*_POLICY_HEADERS, "Content-Type"))

_METADATA_FIELDS = ("headers", "conversation_id", "datetime_received")
_SIZED_FIELDS = ("size", *_METADATA_FIELDS)
#: MIME is decoded as the answer streams in, so a batch holds its messages
#: once: the whole of ``fetch_batch_bytes`` is theirs.
BATCH_SHARE = 1


class ExchangeMailProvider(ExchangeFolderProvider):
    """A ``MailProvider`` for a mailbox on Exchange Server 2016, 2019 or SE.

    Build it with ``connect`` settings (``from_settings``) or an existing
    ``ExchangeConnection``. ``fetch_batch`` ids go in one GetItem of MIME
    (within ``limits.fetch_batch_bytes``); ``metadata_batch`` ids in one
    GetItem of headers and sizes; ``page_size`` ids make one listing page.
    ``streaming=True`` makes ``watch`` and ``watch_scopes`` hold EWS
    streaming notifications (the provider registry turns it on unless the
    channel's options say ``streaming = false``).
    ``requests_sent`` counts HTTP requests. ``limits`` bound the size of a
    message and of a fetch request.
    """

    _OWN_OPTIONS = ExchangeFolderProvider._OWN_OPTIONS | {"metadata_batch", "limits"}

    def __init__(
        self,
        connection: ExchangeConnection,
        *,
        page_size: int = 500,
        fetch_batch: int = 100,
        metadata_batch: int = 250,
        max_retries: int = 3,
        max_wait: float = 30.0,
        caller: Caller | None = None,
        streaming: bool = False,
        streaming_minutes: int = 30,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(
            connection,
            page_size=page_size,
            fetch_batch=fetch_batch,
            max_retries=max_retries,
            max_wait=max_wait,
            caller=caller,
            streaming=streaming,
            streaming_minutes=streaming_minutes,
        )
        self.limits = limits
        self.metadata_batch = max(1, metadata_batch)

    # -- MailProvider ---------------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """Distinguished folders (one GetFolder) and the mail folders below
        the message folder root (one FindFolder, deep).

        Folders below deleted items, junk, drafts and the outbox take their
        kind (so they are never imported); the sync-issues and conversation
        history trees are not listed."""
        names = ["msgfolderroot", *DISTINGUISHED_MAIL_FOLDERS, *HIDDEN_FOLDERS]
        found = self.sync.distinguished(names)
        root = found.get("msgfolderroot")
        if root is None:
            return []
        root_id = str(root.id)
        marked: dict[str, FolderKind | None] = {
            str(folder.id): DISTINGUISHED_MAIL_FOLDERS.get(name)
            for name, folder in found.items()
            if name != "msgfolderroot"
        }
        listed = [f for f in self.sync.descendants(root) if _is_mail(str(f.folder_class or ""))]
        parents = {str(f.id): _parent(f) for f in listed}
        parents.update({str(f.id): _parent(f) for f in found.values()})
        result: dict[str, Folder] = {}
        for folder in [found[n] for n in DISTINGUISHED_MAIL_FOLDERS if n in found] + listed:
            folder_id = str(folder.id)
            if folder_id in result:
                continue
            kind = _kind(folder_id, str(folder.name or ""), marked, parents, root_id)
            if kind is not None:
                result[folder_id] = FolderSync.as_folder(folder, kind, root_id)
        return list(result.values())

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """One scope per folder, the inbox first."""
        ordered = sorted(folders, key=lambda f: f.kind is not FolderKind.INBOX)
        return [Scope(f.id, f) for f in ordered]

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        from exchangelib.items import Message

        if detail is Detail.METADATA:
            for item_id, item in self.sync.get_items(
                ids, _METADATA_FIELDS, Message, self.metadata_batch
            ):
                yield _fetched(item_id, item, scope.id, full=False)
            return
        unique = list(dict.fromkeys(ids))
        limit = self.limits.max_message_bytes
        for start in range(0, len(unique), self.metadata_batch):
            heads: dict[str, Any] = {}
            chunk = unique[start : start + self.metadata_batch]
            for item_id, item in self.sync.get_items(chunk, _SIZED_FIELDS, Message, len(chunk)):
                if isinstance(item, BaseException):
                    yield FetchedMessage(item_id, error=item_error(item))
                else:
                    heads[item_id] = item
            plan = plan_fetch(
                ((i, _size(item)) for i, item in heads.items()),
                self.limits,
                max_count=self.fetch_batch,
                budget=self.limits.fetch_batch_bytes // BATCH_SHARE,
            )
            for item_id, size in plan.oversize.items():
                yield self._headers_only(item_id, heads[item_id], scope.id, size)
            for batch in plan.batches:
                found = self.caller(
                    "GetItem", functools.partial(read_mime, self.connection, batch, limit)
                )
                found.reverse()
                while found:
                    item_id, content = found.pop()
                    if isinstance(content, int):  # larger than its Size said
                        yield self._headers_only(item_id, heads[item_id], scope.id, content)
                        continue
                    fetched = _with_mime(item_id, heads[item_id], scope.id, content)
                    del content  # the MIME goes with the message, before the next
                    yield fetched
                    del fetched

    @staticmethod
    def _headers_only(item_id: str, head: Any, folder_id: str, size: int) -> FetchedMessage:
        fetched = _fetched(item_id, head, folder_id, full=False)
        return attrs.evolve(fetched, oversize=size) if fetched.error is None else fetched

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """Streaming notifications for the scope's folder (on a connection of
        their own), or ``None`` unless the provider was made with ``streaming=True``."""
        if not self.streaming:
            return None
        return StreamingWatch(self.connection, scope.id, minutes=self.streaming_minutes)

    def aliases(self) -> tuple[str, ...]:
        """The mailbox's SMTP addresses from the directory (one ``ResolveNames``;
        see ``exchange.aliases``)."""
        return resolve_aliases(self.connection, self.caller)

    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """One attachment's content, streamed (``AttachmentSource``; see
        ``exchange.attachments``)."""
        from .attachments import open_exchange_attachment

        return open_exchange_attachment(
            self.connection, self.caller, provider_id, attachments, index, max_bytes
        )


def _parent(folder: Any) -> str | None:
    return str(folder.parent_folder_id.id) if folder.parent_folder_id is not None else None


def _kind(
    folder_id: str,
    name: str,
    marked: dict[str, FolderKind | None],
    parents: dict[str, str | None],
    root_id: str,
) -> FolderKind | None:
    """A folder's kind: its own if distinguished, else the kind of an
    excluded ancestor; ``None`` for a folder in a hidden tree."""
    current: str | None = folder_id
    seen: set[str] = set()
    while current is not None and current != root_id and current not in seen:
        seen.add(current)
        if current in marked:
            kind = marked[current]
            if kind is None or current == folder_id or kind in ALWAYS_EXCLUDED_KINDS:
                return kind
            break  # below the inbox or sent items: a folder of its own
        current = parents.get(current)
    if parents.get(folder_id) == root_id and name.lower() in ARCHIVE_NAMES:
        return FolderKind.ARCHIVE
    return FolderKind.CUSTOM


def _is_mail(folder_class: str) -> bool:
    # folders without a class are mail folders; IPF.Note.* are mail folders too
    return not folder_class or folder_class == "IPF.Note" or folder_class.startswith("IPF.Note.")


def _size(item: Any) -> int | None:
    size = getattr(item, "size", None)
    return size if isinstance(size, int) and size >= 0 else None


def _with_mime(
    item_id: str, head: Any, folder_id: str, content: bytes | BaseException | str
) -> FetchedMessage:
    """A full message: its MIME, with the thread and date of its head."""
    if isinstance(content, BaseException):
        return FetchedMessage(item_id, error=item_error(content))
    if isinstance(content, str):
        return FetchedMessage(item_id, error=content)
    if not content or content.isspace():
        return FetchedMessage(item_id, error="no MIME content")
    fetched = _fetched(item_id, head, folder_id, full=False)
    return attrs.evolve(fetched, raw=content) if fetched.error is None else fetched


def _fetched(item_id: str, item: Any, folder_id: str, full: bool) -> FetchedMessage:
    if isinstance(item, BaseException):
        return FetchedMessage(item_id, error=item_error(item))
    conversation = getattr(item, "conversation_id", None)
    thread = str(conversation.id) if conversation is not None and conversation.id else None
    date = utc(getattr(item, "datetime_received", None))
    if full:
        raw = item.mime_content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not raw or not bytes(raw).strip():
            return FetchedMessage(item_id, error="no MIME content")
    else:
        raw = _header_block(getattr(item, "headers", None) or [])
        if raw == b"\r\n":
            return FetchedMessage(item_id, error="no internet message headers")
    return FetchedMessage(
        item_id, raw=bytes(raw), folders=(folder_id,), thread_hint=thread, date=date
    )


def _header_block(headers: Sequence[Any]) -> bytes:
    """RFC 5322 header bytes from EWS ``InternetMessageHeaders``."""
    lines = []
    for header in headers:
        name = str(getattr(header, "name", "") or "").strip()
        if (
            not name
            or ":" in name
            or not name.isprintable()
            or name.lower() not in METADATA_HEADERS
        ):
            continue
        value = " ".join(str(getattr(header, "value", "") or "").split())
        lines.append(f"{name}: {value}\r\n".encode())
    return b"".join(lines) + b"\r\n"
