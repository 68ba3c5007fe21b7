"""Credentials never leak: a sync of each provider against its local server,
once with good credentials and once with failing ones (a wrong password, a
revoked token), with every logger at DEBUG.

Known secret strings (passwords, access and refresh tokens, client secrets,
and the base64 forms a Basic ``Authorization`` header carries) must appear in
none of: commlink's own log lines (captured *without* the redacting filter:
they must be clean by themselves), the log text of every logger after
``install_log_redaction()``, the errors raised, the report's errors,
``store.channel_state(...).last_error``, and the ``repr`` of the provider
objects and of the ``commlink.cli.config`` objects they were built from.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from commlink.cli.config import ChannelConfig, Config, parse_config
from commlink.credentials import RedactingFilter, install_log_redaction
from commlink.model import ChannelKind
from commlink.providers.registry import connect
from commlink.records import ChannelStatus
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotServer, dovecot_binary
from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import EwsServer, GraphServer
from commlink.testing.radicale import RadicaleServer

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"

IMAP_PASSWORD = "imap-pw-Q7x9Zk2v"
IMAP_WRONG = "imap-wrong-pw-M3n8"
DAV_PASSWORD = "dav-pw-R4t8Wm1c"
DAV_WRONG = "dav-wrong-pw-J6k2"
EWS_PASSWORD = "ews-pw-H5j2Lp8d"
EWS_WRONG = "ews-wrong-pw-B7y4"
GOOGLE_TOKEN = "ya29.google-access-K3v7Qe"
GOOGLE_REFRESH = "1//google-refresh-N8c4Px"
GOOGLE_CLIENT_SECRET = "GOCSPX-google-secret-T2m6"
GRAPH_TOKEN = "eyJ0.graph-access-B9d3Hs"
GRAPH_REFRESH = "0.AAA-graph-refresh-F6s1Ur"
GRAPH_CLIENT_SECRET = "graph-client-secret-W5q7Ny"


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _forms(user: str, *passwords: str) -> list[str]:
    """The passwords and the Basic credentials made of them."""
    return [p for password in passwords for p in (password, _basic(user, password))]


def _mail(n: int) -> bytes:
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: Mon, 02 Mar 2026 09:{n:02d}:00 +0000\r\nMessage-ID: <m{n}@test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello {n}\r\n"
    ).encode()


# -- capture -------------------------------------------------------------------


class Capture:
    """commlink's records without any filter; every logger's after redaction."""

    def __init__(self) -> None:
        self.own = io.StringIO()
        self.all = io.StringIO()
        self.errors: list[str] = []
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.own_handler = logging.StreamHandler(self.own)
        self.own_handler.setFormatter(formatter)
        self.all_handler = logging.StreamHandler(self.all)
        self.all_handler.setFormatter(formatter)

    def exception(self, exc: BaseException) -> None:
        seen: BaseException | None = exc
        while seen is not None:  # the error and what caused it
            self.errors += [str(seen), repr(seen)]
            seen = seen.__cause__ or seen.__context__

    def report(self, report: SyncReport) -> None:
        self.errors += report.errors

    def texts(self) -> dict[str, str]:
        return {
            "commlink's own log lines": self.own.getvalue(),
            "log text after the filter": self.all.getvalue(),
            "errors": "\n".join(self.errors),
        }


@pytest.fixture
def capture() -> Iterator[Capture]:
    found = Capture()
    root = logging.getLogger()
    own = logging.getLogger("commlink")
    old_level = root.level
    root.setLevel(logging.DEBUG)
    own.addHandler(found.own_handler)  # handled before the root's handlers filter
    root.addHandler(found.all_handler)
    redaction = install_log_redaction()
    try:
        yield found
    finally:
        for handler in root.handlers:
            handler.removeFilter(redaction)
        root.removeHandler(found.all_handler)
        own.removeHandler(found.own_handler)
        root.setLevel(old_level)


def assert_clean(capture: Capture, secrets: list[str], *extra: tuple[str, str]) -> None:
    texts = {**capture.texts(), **dict(extra)}
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {where}"


# -- the sync ------------------------------------------------------------------


def _config(tmp_path: Path, provider: str, kind: ChannelKind, **options: Any) -> Config:
    return parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'store.sqlite'}"},
            "channels": [
                {
                    "id": f"ch-{provider}",
                    "user": "u-owner",
                    "provider": provider,
                    "kind": kind.value,
                    "owner": OWNER,
                    "org_domains": ["home.example"],
                    "options": options,
                }
            ],
        }
    )


def _engine(store: SqlStore) -> SyncEngine:
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    return SyncEngine(store, directory, batch_size=50)


def sync(
    capture: Capture,
    config: Config,
    store: SqlStore,
    *,
    options: Mapping[str, Any] | None = None,
    provider: Any = None,
) -> tuple[SyncReport, list[str]]:
    """One engine step through the registry (or with ``provider``); returns the
    report and the texts to check: last_error and the reprs."""
    item: ChannelConfig = config.channels[0]
    engine = _engine(store)
    if provider is None:
        try:
            provider = connect(item.channel, options or item.options)
        except Exception as exc:
            capture.exception(exc)
            report = engine.connect_failed(item.channel, exc)
            capture.report(report)
            state = store.channel_state(item.channel.id)
            return report, [state.last_error if state else "", repr(config)]
    try:
        report = engine.run(item.channel, provider)
        for call in ("folders", "calendars"):  # a direct call raises what the engine recorded
            method = getattr(provider, call, None)
            if method is not None and report.errors:
                try:
                    method()
                except Exception as exc:
                    capture.exception(exc)
    finally:
        provider.close()
    capture.report(report)
    state = store.channel_state(item.channel.id)
    shown = [
        state.last_error if state else "",
        repr(config),
        repr(item),
        repr(provider),
        repr(vars(provider)) if hasattr(provider, "__dict__") else "",
        repr(getattr(provider, "settings", "")),
    ]
    return report, shown


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield sql
    sql.close()


def _check(capture: Capture, secrets: list[str], good: list[str], bad: list[str]) -> None:
    named = [(f"shown {n}", text) for n, text in enumerate(good + bad)]
    assert_clean(capture, secrets, *named)


# -- IMAP ------------------------------------------------------------------------


@pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed")
def test_imap(capture: Capture, store: SqlStore, tmp_path: Path) -> None:
    with DovecotServer(username="owner", password=IMAP_PASSWORD) as server:
        server.deliver("INBOX", [_mail(1), _mail(2)])
        options = {"host": "127.0.0.1", "port": server.port, "ssl": False, "username": "owner"}
        config = _config(tmp_path, "imap", ChannelKind.MAIL, password=IMAP_PASSWORD, **options)
        report, good = sync(capture, config, store)
        assert report.errors == []
        assert report.imported >= 2
        wrong = _config(tmp_path, "imap", ChannelKind.MAIL, password=IMAP_WRONG, **options)
        report, bad = sync(capture, wrong, store)
        assert report.errors
        assert store.channel_state("ch-imap").status is ChannelStatus.FAILED_AUTH  # type: ignore[union-attr]
    _check(capture, _forms("owner", IMAP_PASSWORD, IMAP_WRONG), good, bad)


# -- CalDAV ----------------------------------------------------------------------


def test_caldav_with_credentials_in_the_url(
    capture: Capture, store: SqlStore, tmp_path: Path
) -> None:
    pytest.importorskip("radicale")
    with RadicaleServer(tmp_path / "radicale", username="owner", password=DAV_PASSWORD) as server:
        account = server.account
        account.make_calendar("work", "Work")
        account.put(
            "work",
            "a.ics",
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
            "DTSTAMP:20260101T000000Z\r\nDTSTART:20260302T100000Z\r\nDURATION:PT1H\r\n"
            f"SUMMARY:Meeting\r\nORGANIZER:mailto:{OWNER}\r\n"
            "ATTENDEE:mailto:ann@client.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        url = f"http://owner:{DAV_PASSWORD}@127.0.0.1:{server.port}/"
        config = _config(tmp_path, "caldav", ChannelKind.CALENDAR, url=url)
        report, good = sync(capture, config, store)
        assert report.errors == []
        assert report.imported >= 1
        wrong_url = f"http://owner:{DAV_WRONG}@127.0.0.1:{server.port}/"
        wrong = _config(tmp_path, "caldav", ChannelKind.CALENDAR, url=wrong_url)
        report, bad = sync(capture, wrong, store)
        assert report.errors
    _check(capture, _forms("owner", DAV_PASSWORD, DAV_WRONG), good, bad)


# -- Exchange (EWS) ---------------------------------------------------------------


def test_exchange(capture: Capture, store: SqlStore, tmp_path: Path) -> None:
    logging.getLogger("exchangelib").setLevel(logging.DEBUG)
    with EwsServer(user=OWNER, password=EWS_PASSWORD) as server:
        server.add_message("inbox", _mail(1))
        options = {"service_endpoint": server.url, "auth": "basic", "username": OWNER}
        config = _config(tmp_path, "exchange", ChannelKind.MAIL, password=EWS_PASSWORD, **options)
        report, good = sync(capture, config, store)
        assert report.errors == []
        assert report.imported >= 1
        wrong = _config(tmp_path, "exchange", ChannelKind.MAIL, password=EWS_WRONG, **options)
        report, bad = sync(capture, wrong, store)
        assert report.errors
    _check(capture, _forms(OWNER, EWS_PASSWORD, EWS_WRONG), good, bad)


# -- Gmail and Google Calendar ----------------------------------------------------

GOOGLE_SECRETS = [GOOGLE_TOKEN, GOOGLE_REFRESH, GOOGLE_CLIENT_SECRET]


def _google_options(server: GoogleApiServer, endpoint: str) -> dict[str, Any]:
    return {
        "token": GOOGLE_TOKEN,
        "refresh_token": GOOGLE_REFRESH,
        "client_id": "client-id.apps.googleusercontent.com",
        "client_secret": GOOGLE_CLIENT_SECRET,
        "token_uri": server.base_url.rstrip("/") + "/token",
        "api_endpoint": endpoint,
    }


def test_gmail(capture: Capture, store: SqlStore, tmp_path: Path) -> None:
    with GoogleApiServer(user=OWNER, token=GOOGLE_TOKEN) as server:
        server.gmail.add_message(OWNER, _mail(1))
        config = _config(
            tmp_path, "gmail", ChannelKind.MAIL, **_google_options(server, server.base_url)
        )
        report, good = sync(capture, config, store)
        assert report.errors == []
        assert report.imported >= 1
        server.revoke_token()  # and the refresh at token_uri fails
        server.gmail.add_message(OWNER, _mail(2))
        report, bad = sync(capture, config, store)
        assert report.errors
    _check(capture, GOOGLE_SECRETS, good, bad)


def test_google_calendar(capture: Capture, store: SqlStore, tmp_path: Path) -> None:
    with GoogleApiServer(user=OWNER, token=GOOGLE_TOKEN) as server:
        server.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True)
        server.calendar.add_event(
            OWNER,
            {
                "summary": "Meeting",
                "start": {"dateTime": "2026-03-02T10:00:00Z"},
                "end": {"dateTime": "2026-03-02T11:00:00Z"},
                "organizer": {"email": OWNER, "self": True},
                "attendees": [{"email": "ann@client.example", "responseStatus": "accepted"}],
            },
        )
        options = _google_options(server, server.calendar_url)
        config = _config(tmp_path, "google-calendar", ChannelKind.CALENDAR, **options)
        report, good = sync(capture, config, store)
        assert report.errors == []
        assert report.imported >= 1
        server.revoke_token()
        server.calendar.invalidate_sync_tokens()
        report, bad = sync(capture, config, store)
        assert report.errors
    _check(capture, GOOGLE_SECRETS, good, bad)


# -- Microsoft Graph ---------------------------------------------------------------

GRAPH_SECRETS = [GRAPH_TOKEN, GRAPH_REFRESH, GRAPH_CLIENT_SECRET]


class _App:
    """Answers like msal for a refresh-token grant (msal itself talks to Azure AD)."""

    def __init__(self) -> None:
        self.revoked = False

    def get_accounts(self) -> list[dict[str, str]]:
        return []

    def acquire_token_by_refresh_token(
        self, refresh_token: str, scopes: list[str]
    ) -> dict[str, Any]:
        assert refresh_token == GRAPH_REFRESH
        if self.revoked:
            return {"error": "invalid_grant", "error_description": "AADSTS700082: expired"}
        return {"access_token": GRAPH_TOKEN, "refresh_token": GRAPH_REFRESH}


def test_graph(capture: Capture, store: SqlStore, tmp_path: Path) -> None:
    from commlink.providers.microsoft.graph import (
        GraphClient,
        GraphMailProvider,
        RefreshTokenSource,
    )

    app = _App()
    with GraphServer(user=OWNER, token=GRAPH_TOKEN) as server:
        server.mail.add_message(_mail(1))
        options = {
            "refresh_token": GRAPH_REFRESH,
            "client_id": "graph-client-id",
            "client_secret": GRAPH_CLIENT_SECRET,
            "base_url": server.base_url,
            "user": OWNER,
        }
        config = _config(tmp_path, "graph", ChannelKind.MAIL, **options)

        def provider() -> GraphMailProvider:
            tokens = RefreshTokenSource(
                "graph-client-id",
                GRAPH_REFRESH,
                client_credential=GRAPH_CLIENT_SECRET,
                app=app,
            )
            return GraphMailProvider(GraphClient(tokens, base_url=server.base_url), user=OWNER)

        report, good = sync(capture, config, store, provider=provider())
        assert report.errors == []
        assert report.imported >= 1
        server.revoke_token()
        app.revoked = True
        server.mail.add_message(_mail(2))
        report, bad = sync(capture, config, store, provider=provider())
        assert report.errors
    _check(capture, GRAPH_SECRETS, good, bad)


def test_the_capture_sees_unredacted_commlink_lines(capture: Capture) -> None:
    """The check is not vacuous: commlink's handler has no redacting filter."""
    logging.getLogger("commlink.test").warning("password=%s", "visible-value-1234")
    logging.getLogger("thirdparty.test").warning("Authorization: Basic %s", "c2VjcmV0OnZhbHVl")
    assert "visible-value-1234" in capture.own.getvalue()
    assert "visible-value-1234" not in capture.all.getvalue()
    assert "c2VjcmV0OnZhbHVl" not in capture.all.getvalue()
    assert not any(isinstance(f, RedactingFilter) for f in capture.own_handler.filters)
