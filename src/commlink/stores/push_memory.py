"""In-memory ``TokenStore`` and ``SubscriptionStore`` (tests, single processes)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from ..records import OAuthToken, PushSubscription

__all__ = ["MemorySubscriptionStore", "MemoryTokenStore", "matches"]


class MemoryTokenStore:
    """OAuth grants in a dict; gone with the process."""

    def __init__(self) -> None:
        self._tokens: dict[str, OAuthToken] = {}
        self._lock = threading.Lock()

    def load_token(self, key: str) -> OAuthToken | None:
        with self._lock:
            return self._tokens.get(key)

    def save_token(self, key: str, token: OAuthToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def delete_token(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def matches(
    sub: PushSubscription,
    channel_id: str | None,
    provider: str | None,
    account: str | None,
    expiring_before: datetime | None,
) -> bool:
    """Whether ``sub`` passes every filter given (``SubscriptionStore.subscriptions``)."""
    return (
        (channel_id is None or sub.channel_id == channel_id)
        and (provider is None or sub.provider == provider)
        and (account is None or sub.account.lower() == account.lower())
        and (expiring_before is None or sub.expires_at < expiring_before)
    )


class MemorySubscriptionStore:
    """Push subscriptions in a dict; gone with the process."""

    def __init__(self) -> None:
        self._subs: dict[str, PushSubscription] = {}
        self._lock = threading.Lock()

    def save_subscription(self, subscription: PushSubscription) -> None:
        with self._lock:
            self._subs[subscription.id] = subscription

    def subscription(self, subscription_id: str) -> PushSubscription | None:
        with self._lock:
            return self._subs.get(subscription_id)

    def subscriptions(
        self,
        *,
        channel_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        expiring_before: datetime | None = None,
    ) -> Sequence[PushSubscription]:
        with self._lock:
            subs = list(self._subs.values())
        found = [s for s in subs if matches(s, channel_id, provider, account, expiring_before)]
        return sorted(found, key=lambda s: (s.expires_at, s.id))

    def delete_subscription(self, subscription_id: str) -> None:
        with self._lock:
            self._subs.pop(subscription_id, None)
