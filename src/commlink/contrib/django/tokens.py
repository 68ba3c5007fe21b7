"""OAuth grants and push subscriptions on the Django ORM: the ``TokenStore``
and ``SubscriptionStore`` ports in the app's tables.

``DjangoTokenStore`` seals tokens with Fernet (AES-128-CBC + HMAC-SHA256)
when given a key, in the same format as ``commlink.stores.SqlTokenStore``
(make one with ``commlink.stores.generate_token_key``); without a key they
are kept in the clear, which suits only a database encrypted at rest.
Subscription secrets only authenticate notifications and are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

from django.db import DatabaseError, transaction
from django.db.models.functions import Lower

from ...credentials import Secret
from ...errors import StoreError
from ...records import OAuthToken, PushSubscription
from ...stores.credential_rows import (
    grant_from_row,
    grant_values,
    subscription_from_row,
    subscription_values,
)
from ...stores.token_seal import TokenSeal
from . import models as m

__all__ = ["DjangoSubscriptionStore", "DjangoTokenStore"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _database(using: str, write: bool) -> Iterator[None]:
    try:
        if write:
            with transaction.atomic(using=using):
                yield
        else:
            yield
    except DatabaseError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise StoreError(f"{type(exc).__name__}: {first}"[:300]) from exc


class DjangoTokenStore:
    """A ``TokenStore`` on the ``commlink_orm_oauth_grant`` table.

    ``key`` (a Fernet key) seals the access and refresh tokens; a stored
    token sealed with another key, or sealed when no key is given, reads as
    ``StoreError`` rather than as garbage. ``using`` is the database alias.
    """

    def __init__(
        self,
        key: str | bytes | Secret | None = None,
        *,
        using: str = "default",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.using = using
        self._seal = TokenSeal(key)
        self._clock = clock

    def __repr__(self) -> str:
        sealed = "sealed" if self._seal.sealing else "unsealed"
        return f"DjangoTokenStore(using={self.using!r}, {sealed})"

    def load_token(self, key: str) -> OAuthToken | None:
        with _database(self.using, write=False):
            row = m.OAuthGrant.objects.using(self.using).filter(key=key).first()
        return None if row is None else grant_from_row(row, self._seal)

    def save_token(self, key: str, token: OAuthToken) -> None:
        grant = m.OAuthGrant(key=key, **grant_values(token, self._seal, self._clock()))
        with _database(self.using, write=True):
            m.OAuthGrant.objects.using(self.using).bulk_create(
                [grant],
                update_conflicts=True,
                unique_fields=["key"],
                update_fields=[
                    "access_token",
                    "refresh_token",
                    "expires_at",
                    "scopes",
                    "account",
                    "updated_at",
                ],
            )

    def delete_token(self, key: str) -> None:
        with _database(self.using, write=True):
            m.OAuthGrant.objects.using(self.using).filter(key=key).delete()


class DjangoSubscriptionStore:
    """A ``SubscriptionStore`` on the ``commlink_orm_push_subscription`` table."""

    def __init__(self, using: str = "default") -> None:
        self.using = using

    def __repr__(self) -> str:
        return f"DjangoSubscriptionStore(using={self.using!r})"

    def save_subscription(self, subscription: PushSubscription) -> None:
        row = m.PushSubscription(id=subscription.id, **subscription_values(subscription))
        with _database(self.using, write=True):
            m.PushSubscription.objects.using(self.using).bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["id"],
                update_fields=[
                    "channel_id",
                    "provider",
                    "resource",
                    "expires_at",
                    "account",
                    "secret",
                    "data",
                ],
            )

    def subscription(self, subscription_id: str) -> PushSubscription | None:
        with _database(self.using, write=False):
            row = m.PushSubscription.objects.using(self.using).filter(id=subscription_id).first()
        return None if row is None else subscription_from_row(row)

    def subscriptions(
        self,
        *,
        channel_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        expiring_before: datetime | None = None,
    ) -> Sequence[PushSubscription]:
        rows = m.PushSubscription.objects.using(self.using).order_by("expires_at", "id")
        if channel_id is not None:
            rows = rows.filter(channel_id=channel_id)
        if provider is not None:
            rows = rows.filter(provider=provider)
        if account is not None:
            rows = rows.annotate(account_key=Lower("account")).filter(account_key=account.lower())
        if expiring_before is not None:
            rows = rows.filter(expires_at__lt=expiring_before)
        with _database(self.using, write=False):
            return [subscription_from_row(row) for row in rows]

    def delete_subscription(self, subscription_id: str) -> None:
        with _database(self.using, write=True):
            m.PushSubscription.objects.using(self.using).filter(id=subscription_id).delete()
