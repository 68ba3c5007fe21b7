"""The Gmail side of the local Google API server: mailboxes and their JSON.

Shapes follow the bundled ``gmail.v1`` discovery document: int64 fields
(``historyId``, ``internalDate``) are JSON strings, int32 fields are numbers.

A mailbox with a watch (``users.watch``) publishes each change to its
Pub/Sub topic: ``{"emailAddress", "historyId"}``, narrowed by
``labelIds``/``labelFilterBehavior`` when given, until the watch expires
(seven days) or ``users.stop``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Mapping, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from .errors import ApiError
from .gmail_parts import attachment_json, payload_json
from .pubsub import PubSub

__all__ = ["GmailBackend", "Mailbox"]

JSON = dict[str, Any]

SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "IMPORTANT",
    "STARRED",
    "UNREAD",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)


_TYPES = {
    "messagesAdded": "messageAdded",
    "messagesDeleted": "messageDeleted",
    "labelsAdded": "labelAdded",
    "labelsRemoved": "labelRemoved",
}


@attrs.define
class _Stored:
    id: str
    thread_id: str
    raw: bytes
    labels: list[str]
    internal_date: int
    history_id: int
    raw_override: str | None = None


@attrs.define
class _Record:
    id: int
    kind: str  # messageAdded, messageDeleted, labelAdded, labelRemoved
    message: JSON
    label_ids: tuple[str, ...] = ()


@attrs.define
class Mailbox:
    """One user's mailbox."""

    email: str
    messages: dict[str, _Stored] = attrs.field(factory=dict)
    labels: dict[str, JSON] = attrs.field(factory=dict)
    history: list[_Record] = attrs.field(factory=list)
    history_id: int = 1000
    history_floor: int = 0
    send_as: list[JSON] = attrs.field(factory=list)
    watch: JSON | None = None


def _header_date(raw: bytes) -> int | None:
    try:
        value = BytesHeaderParser(policy=compat32).parsebytes(raw).get("Date")
        return int(parsedate_to_datetime(str(value)).timestamp() * 1000) if value else None
    except (TypeError, ValueError, IndexError):
        return None


