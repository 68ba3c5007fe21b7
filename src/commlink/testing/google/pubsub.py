"""A local Cloud Pub/Sub, as far as Gmail push needs it: topics, push
subscriptions with OIDC authentication, and delivery.

A test plays the GCP administrator: ``create_push_subscription(topic,
endpoint, ...)`` says where a topic's messages go, with which audience and
as which service account. A push is a POST of the documented JSON
(``message.data`` base64, ``messageId``, ``publishTime``, their snake_case
twins, ``subscription``) with ``Authorization: Bearer <ID token>`` signed
by ``issuer``; anything but 102/200/201/202/204 is retried with back-off.
Any well-formed topic name exists; ``deny_gmail_publish`` takes away
Gmail's right to publish to one (the IAM grant an administrator forgets).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from datetime import datetime, timezone

import attrs

from .delivery import PushSender
from .errors import ApiError
from .oidc import OidcIssuer

__all__ = ["GMAIL_PUBLISHER", "PUSH_SERVICE_ACCOUNT", "PubSub", "PushSubscriptionConfig"]

#: The account Gmail publishes as; it needs Publisher on the topic.
GMAIL_PUBLISHER = "gmail-api-push@system.gserviceaccount.com"
#: The default service account push subscriptions authenticate as.
PUSH_SERVICE_ACCOUNT = "push-invoker@commlink-test.iam.gserviceaccount.com"

_TOPIC = re.compile(r"projects/[a-z][a-z0-9.:-]{0,62}/topics/[A-Za-z][\w.~+%-]{0,254}")
_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


@attrs.frozen
class PushSubscriptionConfig:
    """A push subscription: its name, topic, endpoint and authentication.
    ``audience`` ``None`` means the endpoint URL, as Pub/Sub defaults it."""

    name: str
    topic: str
    endpoint: str
    service_account: str | None = PUSH_SERVICE_ACCOUNT
    audience: str | None = None


def check_topic_name(topic: str) -> None:
    """Gmail's answer to a malformed ``topicName``."""
    if not _TOPIC.fullmatch(topic):
        raise ApiError(400, "invalidArgument", f"Invalid topicName does not match {topic!r}")


class PubSub:
    """Topics and push subscriptions; ``sender`` delivers."""

    def __init__(self, sender: PushSender) -> None:
        self.sender = sender
        self._issuer: OidcIssuer | None = None
        self._subscriptions: dict[str, PushSubscriptionConfig] = {}
        self._denied: set[str] = set()
        self._ids = itertools.count(int(datetime.now(timezone.utc).timestamp() * 1000))
        self._lock = threading.Lock()
        self.published: list[tuple[str, bytes]] = []

    @property
    def issuer(self) -> OidcIssuer:
        """The token signer (its RSA key is made on first use)."""
        with self._lock:
            if self._issuer is None:
                self._issuer = OidcIssuer()
            return self._issuer

    def create_push_subscription(
        self,
        topic: str,
        endpoint: str,
        *,
        name: str | None = None,
        service_account: str | None = PUSH_SERVICE_ACCOUNT,
        audience: str | None = None,
    ) -> str:
        """Push the topic's messages to ``endpoint``; ``service_account``
        ``None`` sends them without a token. Returns the subscription name."""
        check_topic_name(topic)
        project = topic.split("/")[1]
        with self._lock:
            full = f"projects/{project}/subscriptions/{name or f'push-{len(self._subscriptions)}'}"
            self._subscriptions[full] = PushSubscriptionConfig(
                full, topic, endpoint, service_account, audience
            )
        return full

    def delete_subscription(self, name: str) -> None:
        with self._lock:
            self._subscriptions.pop(name, None)

    def deny_gmail_publish(self, topic: str) -> None:
        """Gmail may no longer publish to ``topic`` (its watch gets 403)."""
        with self._lock:
            self._denied.add(topic)

    def check_gmail_may_publish(self, topic: str) -> None:
        check_topic_name(topic)
        with self._lock:
            denied = topic in self._denied
        if denied:
            raise ApiError(
                403,
                "forbidden",
                f"Error sending test message to Cloud PubSub {topic} : "
                "User not authorized to perform this action.",
            )

    def publish(self, topic: str, data: bytes) -> str:
        """Publish to a topic; every push subscription of it gets a POST."""
        with self._lock:
            message_id = str(next(self._ids))
            self.published.append((topic, data))
            targets = [s for s in self._subscriptions.values() if s.topic == topic]
        stamp = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        stamp = stamp.replace("+00:00", "Z")
        encoded = base64.b64encode(data).decode()
        for sub in targets:
            body = {
                "message": {
                    "data": encoded,
                    "messageId": message_id,
                    "message_id": message_id,
                    "publishTime": stamp,
                    "publish_time": stamp,
                },
                "subscription": sub.name,
            }
            headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
            if sub.service_account is not None:
                token = self.issuer.token(sub.audience or sub.endpoint, sub.service_account)
                headers["Authorization"] = f"Bearer {token}"
            payload = json.dumps(body).encode()
            self.sender.send(sub.endpoint, headers, payload, retry=lambda status: True)
        return message_id
