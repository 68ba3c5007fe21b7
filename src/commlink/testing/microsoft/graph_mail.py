"""The mail side of the local Graph server: mail folders (well-known names,
child folders, hidden folders), messages with their MIME content, and
per-folder ``messages/delta``.

Each message has an immutable id and a regular id that changes when the
message moves (as in Exchange); answers use the immutable one only when the
request prefers ``IdType="ImmutableId"``.

As documented for the message resource, ``internetMessageHeaders`` is
"returned only on applying a ``$select`` query option" to a GET of the
message: it is never in a default answer, and delta rounds leave it out even
when their ``$select`` names it. ``$expand=singleValueExtendedProperties(
$filter=id eq '...')`` (on a GET or a delta round, which "support
``$select``, ``$top``, and ``$expand`` for messages") answers
``PidTagMessageSize`` (``Integer 0x0E08``).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import attrs

from .graph_delta import JSON, DeltaLog, GraphError, new_id, serve_delta

__all__ = ["MailBackend", "StoredFolder", "StoredMessage"]

#: Well-known folders every mailbox starts with: (name, display name).
DEFAULT_FOLDERS = (
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
    ("archive", "Archive"),
    ("conversationhistory", "Conversation History"),
    ("syncissues", "Sync Issues"),
)
_DEFAULT_PAGE = 10
#: Properties a GET returns only when ``$select``ed (never in delta rounds).
SELECT_ONLY = frozenset({"internetMessageHeaders"})
_EXTENDED = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)$", re.I)
#: ``PidTagMessageSize`` (``PT_LONG`` 0x0E08).
_MESSAGE_SIZE = ("integer", 0x0E08)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class StoredFolder:
    id: str
    name: str
    parent: str
    well_known: str = ""
    hidden: bool = False


@attrs.define
class StoredMessage:
    immutable_id: str
    rest_id: str
    folder: str
    raw: bytes
    props: JSON

    def id_for(self, immutable: bool) -> str:
        return self.immutable_id if immutable else self.rest_id


def _text(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError, TypeError):
        return str(value)


def _recipients(mail: EmailMessage, header: str) -> list[JSON]:
    values = [str(v) for v in mail.get_all(header, [])]
    return [
        {"emailAddress": {"name": _text(name) or address, "address": address}}
        for name, address in getaddresses(values)
        if address
    ]


def properties_from_mime(raw: bytes, received: datetime | None) -> JSON:
    """The message resource properties Exchange derives from the MIME content."""
    mail = BytesParser(policy=compat32).parsebytes(raw)
    sent: datetime | None = None
    try:
        sent = parsedate_to_datetime(str(mail.get("Date"))) if mail.get("Date") else None
    except (TypeError, ValueError):
        sent = None
    if sent is not None and sent.tzinfo is None:
        sent = sent.replace(tzinfo=timezone.utc)
    received = received or sent or datetime.now(timezone.utc)
    message_id = str(mail.get("Message-ID") or "").strip() or None
    references = str(mail.get("References") or mail.get("In-Reply-To") or "").split()
    root = references[0] if references else (message_id or _text(mail.get("Subject")))
    senders = _recipients(mail, "From")
    return {
        "subject": _text(mail.get("Subject")),
        "from": senders[0] if senders else None,
        "sender": next(iter(_recipients(mail, "Sender") or senders), None),
        "toRecipients": _recipients(mail, "To"),
        "ccRecipients": _recipients(mail, "Cc"),
        "bccRecipients": _recipients(mail, "Bcc"),
        "replyTo": _recipients(mail, "Reply-To"),
        "internetMessageId": message_id,
        "sentDateTime": _stamp(sent or received),
        "receivedDateTime": _stamp(received),
        "conversationId": "AAQk" + hashlib.sha1(root.encode(errors="replace")).hexdigest(),
        "isRead": False,
        "hasAttachments": mail.is_multipart() and "attachment" in raw.decode("latin-1").lower(),
        "bodyPreview": "",
    }


class MailBackend:
    """Mailboxes of the local Graph server (one per user)."""

    def __init__(self, lock: threading.RLock, log: DeltaLog) -> None:
        self._lock = lock
        self.log = log
        self.folders: dict[str, StoredFolder] = {}
        self.messages: dict[str, StoredMessage] = {}
        self._by_rest: dict[str, str] = {}
        self.root = new_id("AAMkAGroot")
        # the root answers GET /mailFolders/msgfolderroot; it is nobody's child
        self.folders[self.root] = StoredFolder(
            self.root, "Top of Information Store", "", "msgfolderroot"
        )
        for name, display in DEFAULT_FOLDERS:
            self.add_folder(display, well_known=name)

    # -- seeding and changing -------------------------------------------------

    def add_folder(
        self, name: str, parent: str | None = None, *, well_known: str = "", hidden: bool = False
    ) -> str:
        """Create a folder (under the root unless ``parent``); returns its id."""
        with self._lock:
            folder = StoredFolder(
                new_id("AAMkAGfolder"),
                name,
                self.folder_id(parent or self.root),
                well_known,
                hidden,
            )
            self.folders[folder.id] = folder
            return folder.id

    def folder_id(self, name_or_id: str) -> str:
        """The id of a folder given its id or well-known name."""
        with self._lock:
            if name_or_id in self.folders:
                return name_or_id
            for folder in self.folders.values():  # well-known names in any case
                if folder.well_known and folder.well_known == name_or_id.lower():
                    return folder.id
        raise GraphError(404, "ErrorInvalidIdMalformed", f"no folder {name_or_id}")

    def add_message(
        self,
        raw: bytes,
        folder: str = "inbox",
        *,
        received: datetime | None = None,
        **overrides: Any,
    ) -> str:
        """Store a message; returns its immutable id. ``overrides`` replace
        properties derived from the MIME content (``internetMessageId=None``)."""
        with self._lock:
            folder_id = self.folder_id(folder)
            props = properties_from_mime(raw, received)
            props.update(overrides)
            message = StoredMessage(new_id("AAkALg"), new_id("AAMkAD"), folder_id, raw, props)
            self.messages[message.immutable_id] = message
            self._by_rest[message.rest_id] = message.immutable_id
            self.log.changed(folder_id, message.immutable_id, "created")
            return message.immutable_id

    def find(self, internet_message_id: str) -> str:
        """The immutable id of the message with this Message-ID (brackets optional)."""
        wanted = internet_message_id.strip("<>")
        with self._lock:
            for message in self.messages.values():
                if str(message.props.get("internetMessageId") or "").strip("<>") == wanted:
                    return message.immutable_id
        raise KeyError(internet_message_id)

    def move(self, message_id: str, folder: str) -> str:
        """Move a message; it gets a new regular id, its immutable id stays."""
        with self._lock:
            message = self.get(message_id)
            target = self.folder_id(folder)
            self.log.removed(message.folder, message.immutable_id, self._ids(message))
            del self._by_rest[message.rest_id]
            message.rest_id = new_id("AAMkAD")
            self._by_rest[message.rest_id] = message.immutable_id
            message.folder = target
            message.props["parentFolderId"] = target
            self.log.changed(target, message.immutable_id, "created")
            return message.immutable_id

    def update(self, message_id: str, **props: Any) -> None:
        with self._lock:
            message = self.get(message_id)
            message.props.update(props)
            self.log.changed(message.folder, message.immutable_id)

    def delete(self, message_id: str) -> None:
        """Delete a message for good."""
        with self._lock:
            message = self.get(message_id)
            self.log.removed(message.folder, message.immutable_id, self._ids(message))
            del self.messages[message.immutable_id]
            del self._by_rest[message.rest_id]

    def set_raw(self, message_id: str, raw: bytes) -> None:
        """Replace the MIME content only (to serve broken content)."""
        with self._lock:
            self.get(message_id).raw = raw

    def get(self, message_id: str) -> StoredMessage:
        with self._lock:
            key = self._by_rest.get(message_id, message_id)
            message = self.messages.get(key)
        if message is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found.")
        return message

    @staticmethod
    def _ids(message: StoredMessage) -> tuple[str, str]:
        return message.immutable_id, message.rest_id

    # -- answering ------------------------------------------------------------

    def render_folder(self, folder: StoredFolder) -> JSON:
        with self._lock:
            children = [f for f in self.folders.values() if f.parent == folder.id]
            total = sum(1 for m in self.messages.values() if m.folder == folder.id)
        return {
            "id": folder.id,
            "displayName": folder.name,
            "parentFolderId": folder.parent,
            "childFolderCount": len(children),
            "unreadItemCount": total,
            "totalItemCount": total,
            "isHidden": folder.hidden,
        }

    def children(self, parent: str, include_hidden: bool) -> list[JSON]:
        with self._lock:
            found = [
                f
                for f in self.folders.values()
                if f.parent == parent and (include_hidden or not f.hidden)
            ]
            return [self.render_folder(f) for f in found]

    def render(
        self,
        message: StoredMessage,
        immutable: bool,
        select: Sequence[str],
        expand: str = "",
        *,
        in_delta: bool = False,
    ) -> JSON:
        props = {
            **message.props,
            "id": message.id_for(immutable),
            "parentFolderId": message.folder,
        }
        if select:
            wanted = [k for k in select if k != "id" and not (in_delta and k in SELECT_ONLY)]
            found = {"id": props["id"]}
            for key in wanted:
                found[key] = (
                    _internet_headers(message.raw) if key in SELECT_ONLY else props.get(key)
                )
            props = found
        if expand:
            extended = _extended(message, expand)
            if extended:
                props["singleValueExtendedProperties"] = extended
        return props

    def delta(
        self,
        folder: str,
        query: Mapping[str, str],
        immutable: bool,
        page_size: int | None,
        link_base: str,
    ) -> JSON:
        folder_id = self.folder_id(folder)
        select = [s for s in query.get("$select", "").split(",") if s]
        expand = query.get("$expand", "")
        order = " ".join(query.get("$orderby", "").split())
        if order not in ("", "receivedDateTime desc"):
            raise GraphError(
                400, "ErrorInvalidUrlQuery", "The only supported $orderby is receivedDateTime desc."
            )

        def initial() -> list[JSON]:
            with self._lock:
                found = [m for m in self.messages.values() if m.folder == folder_id]
                if order:
                    found.sort(key=lambda m: str(m.props.get("receivedDateTime")), reverse=True)
                return [self.render(m, immutable, select, expand, in_delta=True) for m in found]

        def incremental(position: int, state: JSON) -> list[JSON]:
            entries: list[JSON] = []
            for key, removed in self.log.since(folder_id, position):
                with self._lock:
                    message = self.messages.get(key)
                if removed is None and message is not None and message.folder == folder_id:
                    entries.append(
                        self.render(
                            message,
                            state["immutable"],
                            state["select"],
                            state["expand"],
                            in_delta=True,
                        )
                    )
                elif removed is not None:
                    gone_id = removed[0] if state["immutable"] else removed[1]
                    entries.append({"id": gone_id, "@removed": {"reason": "deleted"}})
            return entries

        return serve_delta(
            self.log,
            folder_id,
            query,
            page_size or _DEFAULT_PAGE,
            link_base,
            initial,
            incremental,
            {"immutable": immutable, "select": select, "expand": expand},
        )


def _internet_headers(raw: bytes) -> list[JSON]:
    """Every header of the MIME content as Graph's name/value pairs."""
    mail = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    return [{"name": k, "value": " ".join(str(v).split())} for k, v in mail.items()]


def _extended(message: StoredMessage, expand: str) -> list[JSON]:
    """The single-value extended properties an ``$expand`` asks for (only
    ``PidTagMessageSize`` is known here; an unknown one is left out)."""
    match = _EXTENDED.match(expand.strip())
    if match is None:
        raise GraphError(400, "BadRequest", f"Unsupported $expand: {expand}")
    kind, _, tag = match.group(1).strip().partition(" ")
    try:
        key = (kind.lower(), int(tag, 16))
    except ValueError:
        raise GraphError(400, "ErrorInvalidProperty", f"Invalid property id: {tag}") from None
    if key != _MESSAGE_SIZE:
        return []
    return [{"id": "Integer 0xe08", "value": str(len(message.raw))}]
