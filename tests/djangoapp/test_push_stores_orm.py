"""``DjangoTokenStore`` and ``DjangoSubscriptionStore`` on SQLite and
PostgreSQL: the behaviour the reference SQL stores have."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from commlink.contrib.django import models
from commlink.contrib.django.store_testing import clear_store
from commlink.contrib.django.tokens import DjangoSubscriptionStore, DjangoTokenStore
from commlink.credentials import Secret
from commlink.errors import ConfigError, StoreError
from commlink.ports import SubscriptionStore, TokenStore
from commlink.records import OAuthToken, PushSubscription
from commlink.stores import generate_token_key

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["default", "postgres"])
def using(request: pytest.FixtureRequest) -> str:
    alias = "default" if request.param == "default" else request.getfixturevalue("pg_alias")
    clear_store(alias)
    return alias


def _token(access: str, refresh: str | None = "r1") -> OAuthToken:
    return OAuthToken(
        access_token=Secret(access),
        refresh_token=Secret(refresh) if refresh else None,
        expires_at=T0 + timedelta(hours=1),
        scopes=("openid", "https://www.googleapis.com/auth/gmail.readonly"),
        account="ana@example.com",
    )


def test_tokens_round_trip_and_rotate(using: str) -> None:
    tokens: TokenStore = DjangoTokenStore(generate_token_key(), using=using)
    assert isinstance(tokens, TokenStore)
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
    tokens.delete_token("ch1")
    assert tokens.load_token("ch1") is None
    assert tokens.load_token("ch2") == _token("b", None)


def test_sealed_tokens_are_not_readable_without_the_key(using: str) -> None:
    key = generate_token_key()
    DjangoTokenStore(key.encode(), using=using).save_token(
        "ch1", _token("access-secret-1", "refresh-secret-1")
    )
    row = models.OAuthGrant.objects.using(using).get(key="ch1")
    raw = " ".join(str(v) for v in (row.access_token, row.refresh_token, row.account))
    assert "access-secret-1" not in raw
    assert "refresh-secret-1" not in raw
    assert raw.startswith("fernet:")
    with pytest.raises(StoreError, match="pass the token key"):
        DjangoTokenStore(using=using).load_token("ch1")
    with pytest.raises(StoreError, match="does not open"):
        DjangoTokenStore(generate_token_key(), using=using).load_token("ch1")
    loaded = DjangoTokenStore(Secret(key), using=using).load_token("ch1")
    assert loaded is not None
    assert loaded.refresh_token == Secret("refresh-secret-1")
    assert "secret-1" not in repr(loaded)


def test_a_bad_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="not a Fernet key"):
        DjangoTokenStore("not-a-key")


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


def test_subscriptions_filter_replace_and_delete(using: str) -> None:
    subs: SubscriptionStore = DjangoSubscriptionStore(using)
    assert isinstance(subs, SubscriptionStore)
    subs.save_subscription(_sub("s1", "ch1", timedelta(days=2)))
    subs.save_subscription(_sub("s2", "ch1", timedelta(hours=1), resourceId="r-2"))
    gmail = _sub(
        "gmail:Ana@Example.com",
        "ch2",
        timedelta(days=7),
        provider="gmail",
        account="Ana@Example.com",
    )
    subs.save_subscription(gmail)
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
    assert subs.subscription("gmail:Ana@Example.com") == gmail
