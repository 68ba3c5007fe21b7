"""Google sign-in with the real google-auth against the local authorization
server: the code flow with PKCE and state, what the server refuses, and
refreshes saved (and rotated) in the SQL token store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
import sqlalchemy as sa
from oauth_support import OWNER, REDIRECT, Clock, connected, google_client, sign_in

from commlink.auth import authorization_url, exchange_code, scopes_for, token_source
from commlink.auth.google import google_refresher
from commlink.auth.pkce import new_pkce
from commlink.credentials import Secret
from commlink.errors import AuthError
from commlink.stores import MemoryTokenStore, generate_token_key
from commlink.stores.sql import SqlStore
from commlink.testing.oauth import GoogleOAuthServer
from commlink.testing.oauth_browser import consent

pytestmark = pytest.mark.integration

GMAIL = scopes_for("gmail")


def test_a_user_connects_gmail_with_pkce_and_state(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    sent = parse_qs(urlsplit(request.url).query)
    assert sent["code_challenge_method"] == ["S256"]
    assert sent["state"] == [request.state]
    assert len(request.state) >= 43
    assert sent["access_type"] == ["offline"]
    assert "code_verifier" not in sent

    token = exchange_code(client, request, params)

    assert token.account == OWNER
    assert token.refresh_token is not None
    assert "https://www.googleapis.com/auth/gmail.readonly" in token.scopes
    assert "https://www.googleapis.com/auth/userinfo.email" in token.scopes
    assert google_oauth.token_requests == [
        {"grant_type": "authorization_code", "client_auth": "client_secret_post"}
    ]


def test_a_foreign_state_is_refused_before_the_code_is_spent(
    google_oauth: GoogleOAuthServer,
) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    with pytest.raises(AuthError, match="state mismatch"):
        exchange_code(client, request, {**params, "state": "forged"})
    assert google_oauth.token_requests == []
    assert exchange_code(client, request, params).account == OWNER


def test_a_wrong_code_verifier_is_refused(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    other = attrs.evolve(request, code_verifier=new_pkce().verifier)
    with pytest.raises(AuthError, match=r"Google refused the saved grant \(invalid_grant\)"):
        exchange_code(client, other, params)


def test_a_code_works_once_and_its_replay_revokes_the_grant(
    google_oauth: GoogleOAuthServer,
) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    first = exchange_code(client, request, params)
    with pytest.raises(AuthError, match="invalid_grant"):
        exchange_code(client, request, params)
    # RFC 6749 §4.1.2: what the code gave is taken back
    store = MemoryTokenStore()
    store.save_token("k", first)
    with pytest.raises(AuthError, match="reconnect the account"):
        token_source(client, store, "k").refresh()


def test_a_code_expires_after_a_minute(google_oauth: GoogleOAuthServer, clock: Clock) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    clock.advance(61)
    with pytest.raises(AuthError, match="invalid_grant"):
        exchange_code(client, request, params)


def test_unknown_clients_and_redirects_are_not_redirected_to(
    google_oauth: GoogleOAuthServer,
) -> None:
    client = google_client(google_oauth)
    stranger = attrs.evolve(client, client_id="someone-else")
    answer = consent(authorization_url(stranger, GMAIL, REDIRECT).url)
    assert (answer.status, answer.method) == (401, "")
    elsewhere = authorization_url(client, GMAIL, "https://attacker.example/cb")
    answer = consent(elsewhere.url)
    assert (answer.status, answer.method) == (400, "")
    assert "redirect_uri_mismatch" in answer.page


def test_a_declined_consent_tells_the_user(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    google_oauth.deny_next()
    request, params = sign_in(client, GMAIL)
    assert params["error"] == "access_denied"
    assert params["state"] == request.state
    with pytest.raises(AuthError, match="declined"):
        exchange_code(client, request, params)


def test_a_wrong_client_secret_is_refused(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    request, params = sign_in(client, GMAIL)
    wrong = attrs.evolve(client, client_secret=Secret("not-the-secret"))
    with pytest.raises(AuthError, match="invalid_client"):
        exchange_code(wrong, request, params)


def test_a_partial_grant_keeps_what_was_granted(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    wanted = scopes_for("gmail") + scopes_for("google-calendar", sign_in=False)
    google_oauth.grant_only(["openid", "email", *scopes_for("gmail", sign_in=False)])
    token = connected(client, wanted)
    assert "https://www.googleapis.com/auth/calendar.readonly" not in token.scopes
    assert "https://www.googleapis.com/auth/gmail.readonly" in token.scopes


def test_refreshes_and_rotations_are_saved_sealed(
    sql_store: SqlStore, unique_key: Callable[[str], str], clock: Clock
) -> None:
    with GoogleOAuthServer(OWNER, clock=clock, rotate_refresh_tokens=True) as server:
        client = google_client(server)
        sealing = generate_token_key()
        tokens = sql_store.token_store(sealing)
        key = unique_key("gmail")
        first = connected(client, GMAIL)
        tokens.save_token(key, first)
        source = token_source(client, tokens, key, clock=clock.utc)
        assert source.token() == first.access_token.reveal()  # still valid: no refresh
        assert server.token_requests[-1]["grant_type"] == "authorization_code"

        clock.advance(3600)  # the hour is up
        second_access = source.token()
        saved = tokens.load_token(key)
        assert saved is not None
        assert saved.access_token.reveal() == second_access
        assert saved.refresh_token is not None
        assert saved.refresh_token != first.refresh_token
        assert saved.account == OWNER
        assert saved.scopes == first.scopes

        # the spent refresh token is refused at the server (rotation)
        with pytest.raises(Exception, match="invalid_grant"):
            google_refresher(client)(first)

        # another process on the same database picks up the rotated grant
        elsewhere = token_source(client, sql_store.token_store(sealing), key, clock=clock.utc)
        assert elsewhere.token() == second_access
        with sql_store.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT access_token, refresh_token FROM commlink_oauth_tokens WHERE key=:k"
                ),
                {"k": key},
            ).one()
        assert second_access not in row.access_token
        assert row.access_token.startswith("fernet:")
        assert saved.refresh_token.reveal() not in row.refresh_token


def test_many_threads_refresh_once(google_oauth: GoogleOAuthServer, clock: Clock) -> None:
    client = google_client(google_oauth)
    store = MemoryTokenStore()
    store.save_token("k", connected(client, GMAIL))
    source = token_source(client, store, "k", clock=clock.utc)
    stale = source.token()
    clock.advance(3600)
    barrier = threading.Barrier(8)
    got: list[str] = []

    def ask() -> None:
        barrier.wait()
        got.append(source.refresh(stale))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 1
    assert stale not in got
    refreshes = [r for r in google_oauth.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1


def test_a_revoked_grant_asks_the_user_to_reconnect(google_oauth: GoogleOAuthServer) -> None:
    client = google_client(google_oauth)
    store = MemoryTokenStore()
    store.save_token("k", connected(client, GMAIL))
    google_oauth.revoke(OWNER)
    with pytest.raises(AuthError) as raised:
        token_source(client, store, "k").refresh()
    assert str(raised.value) == (
        "Google refused the saved grant (invalid_grant): reconnect the account"
    )


def test_disconnect_revokes_at_google(google_oauth: GoogleOAuthServer) -> None:
    from commlink.auth import disconnect

    client = google_client(google_oauth)
    store = MemoryTokenStore()
    grant = connected(client, GMAIL)
    store.save_token("k", grant)
    disconnect(client, store, "k")
    assert store.load_token("k") is None
    assert google_oauth.token_info(grant.access_token.reveal()) is None
    disconnect(client, store, "k")  # nothing left: not an error