class GmailBackend:
    """Mailboxes by user address, with a Python API to seed and mutate them."""

    def __init__(self, lock: threading.RLock, pubsub: PubSub | None = None) -> None:
        self._lock = lock
        self.pubsub = pubsub
        self._boxes: dict[str, Mailbox] = {}
        self._ids = itertools.count(0x18C0000000000)

    # -- Python API -----------------------------------------------------------

    def mailbox(self, user: str) -> Mailbox:
        with self._lock:
            box = self._boxes.get(user)
            if box is None:
                box = Mailbox(user)
                for label in SYSTEM_LABELS:
                    box.labels[label] = {"id": label, "name": label, "type": "system"}
                box.send_as.append({"sendAsEmail": user, "isPrimary": True, "isDefault": True})
                self._boxes[user] = box
            return box

    def add_label(self, user: str, name: str) -> str:
        """Create a user label; returns its id."""
        with self._lock:
            box = self.mailbox(user)
            label_id = f"Label_{len(box.labels) + 1}"
            box.labels[label_id] = {"id": label_id, "name": name, "type": "user"}
            return label_id

    def add_alias(self, user: str, address: str) -> None:
        with self._lock:
            self.mailbox(user).send_as.append({"sendAsEmail": address, "isPrimary": False})

    def add_message(
        self,
        user: str,
        raw: bytes,
        labels: Sequence[str] = ("INBOX",),
        thread_id: str | None = None,
        internal_date: int | None = None,
    ) -> str:
        """Store a message; returns its id. ``internal_date`` is in ms since
        the epoch (the Date header, else now, when omitted)."""
        with self._lock:
            box = self.mailbox(user)
            message_id = f"{next(self._ids):x}"
            when = internal_date or _header_date(raw) or int(time.time() * 1000)
            box.history_id += 1
            stored = _Stored(
                message_id, thread_id or message_id, raw, list(labels), when, box.history_id
            )
            box.messages[message_id] = stored
            box.history.append(
                _Record(box.history_id, "messagesAdded", self._brief(stored, labels=True))
            )
            self._changed(box, stored.labels)
            return message_id

    def delete_message(self, user: str, message_id: str) -> None:
        """Delete permanently (history records a messageDeleted)."""
        with self._lock:
            box = self.mailbox(user)
            stored = box.messages.pop(message_id)
            box.history_id += 1
            box.history.append(_Record(box.history_id, "messagesDeleted", self._brief(stored)))
            self._changed(box, stored.labels)

    def modify_labels(
        self, user: str, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        with self._lock:
            box = self.mailbox(user)
            stored = box.messages[message_id]
            added = [label for label in add if label not in stored.labels]
            removed = [label for label in remove if label in stored.labels]
            stored.labels = [label for label in stored.labels if label not in removed] + added
            for kind, ids in (("labelsAdded", added), ("labelsRemoved", removed)):
                if ids:
                    box.history_id += 1
                    stored.history_id = box.history_id
                    brief = self._brief(stored, labels=True)
                    box.history.append(_Record(box.history_id, kind, brief, tuple(ids)))
            if added or removed:
                self._changed(box, [*stored.labels, *removed])

    def corrupt_raw(self, user: str, message_id: str, text: str) -> None:
        """Serve ``text`` as the message's ``raw`` field (to test bad input)."""
        with self._lock:
            self.mailbox(user).messages[message_id].raw_override = text

    def expire_history(self, user: str | None = None) -> None:
        """Forget all history: older startHistoryIds answer 404."""
        with self._lock:
            boxes = [self.mailbox(user)] if user else list(self._boxes.values())
            for box in boxes:
                box.history.clear()
                box.history_id += 1
                box.history_floor = box.history_id

    def find(self, user: str, header_message_id: str) -> str:
        """The id of the message whose Message-ID header is this (no brackets)."""
        with self._lock:
            for stored in self.mailbox(user).messages.values():
                value = BytesHeaderParser(policy=compat32).parsebytes(stored.raw)["Message-ID"]
                if value and str(value).strip().strip("<>") == header_message_id:
                    return stored.id
            raise KeyError(header_message_id)

    # -- the API --------------------------------------------------------------

    def handle(
        self,
        user: str,
        method: str,
        parts: Sequence[str],
        query: Mapping[str, list[str]],
        body: Mapping[str, Any] | None = None,
    ) -> tuple[str, JSON | None]:
        """Answer one call: ``parts`` is the path after ``users/{userId}/``.
        Returns the method name (for quota costs) and the JSON body
        (``None``: 204 No Content)."""
        box = self.mailbox(user)
        with self._lock:
            if method == "GET" and parts == ["profile"]:
                return "gmail.users.getProfile", {
                    "emailAddress": box.email,
                    "messagesTotal": len(box.messages),
                    "threadsTotal": len({m.thread_id for m in box.messages.values()}),
                    "historyId": str(box.history_id),
                }
            if method == "GET" and parts == ["labels"]:
                return "gmail.users.labels.list", {"labels": list(box.labels.values())}
            if method == "GET" and parts == ["settings", "sendAs"]:
                return "gmail.users.settings.sendAs.list", {"sendAs": list(box.send_as)}
            if method == "POST" and parts == ["watch"]:
                return "gmail.users.watch", self._watch(box, body or {})
            if method == "POST" and parts == ["stop"]:
                box.watch = None
                return "gmail.users.stop", None
            if method == "GET" and parts == ["messages"]:
                return "gmail.users.messages.list", self._list(box, query)
            if method == "GET" and len(parts) == 2 and parts[0] == "messages":
                return "gmail.users.messages.get", self._get(box, parts[1], query)
            if method == "GET" and len(parts) == 4 and parts[::2] == ["messages", "attachments"]:
                stored = box.messages.get(parts[1])
                if stored is None:
                    raise ApiError(404, "notFound", "Requested entity was not found.")
                found = attachment_json(stored.id, stored.raw, parts[3])
                return "gmail.users.messages.attachments.get", found
            if method == "GET" and parts == ["history"]:
                return "gmail.users.history.list", self._history(box, query)
        raise ApiError(404, "notFound", f"no such method: {method} {'/'.join(parts)}")

    def _watch(self, box: Mailbox, body: Mapping[str, Any]) -> JSON:
        topic = body.get("topicName")
        if not isinstance(topic, str) or not topic:
            raise ApiError(400, "invalidArgument", "Invalid topicName")
        if self.pubsub is not None:
            self.pubsub.check_gmail_may_publish(topic)
        labels = body.get("labelIds") or []
        behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "")
        if not isinstance(labels, list) or any(label not in box.labels for label in labels):
            raise ApiError(400, "invalidArgument", "Invalid label id in labelIds")
        if behavior.lower() not in ("", "include", "exclude"):
            raise ApiError(400, "invalidArgument", "Invalid labelFilterBehavior")
        box.watch = {
            "historyId": str(box.history_id),
            "expiration": str(_week()),
            "topicName": topic,
            "labelIds": [str(label) for label in labels],
            "labelFilterBehavior": behavior.lower() or "include",
        }
        return {"historyId": box.watch["historyId"], "expiration": box.watch["expiration"]}

    def _changed(self, box: Mailbox, labels: Sequence[str]) -> None:
        """Publish the change to the mailbox's watch topic, if it is watched
        and the change touches the labels the watch asks for."""
        watch = box.watch
        if watch is None or self.pubsub is None:
            return
        if int(watch["expiration"]) <= time.time() * 1000:
            box.watch = None
            return
        wanted = set(watch["labelIds"])
        if wanted:
            touched = bool(wanted & set(labels))
            if touched != (watch["labelFilterBehavior"] == "include"):
                return
        # a JSON number here (the guide shows a string; readers take both)
        data = json.dumps({"emailAddress": box.email, "historyId": box.history_id})
        self.pubsub.publish(str(watch["topicName"]), data.encode())

    def _list(self, box: Mailbox, query: Mapping[str, list[str]]) -> JSON:
        include_hidden = _flag(query, "includeSpamTrash")
        wanted = set(query.get("labelIds", []))
        size = _int(query, "maxResults", 100, 1, 500)
        offset = _int(query, "pageToken", 0, 0, 10**9)
        found = [
            m
            for m in box.messages.values()
            if (include_hidden or not {"SPAM", "TRASH"} & set(m.labels)) and wanted <= set(m.labels)
        ]
        found.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
        page = found[offset : offset + size]
        body: JSON = {"resultSizeEstimate": len(found)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if offset + size < len(found):
            body["nextPageToken"] = str(offset + size)
        return body

    def _get(self, box: Mailbox, message_id: str, query: Mapping[str, list[str]]) -> JSON:
        stored = box.messages.get(message_id)
        if stored is None:
            raise ApiError(404, "notFound", "Requested entity was not found.")
        fmt = (query.get("format") or ["full"])[0]
        body = self._brief(stored, labels=True)
        header_end = stored.raw.find(b"\r\n\r\n")
        text = stored.raw[header_end + 4 :] if header_end >= 0 else b""
        body.update(
            snippet=text[:100].decode("utf-8", "replace").strip(),
            sizeEstimate=len(stored.raw),
            historyId=str(stored.history_id),
            internalDate=str(stored.internal_date),
        )
        if fmt == "raw":
            body["raw"] = stored.raw_override or base64.urlsafe_b64encode(stored.raw).decode()
        elif fmt in ("metadata", "full"):
            headers = BytesHeaderParser(policy=compat32).parsebytes(stored.raw)
            names = {n.lower() for n in query.get("metadataHeaders", [])}
            pairs = [
                {"name": k, "value": " ".join(str(v).split())}
                for k, v in headers.items()
                if fmt == "full" or not names or k.lower() in names
            ]
            payload: JSON = {"mimeType": headers.get_content_type(), "headers": pairs}
            if fmt == "full":
                payload = payload_json(stored.id, stored.raw)
            body["payload"] = payload
        return body

    def _history(self, box: Mailbox, query: Mapping[str, list[str]]) -> JSON:
        try:
            start = int((query.get("startHistoryId") or [""])[0])
        except ValueError:
            raise ApiError(400, "invalidArgument", "Invalid startHistoryId") from None
        if start < box.history_floor:
            raise ApiError(404, "notFound", "Requested entity was not found.")
        types = set(query.get("historyTypes", [])) or {
            "messageAdded",
            "messageDeleted",
            "labelAdded",
            "labelRemoved",
        }
        label = next(iter(query.get("labelId", [])), None)
        size = _int(query, "maxResults", 100, 1, 500)
        offset = _int(query, "pageToken", 0, 0, 10**9)
        records = [
            r
            for r in box.history
            if r.id > start
            and _TYPES[r.kind] in types
            and (label is None or label in r.message.get("labelIds", ()))
        ]
        page = records[offset : offset + size]
        body: JSON = {"historyId": str(box.history_id)}
        if page:
            body["history"] = [_history_entry(r) for r in page]
        if offset + size < len(records):
            body["nextPageToken"] = str(offset + size)
        return body

    @staticmethod
    def _brief(stored: _Stored, *, labels: bool = False) -> JSON:
        body: JSON = {"id": stored.id, "threadId": stored.thread_id}
        if labels:
            body["labelIds"] = list(stored.labels)
        return body


def _history_entry(record: _Record) -> JSON:
    entry: JSON = {
        "id": str(record.id),
        "messages": [{k: record.message[k] for k in ("id", "threadId")}],
    }
    if record.kind in ("labelsAdded", "labelsRemoved"):
        entry[record.kind] = [{"message": record.message, "labelIds": list(record.label_ids)}]
    else:
        entry[record.kind] = [{"message": record.message}]
    return entry


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() == "true"


def _int(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int((query.get(name) or [str(default)])[0])
    except ValueError:
        raise ApiError(400, "invalidArgument", f"Invalid {name}") from None
    return min(max(value, low), high)


def _week() -> int:
    return int((time.time() + 7 * 86400) * 1000)
