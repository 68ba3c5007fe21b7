"""Graph change notifications: subscriptions and the webhook side.

``GraphSubscriptions`` creates, renews and deletes subscriptions (Outlook
resources live at most 10,080 minutes, so renew before ``expires``). In the
host's webhook endpoint:

* a request with a ``validationToken`` query parameter is the handshake:
  answer ``validation_response(query)`` (200, ``text/plain``, the token);
* any other POST carries notifications: ``NotificationRouter.route(body)``
  checks each one's ``clientState`` and returns the channels to wake
  (``runner.wake(channel_id)``); notifications with a wrong secret are
  dropped and counted.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ....errors import InvalidInput
from .client import GraphClient
from .headers import parse_graph_time
from .mail import user_path

__all__ = [
    "MAX_OUTLOOK_LIFETIME",
    "GraphSubscriptions",
    "NotificationRouter",
    "Subscription",
    "Wake",
    "validation_response",
]

#: The longest an Outlook (mail, calendar) subscription may live.
MAX_OUTLOOK_LIFETIME = timedelta(minutes=10080)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen
class Subscription:
    """A Graph subscription as created or renewed."""

    id: str
    resource: str
    change_type: str
    notification_url: str
    expires: datetime
    #: the secret Graph echoes in each notification: never shown in ``repr``
    client_state: str = attrs.field(repr=False)

    def due(self, now: datetime, margin: timedelta = timedelta(hours=12)) -> bool:
        """Whether it should be renewed now (less than ``margin`` left)."""
        return self.expires - now <= margin


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _subscription(found: Mapping[str, Any], client_state: str) -> Subscription:
    expires = parse_graph_time(found.get("expirationDateTime"))
    if expires is None:
        raise InvalidInput("Graph returned a subscription without expirationDateTime")
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    return Subscription(
        str(found["id"]),
        str(found.get("resource") or ""),
        str(found.get("changeType") or ""),
        str(found.get("notificationUrl") or ""),
        expires,
        str(found.get("clientState") or client_state),
    )


class GraphSubscriptions:
    """Create, renew and delete subscriptions of one mailbox."""

    def __init__(
        self,
        client: GraphClient,
        *,
        user: str = "me",
        lifetime: timedelta = MAX_OUTLOOK_LIFETIME - timedelta(minutes=10),
        clock: Any = _utcnow,
    ) -> None:
        self.client = client
        self.user = user
        self.lifetime = min(lifetime, MAX_OUTLOOK_LIFETIME)
        self.clock = clock

    def folder_messages(self, folder_id: str) -> str:
        """The resource for the messages of one mail folder."""
        return f"{user_path(self.user).lstrip('/')}/mailFolders('{folder_id}')/messages"

    def events(self) -> str:
        """The resource for the mailbox's events."""
        return f"{user_path(self.user).lstrip('/')}/events"

    def create(
        self,
        resource: str,
        notification_url: str,
        *,
        change_type: str = "created,updated,deleted",
        client_state: str | None = None,
        lifecycle_url: str | None = None,
    ) -> Subscription:
        """Subscribe ``notification_url`` to ``resource``; Graph first calls the
        URL with a ``validationToken`` the host must echo."""
        state = client_state or secrets.token_urlsafe(24)
        body: dict[str, Any] = {
            "changeType": change_type,
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": _stamp(self.clock() + self.lifetime),
            "clientState": state,
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        reply = self.client.call("POST", "/subscriptions", body=body)
        return _subscription(reply.json, state)

    def renew(self, subscription: Subscription) -> Subscription:
        """Push the expiry out by ``lifetime`` from now."""
        body = {"expirationDateTime": _stamp(self.clock() + self.lifetime)}
        reply = self.client.call("PATCH", f"/subscriptions/{subscription.id}", body=body)
        return _subscription(reply.json, subscription.client_state)

    def delete(self, subscription_id: str) -> None:
        self.client.call("DELETE", f"/subscriptions/{subscription_id}")


def validation_response(query: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
    """The answer to Graph's validation request (status, headers, body), or
    ``None`` when ``query`` has no ``validationToken``."""
    token = query.get("validationToken")
    if isinstance(token, list | tuple):
        token = token[0] if token else None
    if token is None:
        return None
    return 200, {"Content-Type": "text/plain; charset=utf-8"}, str(token).encode("utf-8")


@attrs.frozen
class Wake:
    """A channel to wake because its resource changed."""

    channel_id: str
    resource: str
    change_type: str


class NotificationRouter:
    """Maps incoming notifications to channels after checking ``clientState``.

    ``add`` registers a subscription for a channel; ``route`` reads a
    notification POST body. ``rejected`` counts notifications dropped for
    an unknown subscription or a wrong secret.
    """

    def __init__(self) -> None:
        self._subscriptions: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.rejected = 0

    def add(self, subscription: Subscription, channel_id: str) -> None:
        with self._lock:
            self._subscriptions[subscription.id] = (subscription.client_state, channel_id)

    def remove(self, subscription_id: str) -> None:
        with self._lock:
            self._subscriptions.pop(subscription_id, None)

    def route(self, body: bytes | str | Mapping[str, Any]) -> Sequence[Wake]:
        """The channels to wake for a notification POST body (each once)."""
        try:
            payload = json.loads(body) if isinstance(body, bytes | str) else body
        except ValueError as exc:
            raise InvalidInput(f"not a Graph notification: {exc}") from exc
        values = payload.get("value") if isinstance(payload, Mapping) else None
        if not isinstance(values, list):
            raise InvalidInput("not a Graph notification: no value list")
        wakes: dict[str, Wake] = {}
        for note in values:
            if not isinstance(note, Mapping):
                self.rejected += 1
                continue
            with self._lock:
                known = self._subscriptions.get(str(note.get("subscriptionId") or ""))
            state = str(note.get("clientState") or "")
            if known is None or not hmac.compare_digest(known[0], state):
                self.rejected += 1
                continue
            channel_id = known[1]
            if channel_id not in wakes:
                wakes[channel_id] = Wake(
                    channel_id,
                    str(note.get("resource") or ""),
                    str(note.get("changeType") or note.get("lifecycleEvent") or ""),
                )
        return list(wakes.values())
