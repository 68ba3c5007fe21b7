"""Gmail and Google Calendar channels on a saved Google grant, built by the
provider registry: syncs, a refresh after the hour, a revoked grant, and the
``gmail.metadata`` scope for metadata-only channels."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from oauth_support import OWNER, connected, google_client, google_options

from commlink.auth import scopes_for, scopes_for_channels
from commlink.model import Channel, ChannelKind, ChannelSettings, Visibility
from commlink.providers.registry import connect
from commlink.records import ChannelStatus
from commlink.stores import MemoryTokenStore
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.runner import Runner
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer
from commlink.testing.oauth import GoogleOAuthServer

pytestmark = pytest.mark.integration


def _mail(n: int) -> bytes:
    date = format_datetime(datetime(2026, 3, 2, 9, n, tzinfo=timezone.utc))
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <m{n}@test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    ).encode()


def _channel(provider: str, visibility: Visibility = Visibility.FULL) -> Channel:
    kind = ChannelKind.CALENDAR if provider == "google-calendar" else ChannelKind.MAIL
    settings = ChannelSettings(
        owner=OWNER, org_domains=frozenset({"home.example"}), visibility=visibility
    )
    return Channel(f"alice-{provider}", "u-alice", kind, provider, settings)


def _options(oauth: GoogleOAuthServer, api: GoogleApiServer, endpoint: str) -> dict[str, object]:
    return google_options(
        oauth, api_endpoint=endpoint, quota_units_per_minute=None, token_key="alice-google"
    )


def test_a_connected_account_syncs_refreshes_and_fails_auth_once_revoked(
    google_oauth: GoogleOAuthServer,
    google_api: GoogleApiServer,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    for n in range(3):
        google_api.gmail.add_message(OWNER, _mail(n))
    tokens = MemoryTokenStore()
    mail, calendar = _channel("gmail"), _channel("google-calendar")
    wanted = scopes_for_channels(
        [(mail.provider, mail.settings.visibility), (calendar.provider, Visibility.FULL)],
        identity="google",
    )
    grant = connected(google_client(google_oauth), wanted)
    tokens.save_token("alice-google", grant)
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    options = _options(google_oauth, google_api, google_api.base_url)

    provider = connect(mail, options, token_store=tokens)
    request.addfinalizer(provider.close)
    assert engine.run(mail, provider).imported == 3

    # the same grant serves the calendar channel
    google_api.calendar.add_calendar(OWNER, OWNER, "Alice", primary=True)
    cal_options = _options(google_oauth, google_api, google_api.calendar_url)
    calendars = connect(calendar, cal_options, token_store=tokens)
    request.addfinalizer(calendars.close)
    assert [c.id for c in calendars.calendars()] == [OWNER]  # type: ignore[union-attr]

    # an hour later the API refuses the old token: one refresh, saved
    google_oauth.expire_access_tokens()
    google_api.gmail.add_message(OWNER, _mail(7))
    report = engine.run(mail, provider)
    assert report.errors == []
    assert report.imported == 1
    saved = tokens.load_token("alice-google")
    assert saved is not None
    assert saved.access_token != grant.access_token
    assert saved.refresh_token == grant.refresh_token  # Google keeps refresh tokens
    refreshes = [r for r in google_oauth.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1

    # the user removes the app's access: the channel needs the user
    google_oauth.revoke(OWNER)
    report = engine.run(mail, provider)
    state = store.channel_state(mail.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "Google refused the saved grant (invalid_grant): reconnect the account" in (
        state.last_error
    )
    assert report.errors

    secrets = {
        grant.access_token.reveal(),
        grant.refresh_token.reveal() if grant.refresh_token else "",
        saved.access_token.reveal(),
        google_oauth.client_secret or "",
    }
    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    )
    assert caplog.records  # the refresh was logged, without a token
    assert not [s for s in secrets if s and s in logged]
    assert not [s for s in secrets if s and s in state.last_error]


def test_a_metadata_channel_asks_for_and_uses_only_gmail_metadata(
    google_oauth: GoogleOAuthServer, google_api: GoogleApiServer
) -> None:
    channel = _channel("gmail", Visibility.METADATA)
    wanted = scopes_for("gmail", Visibility.METADATA)
    assert "https://www.googleapis.com/auth/gmail.metadata" in wanted
    assert "https://www.googleapis.com/auth/gmail.readonly" not in wanted
    for n in range(2):
        google_api.gmail.add_message(OWNER, _mail(n))
    tokens = MemoryTokenStore()
    grant = connected(google_client(google_oauth), wanted)
    assert "https://www.googleapis.com/auth/gmail.readonly" not in grant.scopes
    tokens.save_token(channel.id, grant)
    provider = connect(
        channel,
        google_options(google_oauth, api_endpoint=google_api.base_url, quota_units_per_minute=None),
        token_store=tokens,
    )
    try:
        report = SyncEngine(MemoryStore(), InMemoryDirectory()).run(channel, provider)
    finally:
        provider.close()
    assert report.imported == 2
    # what gmail.metadata allows: format=metadata, no search, no raw or full bodies
    calls = google_api.calls(r"/gmail/v1/")
    assert calls
    assert not [c for c in calls if "format=raw" in c or "format=full" in c or "q=" in c]
    assert google_api.calls(r"format=metadata")


def test_a_channel_without_a_saved_grant_fails_auth(
    google_oauth: GoogleOAuthServer, google_api: GoogleApiServer
) -> None:
    channel = _channel("gmail")
    store = MemoryStore()
    engine = SyncEngine(store, InMemoryDirectory())
    options = google_options(google_oauth, api_endpoint=google_api.base_url)
    runner = Runner(engine, lambda c: connect(c, options, token_store=MemoryTokenStore()))
    runner.run_once([channel])
    state = store.channel_state(channel.id)
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "no Google account is connected" in state.last_error
