"""Token and push-subscription stores: memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.credentials import Secret
from commlink.errors import StoreError
from commlink.ports import SubscriptionStore, TokenStore
from commlink.records import OAuthToken, PushSubscription
from commlink.stores import (
    MemorySubscriptionStore,
    MemoryTokenStore,
    SqlStore,
    generate_token_key,
)
from commlink.stores.sql_tables import oauth_tokens

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def sql_or_memory(request: pytest.FixtureRequest) -> Iterator[SqlStore | None]:
    if request.param == "memory":
        yield None
        return
    if request.param == "sqlite":
        store = SqlStore("sqlite://")
    else:
        engine: Engine = request.getfixturevalue("pg_engine")
        store = SqlStore(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM commlink_push_subscriptions")
            conn.exec_driver_sql("DELETE FROM commlink_oauth_tokens")
    yield store
    store.close()


@pytest.fixture
def tokens(sql_or_memory: SqlStore | None) -> TokenStore:
    if sql_or_memory is None:
        return MemoryTokenStore()
    return sql_or_memory.token_store(key=generate_token_key())


@pytest.fixture
def subs(sql_or_memory: SqlStore | None) -> SubscriptionStore:
    if sql_or_memory is None:
        return MemorySubscriptionStore()
    return sql_or_memory.subscription_store()


def _token(access: str, refresh: str | None = "r1") -> OAuthToken:
    return OAuthToken(
        access_token=Secret(access),
        refresh_token=Secret(refresh) if refresh else None,
        expires_at=T0 + timedelta(hours=1),
        scopes=("openid", "https://www.googleapis.com/auth/gmail.readonly"),
        account="ana@example.com",
    )


def test_tokens_round_trip_and_rotate(tokens: TokenStore) -> None:
    assert tokens.load_token("ch1") is None
    tokens.save_token("ch1", _token("a1"))
    assert tokens.load_token("ch1") == _token("a1")
    tokens.save_token("ch1", _token("a2", "r2"))  # a refresh rotated the refresh token
    loaded = tokens.load_token("ch1")
    assert loaded is not None
    assert loaded.refresh_token == Secret("r2")
    assert loaded.access_token == Secret("a2")
    tokens.save_token("ch2", _token("b", None))
    other = tokens.load_token("ch2")
    assert other is not None
    assert other.refresh_token is None
    tokens.delete_token("ch1")
    tokens.delete_token("ch1")  # gone already: not an error
    assert tokens.load_token("ch1") is None
    assert tokens.load_token("ch2") is not None


def test_token_expiry_margin() -> None:
    token = _token("a")
    assert not token.expired(T0)
    assert token.expired(T0 + timedelta(minutes=59, seconds=30))
    assert OAuthToken(Secret("")).expired(T0)
    assert not OAuthToken(Secret("x")).expired(T0)  # no expiry known


def test_sealed_tokens_are_not_readable_without_the_key() -> None:
    store = SqlStore("sqlite://")
    key = generate_token_key()
    store.token_store(key=key).save_token("ch1", _token("access-secret-1", "refresh-secret-1"))
    with store.engine.connect() as conn:
        raw = " ".join(str(v) for v in conn.execute(sa.select(oauth_tokens)).one())
    assert "access-secret-1" not in raw
    assert "refresh-secret-1" not in raw
    assert "fernet:" in raw
    with pytest.raises(StoreError, match="pass the token key"):
        store.token_store().load_token("ch1")
    with pytest.raises(StoreError, match="does not open"):
        store.token_store(key=generate_token_key()).load_token("ch1")
    loaded = store.token_store(key=Secret(key)).load_token("ch1")
    assert loaded is not None
    assert loaded.refresh_token == Secret("refresh-secret-1")
    assert "secret-1" not in repr(loaded)


def _sub(sub_id: str, channel: str, expires: timedelta, **kw: str) -> PushSubscription:
    return PushSubscription(
        id=sub_id,
        channel_id=channel,
        provider=kw.pop("provider", "graph"),
        resource=kw.pop("resource", f"me/mailFolders('{sub_id}')/messages"),
        expires_at=T0 + expires,
        account=kw.pop("account", ""),
        secret=Secret("client-state-" + sub_id),
        data=kw,
    )


def test_subscriptions_filter_replace_and_delete(subs: SubscriptionStore) -> None:
    subs.save_subscription(_sub("s1", "ch1", timedelta(days=2)))
    subs.save_subscription(_sub("s2", "ch1", timedelta(hours=1), resourceId="r-2"))
    subs.save_subscription(
        _sub(
            "gmail:Ana@Example.com",
            "ch2",
            timedelta(days=7),
            provider="gmail",
            account="Ana@Example.com",
        )
    )
    assert [s.id for s in subs.subscriptions()] == ["s2", "s1", "gmail:Ana@Example.com"]
    assert [s.id for s in subs.subscriptions(channel_id="ch1")] == ["s2", "s1"]
    assert [s.id for s in subs.subscriptions(expiring_before=T0 + timedelta(days=1))] == ["s2"]
    routed = subs.subscriptions(provider="gmail", account="ana@example.com")
    assert [s.channel_id for s in routed] == ["ch2"]
    assert subs.subscriptions(provider="graph", account="ana@example.com") == []
    found = subs.subscription("s2")
    assert found is not None
    assert found.data == {"resourceId": "r-2"}
    assert found.secret == Secret("client-state-s2")
    subs.save_subscription(_sub("s2", "ch1", timedelta(days=3)))  # renewed
    renewed = subs.subscription("s2")
    assert renewed is not None
    assert renewed.expires_at == T0 + timedelta(days=3)
    assert len(subs.subscriptions(channel_id="ch1")) == 2
    subs.delete_subscription("s1")
    subs.delete_subscription("s1")
    assert subs.subscription("s1") is None
    assert [s.id for s in subs.subscriptions(channel_id="ch1")] == ["s2"]


def test_subscriptions_survive_a_new_store_object(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/subs.db"
    first = SqlStore(url)
    first.subscription_store().save_subscription(_sub("s1", "ch1", timedelta(days=1)))
    first.close()
    again = SqlStore(url)
    assert [s.id for s in again.subscription_store().subscriptions()] == ["s1"]
    again.close()
