"""Connecting to Exchange: explicit settings (no probing), OAuth2 bearer
tokens, settings errors, unreachable servers and streaming notifications."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from ews_support import OWNER, PASSWORD
from ews_support import mail as message

from commlink.errors import AuthError, ConfigError, TransientError
from commlink.model import ChannelKind, FolderKind
from commlink.providers.microsoft.exchange import (
    ExchangeCalendarProvider,
    ExchangeMailProvider,
    connect,
    from_options,
)
from commlink.testing.microsoft import EwsServer

pytestmark = pytest.mark.integration


def test_explicit_settings_send_only_the_providers_requests(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    folders = mail.folders()
    assert any(f.kind is FolderKind.INBOX for f in folders)
    # no version guessing, no auth-type probing, no autodiscover
    assert server.log == ["GetFolder", "FindFolder"]
    assert server.requests["unauthorized"] == 0
    assert mail.requests_sent == 2


def test_oauth2_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the local server speaks http
    with EwsServer(user=OWNER, token="token-1") as server:
        server.add_message("inbox", message(1))
        good = ExchangeMailProvider(
            connect(OWNER, service_endpoint=server.url, auth="oauth2", access_token="token-1")
        )
        assert {f.name for f in good.folders()} >= {"Inbox", "Sent Items"}
        good.close()
        bad = ExchangeMailProvider(
            connect(OWNER, service_endpoint=server.url, auth="oauth2", access_token="expired")
        )
        with pytest.raises(AuthError):
            bad.folders()
        bad.close()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"server": "mail.example", "auth": "kerberos", "username": "u", "password": "p"}, "auth"),
        ({"auth": "basic", "username": "u", "password": "p"}, "server"),
        ({"server": "mail.example", "auth": "ntlm"}, "username"),
        ({"server": "mail.example", "auth": "oauth2"}, "access_token"),
        ({"server": "mail.example", "version": "2003", "username": "u", "password": "p"},
         "version"),
        (
            {"service_endpoint": "http://mail.example/EWS/Exchange.asmx", "username": "u",
             "password": "p"},
            "service_endpoint",
        ),
    ],
)  # fmt: skip
def test_settings_errors(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        connect(OWNER, **settings)
    assert raised.value.field == field


@pytest.mark.parametrize(("version", "minor"), [("2016", 1), ("2019", 2), ("SE", 2), ("15.1.2", 1)])
def test_versions(version: str, minor: int) -> None:
    connection = connect(
        OWNER, server="mail.example", version=version, username="u", password="p", auth="ntlm"
    )
    build = connection.protocol.config.version.build
    assert (build.major_version, build.minor_version) == (15, minor)
    assert connection.protocol.service_endpoint == "https://mail.example/EWS/Exchange.asmx"
    connection.close()


def test_unreachable_server_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = ExchangeMailProvider(
        connect(
            OWNER,
            service_endpoint=f"http://127.0.0.1:{port}/EWS/Exchange.asmx",
            auth="basic",
            username=OWNER,
            password=PASSWORD,
        )
    )
    with pytest.raises(TransientError):
        provider.folders()
    provider.close()


def test_watch_is_off_unless_asked_for(mail: ExchangeMailProvider) -> None:
    scope = mail.scopes([f for f in mail.folders() if f.kind is FolderKind.INBOX])[0]
    assert mail.watch(scope) is None


def _streaming_provider(server: EwsServer) -> ExchangeMailProvider:
    server.subscriptions.stream_seconds = 0.5
    return ExchangeMailProvider(
        connect(
            OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=PASSWORD
        ),
        streaming=True,
        streaming_minutes=1,
    )


def test_streaming_notifications_wake_across_streams(server: EwsServer) -> None:
    provider = _streaming_provider(server)
    scope = provider.scopes([f for f in provider.folders() if f.kind is FolderKind.INBOX])[0]
    watch = provider.watch(scope)
    assert watch is not None

    def deliver() -> None:
        time.sleep(0.2)
        server.add_message("inbox", message(1))
        server.add_message("sentitems", message(2))  # another folder: no wake-up
        time.sleep(0.8)  # the first stream has closed by now
        server.add_message("inbox", message(3))

    sender = threading.Thread(target=deliver)
    sender.start()
    woken = 0
    with watch as events:
        for _ in events:
            woken += 1
            if woken == 2:
                break
    sender.join()
    assert woken == 2
    assert server.requests["GetStreamingEvents"] >= 2
    assert server.requests["Unsubscribe"] == 1
    provider.close()


def test_expired_subscription_ends_the_wake_ups(server: EwsServer) -> None:
    provider = _streaming_provider(server)
    scope = provider.scopes([f for f in provider.folders() if f.kind is FolderKind.INBOX])[0]
    watch = provider.watch(scope)
    assert watch is not None
    with watch as events:
        server.subscriptions.expire_all()
        assert list(events) == []  # the caller falls back to polling
    provider.close()


def test_the_server_enforces_the_distinguished_folder_names(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    # Exchange Server's schema has no "archive" distinguished folder: asking
    # for one fails the whole request, so the provider never does
    with pytest.raises(TransientError, match="ErrorSchemaValidation"):
        mail.sync.distinguished(["inbox", "archive"])
    kinds = {f.name: f.kind for f in mail.folders()}
    assert kinds["Archive"] is FolderKind.ARCHIVE


def test_providers_from_config_options(server: EwsServer) -> None:
    options = {
        "service_endpoint": server.url,
        "auth": "basic",
        "username": OWNER,
        "password": PASSWORD,
        "fetch_batch": "20",
        "streaming": "yes",
    }
    mail = from_options(ChannelKind.MAIL, options, email=OWNER)
    assert isinstance(mail, ExchangeMailProvider)
    assert (mail.fetch_batch, mail.streaming) == (20, True)
    assert any(f.kind is FolderKind.INBOX for f in mail.folders())
    calendar = from_options(ChannelKind.CALENDAR, options, email=OWNER)
    assert isinstance(calendar, ExchangeCalendarProvider)
    assert [c.name for c in calendar.calendars()] == ["Calendar"]
    with pytest.raises(ConfigError) as raised:
        from_options(ChannelKind.MAIL, {**options, "timeout": "soon"}, email=OWNER)
    assert raised.value.field == "timeout"
    mail.close()
    calendar.close()


def test_refused_subscription_is_a_provider_error(server: EwsServer) -> None:
    provider = _streaming_provider(server)
    scope = provider.scopes([f for f in provider.folders() if f.kind is FolderKind.INBOX])[0]
    watch = provider.watch(scope)
    assert watch is not None
    server.password = "changed"
    with pytest.raises(AuthError), watch:
        pass
    provider.close()
