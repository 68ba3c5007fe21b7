"""``with`` logs out and drops connections of providers talking to real
servers: IMAP on Dovecot, CalDAV on Radicale, and the Google and EWS APIs
on their local servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from commlink.providers.caldav.provider import CalDavProvider
from commlink.providers.google.calendar import GoogleCalendarProvider
from commlink.providers.google.gmail import GmailProvider
from commlink.providers.imap.connection import ImapConnection, ImapSettings
from commlink.providers.imap.provider import ImapProvider
from commlink.providers.microsoft.exchange import (
    ExchangeCalendarProvider,
    ExchangeMailProvider,
    connect,
)
from commlink.testing.dovecot import DovecotServer
from commlink.testing.google import GoogleApiServer
from commlink.testing.imap_account import ImapAccount
from commlink.testing.microsoft import EwsServer
from commlink.testing.provider_conformance import OWNER
from server_fixtures import ServerPool, unique_name

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


def fail_within(resource: AbstractContextManager[object]) -> None:
    """Enter ``resource`` and raise ``Boom`` inside it."""
    with resource:
        raise Boom


@pytest.fixture
def account(dovecot: DovecotServer) -> Iterator[ImapAccount]:
    account = ImapAccount(dovecot, unique_name("cm"))
    try:
        yield account
    finally:
        account.close()


def _socket_closed(client: Any) -> bool:
    return bool(client._imap.sock.fileno() == -1)


def test_imap_provider_logs_out_on_exit(account: ImapAccount) -> None:
    provider: ImapProvider = account.new_provider()
    assert provider.folders()
    client = provider.conn.client
    assert client is not None
    with pytest.raises(Boom):
        fail_within(provider)
    assert provider.conn.client is None
    assert _socket_closed(client)


def test_imap_connection_logs_out_on_exit(account: ImapAccount, dovecot: DovecotServer) -> None:
    settings = ImapSettings(
        dovecot.host, dovecot.port, account.username, account.password, ssl=False
    )
    conn = ImapConnection(settings)
    client = conn.open()
    with pytest.raises(Boom):
        fail_within(conn)
    assert conn.client is None
    assert _socket_closed(client)


def test_caldav_provider_closes_its_http_clients(servers: ServerPool) -> None:
    user = servers.dav("radicale").account("cm")
    user.make_calendar("work", "Work")
    provider = CalDavProvider(user.url, username=user.username, password=user.password)
    assert provider.calendars()
    transport = provider._http
    held = list(transport._clients.values())
    assert held
    with pytest.raises(Boom):
        fail_within(provider)
    assert transport._clients == {}
    assert all(client.is_closed for client in held)


def _connections(service: Any) -> dict[str, Any]:
    connections: dict[str, Any] = service._http.http.connections
    return connections


def test_gmail_provider_drops_its_connections() -> None:
    with GoogleApiServer() as server:
        provider = GmailProvider(Credentials(token=server.token), api_endpoint=server.base_url)
        assert provider.folders()
        assert _connections(provider.service)
        with pytest.raises(Boom):
            fail_within(provider)
        assert not _connections(provider.service)


def test_google_calendar_provider_drops_its_connections() -> None:
    calendar = "owner@home.example"
    with GoogleApiServer(user=calendar) as server:
        server.calendar.add_calendar(calendar, calendar, "Owner", primary=True)
        provider = GoogleCalendarProvider(
            Credentials(token=server.token), api_endpoint=server.calendar_url
        )
        assert provider.calendars()
        assert _connections(provider.service)
        with pytest.raises(Boom):
            fail_within(provider)
        assert not _connections(provider.service)


@pytest.mark.parametrize("kind", ["mail", "calendar"])
def test_exchange_providers_close_their_sessions(kind: str) -> None:
    with EwsServer(user=OWNER, password="s3cret") as server:
        connection = connect(
            OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password="s3cret"
        )
        provider: ExchangeMailProvider | ExchangeCalendarProvider = (
            ExchangeMailProvider(connection)
            if kind == "mail"
            else ExchangeCalendarProvider(connection)
        )
        if isinstance(provider, ExchangeMailProvider):
            provider.folders()
        else:
            provider.calendars()
        assert connection.protocol._session_pool_size > 0
        with pytest.raises(Boom):
            fail_within(provider)
        assert connection.protocol._session_pool_size == 0
