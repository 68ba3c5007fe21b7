"""Graph subscriptions behind the providers' ``PushSource`` methods.

One subscription per watched resource (a mail folder's messages, a
calendar's events) for ``created,updated,deleted``. Each gets a fresh
random ``clientState`` (kept as the subscription's ``secret``), the
configured ``notificationUrl`` and, when set, ``lifecycleNotificationUrl``.
Graph validates both URLs before it answers, so creating a subscription
takes as long as the host's endpoint needs to echo the token. Renewal is a
``PATCH`` of ``expirationDateTime`` (which also reauthorizes); a
subscription Graph no longer knows (404) is created anew. Outlook
resources live at most 10,080 minutes.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from ....credentials import Secret, is_loopback_host, redact_url
from ....errors import ConfigError, InvalidInput, NotFound, ProviderError
from ....records import PushSubscription
from .client import GraphClient
from .headers import parse_graph_time

__all__ = [
    "CHANGE_TYPES",
    "DEFAULT_LIFETIME",
    "GRAPH_PROVIDERS",
    "MAX_OUTLOOK_LIFETIME",
    "GraphPush",
]

#: The longest an Outlook (message, event, contact) subscription may live.
MAX_OUTLOOK_LIFETIME = timedelta(minutes=10080)
#: What is asked for: the maximum less a margin for clocks that disagree.
DEFAULT_LIFETIME = MAX_OUTLOOK_LIFETIME - timedelta(minutes=30)
CHANGE_TYPES = "created,updated,deleted"
#: ``PushSubscription.provider`` of the Graph providers' subscriptions.
GRAPH_PROVIDERS = frozenset({"graph", "graph-calendar"})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _endpoint(url: str, field: str) -> str:
    """Graph calls only https endpoints (http is let through for loopback,
    where a local server stands in for Graph)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    host = parts.hostname if parts is not None else None
    scheme = parts.scheme if parts is not None else ""
    if host and (scheme == "https" or (scheme == "http" and is_loopback_host(host))):
        return url
    raise ConfigError(f"must be an https URL: {redact_url(url)[:200]}", field=field)


class GraphPush:
    """Creates, renews and deletes the subscriptions of one mailbox.

    ``provider`` names the subscriptions' provider (``graph`` for mail,
    ``graph-calendar`` for calendars); ``account`` is the mailbox (empty
    for ``me``). Without ``notification_url`` nothing is watched.
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        provider: str,
        account: str = "",
        notification_url: str | None = None,
        lifecycle_url: str | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.client = client
        self.provider = provider
        self.account = account
        self.notification_url = notification_url or None
        self.lifecycle_url = lifecycle_url or None
        self.lifetime = min(lifetime, MAX_OUTLOOK_LIFETIME)
        self.clock = clock

    @property
    def configured(self) -> bool:
        """Whether a notification URL is set (else no resource is watched)."""
        return self.notification_url is not None

    def resource(self, root: str, collection: str, key: str, items: str) -> str:
        """``me/mailFolders('{id}')/messages`` and the like (quotes doubled
        as OData wants them)."""
        quoted = key.replace("'", "''")
        return f"{root.lstrip('/')}/{collection}('{quoted}')/{items}"

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        """Renew ``current`` (``PATCH``), or create a subscription when there is
        none or Graph no longer knows it."""
        if current is not None and current.resource == resource:
            try:
                return self._renew(current)
            except NotFound:
                pass  # lapsed or removed by Graph: a new one follows
        return self._create(channel_id, resource)

    def unsubscribe(self, subscription: PushSubscription) -> None:
        """``DELETE`` it; one Graph no longer knows is already gone."""
        with contextlib.suppress(NotFound):
            self.client.call("DELETE", f"/subscriptions/{quote(subscription.id, safe='')}")

    def _create(self, channel_id: str, resource: str) -> PushSubscription:
        if self.notification_url is None:
            raise ConfigError("no notification URL is configured for Graph", field="push_url")
        url = _endpoint(self.notification_url, "push_url")
        body: dict[str, Any] = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": url,
            "resource": resource,
            "expirationDateTime": _stamp(self.clock() + self.lifetime),
            "clientState": secrets.token_urlsafe(32),
        }
        if self.lifecycle_url is not None:
            body["lifecycleNotificationUrl"] = _endpoint(self.lifecycle_url, "push_lifecycle_url")
        try:
            reply = self.client.call("POST", "/subscriptions", body=body)
        except ProviderError as exc:
            if "ValidationError" not in str(exc):
                raise
            raise ProviderError(
                "Graph could not validate the push endpoint "
                f"{redact_url(url)[:200]}: it must answer a POST with a validationToken"
                " query parameter with 200, Content-Type text/plain and the decoded token"
                f" within 10 seconds ({exc})"
            ) from exc
        found = reply.json
        subscription_id = str(found.get("id") or "")
        if not subscription_id:
            raise InvalidInput("Graph created a subscription without an id")
        return PushSubscription(
            id=subscription_id,
            channel_id=channel_id,
            provider=self.provider,
            resource=resource,
            expires_at=self._expires(found),
            account=self.account,
            secret=Secret(str(body["clientState"])),
            data={"lifecycle": "yes" if self.lifecycle_url else "no"},
        )

    def _renew(self, current: PushSubscription) -> PushSubscription:
        body = {"expirationDateTime": _stamp(self.clock() + self.lifetime)}
        path = f"/subscriptions/{quote(current.id, safe='')}"
        reply = self.client.call("PATCH", path, body=body)
        return PushSubscription(
            id=current.id,
            channel_id=current.channel_id,
            provider=current.provider,
            resource=current.resource,
            expires_at=self._expires(reply.json),
            account=current.account,
            secret=current.secret,
            data=dict(current.data),
        )

    @staticmethod
    def _expires(found: Mapping[str, Any]) -> datetime:
        expires = parse_graph_time(found.get("expirationDateTime"))
        if expires is None:
            raise InvalidInput("Graph returned a subscription without expirationDateTime")
        return expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
