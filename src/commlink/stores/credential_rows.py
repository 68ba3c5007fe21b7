"""What the token and subscription stores (SQL and the Django ORM) keep in
a row: an OAuth grant with its tokens sealed (see ``token_seal``), and a
push subscription with its secret as it is and its data as JSON."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from ..credentials import Secret, reveal
from ..records import OAuthToken, PushSubscription
from .token_seal import TokenSeal

__all__ = [
    "GrantRow",
    "SubscriptionRow",
    "grant_from_row",
    "grant_values",
    "subscription_from_row",
    "subscription_values",
]


class GrantRow(Protocol):
    """A stored grant: a database row or a model instance."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scopes: str
    account: str


class SubscriptionRow(Protocol):
    """A stored push subscription: a database row or a model instance."""

    id: str
    channel_id: str
    provider: str
    resource: str
    expires_at: datetime
    account: str
    secret: str | None
    data: str | None


def grant_values(token: OAuthToken, seal: TokenSeal, updated_at: datetime) -> dict[str, Any]:
    """The columns of a saved grant besides its key, the tokens sealed."""
    refresh = reveal(token.refresh_token)
    return {
        "access_token": seal.seal(token.access_token.reveal()),
        "refresh_token": seal.seal(refresh) if refresh else None,
        "expires_at": token.expires_at,
        "scopes": " ".join(token.scopes),
        "account": token.account,
        "updated_at": updated_at,
    }


def grant_from_row(row: GrantRow, seal: TokenSeal) -> OAuthToken:
    """The grant a row holds, its tokens opened (``StoreError`` when they
    were sealed with another key, or sealed while ``seal`` has none)."""
    refresh = row.refresh_token
    return OAuthToken(
        access_token=Secret(seal.open(row.access_token)),
        refresh_token=Secret(seal.open(refresh)) if refresh else None,
        expires_at=row.expires_at,
        scopes=tuple(row.scopes.split()),
        account=row.account,
    )


def subscription_values(subscription: PushSubscription) -> dict[str, Any]:
    """The columns of a saved push subscription besides its id."""
    return {
        "channel_id": subscription.channel_id,
        "provider": subscription.provider,
        "resource": subscription.resource,
        "expires_at": subscription.expires_at,
        "account": subscription.account,
        "secret": reveal(subscription.secret),
        "data": json.dumps(dict(subscription.data), sort_keys=True),
    }


def subscription_from_row(row: SubscriptionRow) -> PushSubscription:
    """The push subscription a row holds."""
    return PushSubscription(
        id=row.id,
        channel_id=row.channel_id,
        provider=row.provider,
        resource=row.resource,
        expires_at=row.expires_at,
        account=row.account,
        secret=Secret(row.secret) if row.secret else None,
        data=json.loads(row.data) if row.data else {},
    )
