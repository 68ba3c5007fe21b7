"""IMAP with XOAUTH2 on a saved grant: a private Dovecot checks each access
token at the local Google server's ``tokeninfo`` endpoint (Dovecot's
``oauth2`` passdb), so a login succeeds only with a token that is valid
there and then. A reconnect after the hour asks the token source again and
gets a refreshed token; a revoked grant fails the channel's auth."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from oauth_support import OWNER, Clock, connected, google_client, google_options

from commlink.auth import scopes_for, token_source
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.imap.provider import ImapProvider
from commlink.providers.registry import connect
from commlink.records import ChannelStatus
from commlink.stores import MemoryTokenStore
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotServer, dovecot_binary
from commlink.testing.oauth import GoogleOAuthServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

IMAP_SCOPES = scopes_for("imap", identity="google")


@pytest.fixture(scope="module")
def module_clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def oauth(module_clock: Clock) -> Iterator[GoogleOAuthServer]:
    with GoogleOAuthServer(OWNER, clock=module_clock) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(oauth: GoogleOAuthServer) -> Iterator[DovecotServer]:
    """Dovecot logging users in with XOAUTH2 tokens checked at ``oauth``."""
    folder = Path(tempfile.mkdtemp(prefix="dovecot-oauth2-"))
    settings = folder / "dovecot-oauth2.conf.ext"
    settings.write_text(f"tokeninfo_url = {oauth.tokeninfo_url}\nusername_attribute = email\n")
    extra = (
        "auth_mechanisms = plain login xoauth2 oauthbearer\n"
        "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
        f"  args = {settings}\n}}\n"
    )
    server = DovecotServer(username=OWNER, extra=extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _mail(n: int) -> bytes:
    date = format_datetime(datetime(2026, 3, 2, 9, n, tzinfo=timezone.utc))
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <x{n}-{id(object())}@test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    ).encode()


def _channel(channel_id: str) -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel(channel_id, "u-alice", ChannelKind.MAIL, "imap", settings)


def _logins(server: DovecotServer) -> int:
    return server.log_path.read_text(errors="replace").count("method=XOAUTH2")


def test_the_registry_logs_in_with_the_saved_grant(
    oauth: GoogleOAuthServer, dovecot: DovecotServer
) -> None:
    dovecot.deliver("INBOX", [_mail(1), _mail(2)], username=OWNER)
    tokens = MemoryTokenStore()
    channel = _channel("imap-registry")
    tokens.save_token(channel.id, connected(google_client(oauth), IMAP_SCOPES))
    options = google_options(oauth, host=dovecot.host, port=dovecot.port, username=OWNER, ssl=False)
    provider = connect(channel, options, token_store=tokens)
    try:
        report = SyncEngine(MemoryStore(), InMemoryDirectory()).run(channel, provider)
    finally:
        provider.close()
    assert report.errors == []
    assert report.imported >= 2


def test_a_reconnect_after_the_hour_logs_in_with_a_refreshed_token(
    oauth: GoogleOAuthServer, dovecot: DovecotServer, module_clock: Clock
) -> None:
    client = google_client(oauth)
    tokens = MemoryTokenStore()
    tokens.save_token("k", connected(client, IMAP_SCOPES))
    source = token_source(client, tokens, "k", clock=module_clock.utc)
    channel = _channel("imap-expiry")
    provider = ImapProvider(
        dovecot.host, dovecot.port, username=OWNER, oauth2_token=source, ssl=False
    )
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    before = _logins(dovecot)
    try:
        assert engine.run(channel, provider).errors == []
        provider.close()
        module_clock.advance(3700)  # Dovecot's tokeninfo now refuses the first token
        dovecot.deliver("INBOX", [_mail(3)], username=OWNER)
        report = engine.run(channel, provider)
    finally:
        provider.close()
    assert report.errors == []
    assert report.imported >= 1
    assert source.refreshes == 1
    assert _logins(dovecot) - before == 2


def test_a_revoked_grant_fails_the_imap_channel_auth(
    oauth: GoogleOAuthServer, dovecot: DovecotServer, module_clock: Clock
) -> None:
    client = google_client(oauth)
    tokens = MemoryTokenStore()
    tokens.save_token("k", connected(client, IMAP_SCOPES))
    source = token_source(client, tokens, "k", clock=module_clock.utc)
    channel = _channel("imap-revoked")
    provider = ImapProvider(
        dovecot.host, dovecot.port, username=OWNER, oauth2_token=source, ssl=False
    )
    store = MemoryStore()
    try:
        oauth.revoke(OWNER)
        module_clock.advance(3700)
        SyncEngine(store, InMemoryDirectory()).run(channel, provider)
    finally:
        provider.close()
    state = store.channel_state(channel.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "Google refused the saved grant (invalid_grant)" in state.last_error


def test_a_token_refused_before_its_time_is_replaced_once(
    oauth: GoogleOAuthServer, dovecot: DovecotServer, module_clock: Clock
) -> None:
    client = google_client(oauth)
    tokens = MemoryTokenStore()
    tokens.save_token("k", connected(client, IMAP_SCOPES))
    source = token_source(client, tokens, "k", clock=module_clock.utc)
    provider = ImapProvider(
        dovecot.host, dovecot.port, username=OWNER, oauth2_token=source, ssl=False
    )
    oauth.expire_access_tokens(OWNER)  # ended at the server; our clock says valid
    try:
        assert [f.name for f in provider.folders()]
    finally:
        provider.close()
    assert source.refreshes == 1
