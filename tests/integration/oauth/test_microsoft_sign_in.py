"""Microsoft sign-in with the real msal against the local identity platform
(TLS, OpenID discovery, tenant paths): the auth code flow answered by
form_post to a loopback listener, refused codes, Graph syncing on a saved
grant whose rotated refresh tokens are kept, and a revoked grant."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from oauth_support import OWNER, Clock, connected, microsoft_client, microsoft_options, sign_in

from commlink.auth import (
    LoopbackReceiver,
    authorization_url,
    exchange_code,
    microsoft_identity,
    scopes_for,
    token_source,
)
from commlink.auth.errors import GrantRefused
from commlink.auth.microsoft import microsoft_refresher
from commlink.credentials import Secret
from commlink.errors import AuthError, ProviderError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.registry import connect
from commlink.records import ChannelStatus
from commlink.stores import MemoryTokenStore
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import GraphServer
from commlink.testing.oauth import MicrosoftOAuthServer
from commlink.testing.oauth_browser import consent, deliver

pytestmark = pytest.mark.integration

GRAPH = scopes_for("graph", identity="microsoft")


def _mail(n: int) -> bytes:
    date = format_datetime(datetime(2026, 3, 2, 9, n, tzinfo=timezone.utc))
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <g{n}@test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    ).encode()


def _channel() -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel("alice-graph", "u-alice", ChannelKind.MAIL, "graph", settings)


def test_msal_signs_in_through_a_loopback_redirect(microsoft_oauth: MicrosoftOAuthServer) -> None:
    client = microsoft_client(microsoft_oauth)
    with LoopbackReceiver() as receiver:
        request = authorization_url(client, GRAPH, receiver.redirect_uri)
        receiver.expect(request.state)
        answer = consent(request.url, ca_file=microsoft_oauth.ca_file)
        assert answer.method == "POST"  # form_post: the code stays out of URLs
        status, page = deliver(answer)
        assert status == 200
        assert "close this window" in page
        params = receiver.wait(5)
    token = exchange_code(client, request, params)
    assert token.account == OWNER
    assert token.refresh_token is not None
    assert "https://graph.microsoft.com/Mail.Read" in token.scopes
    assert microsoft_oauth.token_requests == [
        {"grant_type": "authorization_code", "client_auth": "client_secret_post"}
    ]
    sent = microsoft_oauth.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256"
    assert sent["response_mode"] == "form_post"


def test_a_public_client_signs_in_without_a_secret(microsoft_oauth: MicrosoftOAuthServer) -> None:
    microsoft_oauth.register_client("desktop-app", None, ["http://127.0.0.1/"])
    client = microsoft_client(microsoft_oauth, public=True)
    client = type(client)(client.identity, "desktop-app", None, ca_file=client.ca_file)
    token = connected(client, GRAPH, ca_file=microsoft_oauth.ca_file)
    assert token.account == OWNER
    assert microsoft_oauth.token_requests[-1]["client_auth"] == "none"


def test_a_wrong_verifier_and_a_reused_code_are_refused(
    microsoft_oauth: MicrosoftOAuthServer,
) -> None:
    client = microsoft_client(microsoft_oauth)
    request, params = sign_in(client, GRAPH, ca_file=microsoft_oauth.ca_file)
    tampered = type(request)(
        request.url, request.state, Secret("x" * 43), request.redirect_uri, request.scopes,
        request.provider, {**request.flow, "code_verifier": "x" * 43},
    )  # fmt: skip
    with pytest.raises(AuthError, match=r"Microsoft refused the saved grant \(invalid_grant\)"):
        exchange_code(client, tampered, params)
    # the code was spent by that attempt: the genuine verifier cannot use it again
    with pytest.raises(AuthError, match="invalid_grant"):
        exchange_code(client, request, params)


def test_a_code_is_single_use(microsoft_oauth: MicrosoftOAuthServer) -> None:
    client = microsoft_client(microsoft_oauth)
    request, params = sign_in(client, GRAPH, ca_file=microsoft_oauth.ca_file)
    assert exchange_code(client, request, params).account == OWNER
    with pytest.raises(AuthError, match="invalid_grant"):
        exchange_code(client, request, params)


def test_an_unknown_tenant_is_a_provider_error(microsoft_oauth: MicrosoftOAuthServer) -> None:
    client = microsoft_client(microsoft_oauth)
    elsewhere = type(client)(
        microsoft_identity("nowhere.example", authority_host=microsoft_oauth.root_url),
        client.client_id,
        client.client_secret,
        ca_file=client.ca_file,
    )
    with pytest.raises(ProviderError, match="Microsoft sign-in"):
        authorization_url(elsewhere, GRAPH, "http://127.0.0.1:8765/")


def test_graph_syncs_on_a_saved_grant_and_keeps_rotated_refresh_tokens(
    microsoft_oauth: MicrosoftOAuthServer,
    graph_api: GraphServer,
    sql_store: SqlStore,
    unique_key: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    graph_api.mail.add_message(_mail(1))
    tokens = sql_store.token_store()
    key = unique_key("graph")
    first = connected(microsoft_client(microsoft_oauth), GRAPH, ca_file=microsoft_oauth.ca_file)
    tokens.save_token(key, first)
    channel = _channel()
    options = microsoft_options(microsoft_oauth, base_url=graph_api.base_url, token_key=key)
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())

    provider = connect(channel, options, token_store=tokens)
    try:
        assert engine.run(channel, provider).imported == 1
        # the hour is up: Graph answers 401, msal refreshes, Azure AD rotates
        microsoft_oauth.expire_access_tokens()
        graph_api.mail.add_message(_mail(2))
        report = engine.run(channel, provider)
    finally:
        provider.close()
    assert report.errors == []
    assert report.imported == 1
    saved = tokens.load_token(key)
    assert saved is not None
    assert saved.refresh_token is not None
    assert saved.refresh_token != first.refresh_token
    assert saved.account == OWNER
    # the refresh asked for the grant's Graph scopes only (msal adds its own)
    assert microsoft_oauth.token_requests[-1]["grant_type"] == "refresh_token"
    with pytest.raises(GrantRefused, match="invalid_grant"):
        microsoft_refresher(microsoft_client(microsoft_oauth))(first)

    secrets = {
        first.access_token.reveal(),
        first.refresh_token.reveal() if first.refresh_token else "",
    }
    secrets |= {saved.access_token.reveal(), saved.refresh_token.reveal()}
    secrets.add(microsoft_oauth.client_secret or "")
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert not [s for s in secrets if s and s in logged]


def test_a_revoked_grant_makes_the_channel_fail_auth(
    microsoft_oauth: MicrosoftOAuthServer, graph_api: GraphServer
) -> None:
    tokens = MemoryTokenStore()
    channel = _channel()
    tokens.save_token(
        channel.id,
        connected(microsoft_client(microsoft_oauth), GRAPH, ca_file=microsoft_oauth.ca_file),
    )
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    provider = connect(
        channel, microsoft_options(microsoft_oauth, base_url=graph_api.base_url), token_store=tokens
    )
    try:
        assert engine.run(channel, provider).errors == []
        microsoft_oauth.revoke(OWNER)
        engine.run(channel, provider)
    finally:
        provider.close()
    state = store.channel_state(channel.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "Microsoft refused the saved grant (invalid_grant): reconnect the account" in (
        state.last_error
    )


def test_a_refresh_token_rotated_by_another_process_is_picked_up(
    microsoft_oauth: MicrosoftOAuthServer, clock: Clock
) -> None:
    client = microsoft_client(microsoft_oauth)
    tokens = MemoryTokenStore()
    tokens.save_token("k", connected(client, GRAPH, ca_file=microsoft_oauth.ca_file))
    ours = token_source(client, tokens, "k", clock=clock.utc)
    theirs = token_source(client, tokens, "k", clock=clock.utc)
    clock.advance(3600)
    real = microsoft_refresher(client, clock=clock.utc)

    def racing(grant):  # type: ignore[no-untyped-def]
        # another process rotates the refresh token while ours is on its way
        theirs.token()
        return real(grant)

    ours._refresher = racing
    fresh = ours.token()
    saved = tokens.load_token("k")
    assert saved is not None
    assert fresh == saved.access_token.reveal()
    grants = [r for r in microsoft_oauth.token_requests if r["grant_type"] == "refresh_token"]
    assert len(grants) == 2  # ours was refused (spent), theirs counted; no third
