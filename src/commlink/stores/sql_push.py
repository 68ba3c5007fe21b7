"""OAuth grants and push subscriptions in the reference SQL database.

``SqlTokenStore`` keeps tokens sealed with Fernet (AES-128-CBC + HMAC-SHA256,
from ``cryptography``) when given a key, and in the clear otherwise: a host
whose database is not itself encrypted at rest should pass one (see
``generate_token_key``). Subscription secrets (Graph's ``clientState``, a
Google channel token) only authenticate notifications, so they are kept as
they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..credentials import Secret
from ..records import OAuthToken, PushSubscription
from .credential_rows import (
    grant_from_row,
    grant_values,
    subscription_from_row,
    subscription_values,
)
from .sql_schema import database_errors, engine_lock, ensure_schema, prepare_engine, store_error
from .sql_tables import oauth_tokens, push_subscriptions
from .token_seal import TokenSeal, generate_token_key

__all__ = ["SqlSubscriptionStore", "SqlTokenStore", "generate_token_key"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Sql:
    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self.engine = prepare_engine(engine)
        self._errors = database_errors(self.engine)
        if create:
            ensure_schema(self.engine)

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        try:
            with (
                engine_lock(self.engine),
                self.engine.connect().execution_options(commlink_write=write) as conn,
                conn.begin(),
            ):
                yield conn
        except self._errors as exc:
            raise store_error(exc) from exc


class SqlTokenStore(_Sql):
    """A ``TokenStore`` on the ``commlink_oauth_tokens`` table.

    ``key`` (a Fernet key, see ``generate_token_key``) seals the access and
    refresh tokens; a stored token sealed with another key, or sealed when
    no key is given, reads as ``StoreError`` rather than as garbage.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        key: str | Secret | None = None,
        clock: Callable[[], datetime] = _utcnow,
        create: bool = True,
    ) -> None:
        super().__init__(engine, create=create)
        self._seal = TokenSeal(key)
        self._clock = clock

    def load_token(self, key: str) -> OAuthToken | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(oauth_tokens).where(oauth_tokens.c.key == key)).first()
        return None if row is None else grant_from_row(row, self._seal)

    def save_token(self, key: str, token: OAuthToken) -> None:
        values = grant_values(token, self._seal, self._clock())
        with self._tx(write=True) as conn:
            done = conn.execute(
                sa.update(oauth_tokens).where(oauth_tokens.c.key == key).values(**values)
            )
            if not done.rowcount:
                conn.execute(sa.insert(oauth_tokens).values(key=key, **values))

    def delete_token(self, key: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(sa.delete(oauth_tokens).where(oauth_tokens.c.key == key))


class SqlSubscriptionStore(_Sql):
    """A ``SubscriptionStore`` on the ``commlink_push_subscriptions`` table."""

    def save_subscription(self, subscription: PushSubscription) -> None:
        t = push_subscriptions
        values = subscription_values(subscription)
        with self._tx(write=True) as conn:
            done = conn.execute(sa.update(t).where(t.c.id == subscription.id).values(**values))
            if not done.rowcount:
                conn.execute(sa.insert(t).values(id=subscription.id, **values))

    def subscription(self, subscription_id: str) -> PushSubscription | None:
        t = push_subscriptions
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(t).where(t.c.id == subscription_id)).first()
        return None if row is None else subscription_from_row(row)

    def subscriptions(
        self,
        *,
        channel_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        expiring_before: datetime | None = None,
    ) -> Sequence[PushSubscription]:
        t = push_subscriptions
        query = sa.select(t).order_by(t.c.expires_at, t.c.id)
        if channel_id is not None:
            query = query.where(t.c.channel_id == channel_id)
        if provider is not None:
            query = query.where(t.c.provider == provider)
        if account is not None:
            query = query.where(sa.func.lower(t.c.account) == account.lower())
        if expiring_before is not None:
            query = query.where(t.c.expires_at < expiring_before)
        with self._tx(write=False) as conn:
            return [subscription_from_row(r) for r in conn.execute(query)]

    def delete_subscription(self, subscription_id: str) -> None:
        t = push_subscriptions
        with self._tx(write=True) as conn:
            conn.execute(sa.delete(t).where(t.c.id == subscription_id))
