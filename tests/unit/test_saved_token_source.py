"""``SavedTokenSource``: when it refreshes, what it saves, what it adopts
from other users of the grant, and how refusals reach the host. The
refresher here mints tokens the way a token endpoint answers (rotating the
refresh token); the real google-auth and msal refreshers are exercised in
tests/integration/oauth."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from commlink.auth import SavedTokenSource
from commlink.auth.errors import GrantRefused
from commlink.credentials import Secret
from commlink.errors import AuthError, TransientError
from commlink.records import OAuthToken
from commlink.stores import MemoryTokenStore

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


class Endpoint:
    """Issues access tokens for the current refresh token, rotating it."""

    def __init__(self) -> None:
        self.now = START
        self.counter = itertools.count(1)
        self.valid_refresh = "rt-0"
        self.calls = 0
        self.refuse: str | None = None

    def __call__(self, grant: OAuthToken) -> OAuthToken:
        self.calls += 1
        if self.refuse:
            raise GrantRefused(self.refuse, "", 400)
        assert grant.refresh_token is not None
        if grant.refresh_token.reveal() != self.valid_refresh:
            raise GrantRefused("invalid_grant", "spent", 400)
        n = next(self.counter)
        self.valid_refresh = f"rt-{n}"
        return OAuthToken(
            Secret(f"at-{n}"), Secret(self.valid_refresh), self.now + timedelta(hours=1)
        )


def _grant(expires: datetime = START + timedelta(hours=1)) -> OAuthToken:
    return OAuthToken(Secret("at-0"), Secret("rt-0"), expires, ("scope",), "ann@example.com")


def _source(store: MemoryTokenStore, endpoint: Endpoint) -> SavedTokenSource:
    return SavedTokenSource(store, "k", endpoint, provider="google", clock=lambda: endpoint.now)


def test_a_valid_token_is_served_without_refreshing() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    store.save_token("k", _grant())
    source = _source(store, endpoint)
    assert source.token() == "at-0"
    assert source() == "at-0"
    assert endpoint.calls == 0


def test_a_token_near_its_end_is_refreshed_and_everything_saved() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    store.save_token("k", _grant())
    source = _source(store, endpoint)
    endpoint.now += timedelta(minutes=56)  # within the five-minute margin
    assert source.token() == "at-1"
    saved = store.load_token("k")
    assert saved is not None
    assert saved.refresh_token == Secret("rt-1")
    assert saved.account == "ann@example.com"  # kept from the connection
    assert saved.scopes == ("scope",)
    assert source.token() == "at-1"
    assert endpoint.calls == 1


def test_a_refused_token_is_replaced_unless_someone_already_did() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    store.save_token("k", _grant())
    ours, theirs = _source(store, endpoint), _source(store, endpoint)
    assert ours.token() == theirs.token() == "at-0"
    assert theirs.refresh() == "at-1"  # the API refused at-0 for them
    assert ours.refresh("at-0") == "at-1"  # adopted: no second refresh
    assert endpoint.calls == 1
    assert ours.refresh("at-1") == "at-2"  # refused again: a real refresh
    assert endpoint.calls == 2


def test_a_rotation_made_elsewhere_meanwhile_is_used() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    store.save_token("k", _grant(START))
    theirs = _source(store, endpoint)

    def racing(grant: OAuthToken) -> OAuthToken:
        theirs.token()  # refreshes and saves rt-1 first; our rt-0 is now spent
        return endpoint(grant)

    ours = SavedTokenSource(store, "k", racing, provider="google", clock=lambda: endpoint.now)
    assert ours.token() == "at-1"
    assert endpoint.calls == 2


def test_refusals_reach_the_host_as_commlink_errors() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    source = _source(store, endpoint)
    with pytest.raises(AuthError, match="no Google account is connected for 'k'"):
        source.token()
    store.save_token("k", _grant(START))
    endpoint.refuse = "invalid_grant"
    with pytest.raises(AuthError, match=r"^Google refused the saved grant \(invalid_grant\)"):
        source.token()
    endpoint.refuse = "temporarily_unavailable"
    with pytest.raises(TransientError):
        source.token()
    store.save_token("k", OAuthToken(Secret("at-0"), None, START))
    endpoint.refuse = None
    with pytest.raises(AuthError, match="no refresh token"):
        source.token()


def test_the_source_shows_no_token() -> None:
    store, endpoint = MemoryTokenStore(), Endpoint()
    store.save_token("k", _grant())
    source = _source(store, endpoint)
    source.token()
    assert "at-0" not in repr(source)
    assert "rt-0" not in repr(source)
