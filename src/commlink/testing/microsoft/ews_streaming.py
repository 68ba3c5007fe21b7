"""Streaming notifications for ``EwsServer``: Subscribe (streaming),
Unsubscribe and GetStreamingEvents.

A GetStreamingEvents answer is one long chunked HTTP response made of
SOAP envelopes: one per batch of item events in the subscribed folders,
and a last one with ``ConnectionStatus`` ``Closed`` when the connection
time is up (``stream_seconds`` at most, so tests never wait for minutes).
"""

from __future__ import annotations

import itertools
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timezone

import attrs

from .ews_mailbox import EwsMailbox
from .ews_xml import M, T, envelope, error_message, stamp, sub, success_message

__all__ = ["Subscriptions"]

_EVENTS = {"Create": "CreatedEvent", "Delete": "DeletedEvent", "Update": "ModifiedEvent"}


@attrs.define
class _Subscription:
    folders: set[str]
    seen: int


class Subscriptions:
    """Streaming subscriptions to folders of one mailbox."""

    def __init__(self, mailbox: EwsMailbox) -> None:
        self.mailbox = mailbox
        self.stream_seconds = 2.0
        self.stopping = threading.Event()
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, _Subscription] = {}

    def expire_all(self) -> None:
        """Forget every subscription (as the server does after a timeout)."""
        with self.mailbox.lock:
            self._subscriptions.clear()

    def subscribe(self, mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
        wanted = request.find(f"{{{M}}}StreamingSubscriptionRequest")
        if wanted is None:
            error_message(messages, "Subscribe", "ErrorInvalidRequest", "Only streaming here.")
            return
        folders = {
            str(f.get("Id", ""))
            for f in wanted.iterfind(f"{{{T}}}FolderIds/*")
            if f.tag == f"{{{T}}}FolderId"
        }
        distinguished = wanted.iterfind(f"{{{T}}}FolderIds/{{{T}}}DistinguishedFolderId")
        names = [str(f.get("Id", "")) for f in distinguished]
        folders |= {found.id for n in names if (found := mailbox.distinguished(n)) is not None}
        subscription_id = f"SUB{next(self._ids):06d}"
        self._subscriptions[subscription_id] = _Subscription(folders, mailbox.last_seq)
        message = success_message(messages, "Subscribe")
        sub(message, M, "SubscriptionId", subscription_id)
        sub(message, M, "Watermark", f"W{mailbox.last_seq}")

    def unsubscribe(self, mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
        subscription_id = request.findtext(f"{{{M}}}SubscriptionId", "")
        if self._subscriptions.pop(subscription_id, None) is None:
            error_message(
                messages, "Unsubscribe", "ErrorSubscriptionNotFound", "No such subscription."
            )
            return
        success_message(messages, "Unsubscribe")

    def stream(self, request: ET.Element) -> Iterator[bytes]:
        """The envelopes of one GetStreamingEvents connection."""
        ids = [
            e.text or "" for e in request.iterfind(f"{{{M}}}SubscriptionIds/{{{T}}}SubscriptionId")
        ]
        minutes = int(request.findtext(f"{{{M}}}ConnectionTimeout", "1") or 1)
        with self.mailbox.lock:
            missing = [i for i in ids if i not in self._subscriptions]
        if missing or not ids:
            yield self._document(error="ErrorSubscriptionNotFound")
            return
        deadline = time.monotonic() + min(minutes * 60.0, self.stream_seconds)
        while time.monotonic() < deadline and not self.stopping.is_set():
            with self.mailbox.changed:
                self.mailbox.changed.wait(timeout=0.05)
                batches = self._collect(ids)
            if batches:
                yield self._document(batches=batches)
        yield self._document(closed=True)

    def _collect(self, ids: list[str]) -> list[tuple[str, list[tuple[int, str, str, str]]]]:
        found = []
        for subscription_id in ids:
            subscription = self._subscriptions.get(subscription_id)
            if subscription is None:
                continue
            events = self.mailbox.changes_after(subscription.folders, subscription.seen)
            if events:
                subscription.seen = events[-1][0]
                found.append((subscription_id, events))
        return found

    @staticmethod
    def _document(
        batches: list[tuple[str, list[tuple[int, str, str, str]]]] | None = None,
        *,
        closed: bool = False,
        error: str = "",
    ) -> bytes:
        response = ET.Element(f"{{{M}}}GetStreamingEventsResponse")
        messages = sub(response, M, "ResponseMessages")
        if error:
            message = error_message(messages, "GetStreamingEvents", error, "No such subscription.")
            return envelope(response)
        message = success_message(messages, "GetStreamingEvents")
        if batches:
            notifications = sub(message, M, "Notifications")
            now = stamp(datetime.now(timezone.utc))
            for subscription_id, events in batches:
                notification = sub(notifications, M, "Notification")
                sub(notification, T, "SubscriptionId", subscription_id)
                for _, kind, item_id, folder_id in events:
                    event = sub(notification, T, _EVENTS.get(kind, "ModifiedEvent"))
                    sub(event, T, "TimeStamp", now)
                    sub(event, T, "ItemId", Id=item_id, ChangeKey="CK1")
                    sub(event, T, "ParentFolderId", Id=folder_id, ChangeKey="CK1")
        sub(message, M, "ConnectionStatus", "Closed" if closed else "OK")
        return envelope(response)
