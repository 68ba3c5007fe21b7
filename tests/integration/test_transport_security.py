"""Credentials only over TLS and only to the configured host: IMAP and CalDAV
refuse plaintext logins to non-loopback hosts, the Graph client sends its
token only to its base URL's origin, Google endpoints must be https."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from commlink.credentials import is_loopback_host
from commlink.errors import ConfigError, CursorExpired, ProviderError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.caldav.provider import CalDavProvider
from commlink.providers.imap.provider import ImapProvider
from commlink.providers.microsoft.graph import GraphClient, GraphMailProvider, StaticToken
from commlink.providers.registry import connect
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("mail.example.com", False),
        ("10.0.0.1", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# -- IMAP ------------------------------------------------------------------------


def test_imap_refuses_a_plaintext_login_to_a_remote_host() -> None:
    with pytest.raises(ConfigError, match="without TLS") as caught:
        ImapProvider("mail.example.com", username="u", password="pw-1234", ssl=False)
    assert caught.value.field == "ssl"
    with pytest.raises(ConfigError):
        ImapProvider("mail.example.com", username="u", oauth2_token="tok-1234", ssl=False)


def test_imap_plaintext_is_allowed_explicitly_on_loopback_or_with_tls() -> None:
    ImapProvider("mail.example.com", username="u", password="p", ssl=False, allow_plaintext=True)
    ImapProvider("mail.example.com", username="u", password="p", ssl=False, starttls=True)
    ImapProvider("mail.example.com", username="u", password="p")
    for host in ("localhost", "127.0.0.1", "::1"):
        ImapProvider(host, username="u", password="p", ssl=False)


def _channel(provider: str, kind: ChannelKind) -> Channel:
    return Channel("c", "u", kind, provider, ChannelSettings(owner=OWNER))


def test_imap_registry_option() -> None:
    options: dict[str, Any] = {
        "host": "mail.example.com",
        "username": "u",
        "password": "p",
        "ssl": False,
    }
    with pytest.raises(ConfigError):
        connect(_channel("imap", ChannelKind.MAIL), options)
    with pytest.raises(ConfigError):  # only a real boolean counts
        connect(_channel("imap", ChannelKind.MAIL), {**options, "allow_plaintext": "yes"})
    provider = connect(_channel("imap", ChannelKind.MAIL), {**options, "allow_plaintext": True})
    assert isinstance(provider, ImapProvider)
    assert provider.settings.allow_plaintext


# -- CalDAV ----------------------------------------------------------------------


def test_caldav_refuses_credentials_over_http_to_a_remote_host() -> None:
    with pytest.raises(ConfigError, match="plain http"):
        CalDavProvider("http://dav.example.com/", username="u", password="pw-1234")
    with pytest.raises(ConfigError, match="plain http") as caught:
        CalDavProvider("http://u:pw-in-url-1234@dav.example.com/")
    assert "pw-in-url-1234" not in str(caught.value)
    CalDavProvider("http://dav.example.com/", username="u", password="p", allow_plaintext=True)
    CalDavProvider("https://dav.example.com/", username="u", password="p")
    CalDavProvider("http://dav.example.com/")  # no credentials to protect
    CalDavProvider("http://localhost:5232/", username="u", password="p")


def test_caldav_url_credentials_are_taken_out_of_the_url() -> None:
    provider = CalDavProvider("https://bob:p%40ss-1234@dav.example.com/cal")
    assert provider.url == "https://dav.example.com/cal/"
    assert provider._http.username == "bob"
    assert provider._http.password == "p@ss-1234"
    explicit = CalDavProvider("https://bob:url-pw@dav.example.com/", password="given-pw")
    assert explicit._http.password == "given-pw"


def test_caldav_errors_never_show_url_credentials() -> None:
    from commlink.errors import TransientError

    provider = CalDavProvider("http://bob:secret-pw-9876@127.0.0.1:9/", timeout=2)
    with pytest.raises(TransientError) as caught:
        provider.calendars()
    assert "secret-pw-9876" not in str(caught.value)
    assert "secret-pw-9876" not in repr(caught.value)
    provider.close()


# -- Graph -----------------------------------------------------------------------


def test_graph_base_url_must_be_https_unless_loopback() -> None:
    with pytest.raises(ConfigError):
        GraphClient(StaticToken("t"), base_url="http://graph.example.com/v1.0")
    GraphClient(StaticToken("t"), base_url="http://127.0.0.1:1/v1.0").close()
    GraphClient(StaticToken("t")).close()


class _Recording:
    """An httpx stand-in: answers a page whose nextLink points elsewhere."""

    def __init__(self, next_link: str) -> None:
        self.next_link = next_link
        self.sent: list[tuple[str, dict[str, str]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.sent.append((url, dict(kwargs.get("headers") or {})))
        body = {"value": [], "@odata.nextLink": self.next_link}
        return httpx.Response(200, json=body)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1.0/me/messages?$skip=10",
        "http://graph.microsoft.com/v1.0/me/messages?$skip=10",  # downgraded
        "https://graph.microsoft.com:8443/v1.0/me/messages",
        "https://graph.microsoft.com.evil.example/v1.0/me/messages",
    ],
)
def test_graph_never_sends_the_token_to_another_origin(link: str) -> None:
    http = _Recording(link)
    client = GraphClient(StaticToken("bearer-secret-1"), http=http)
    pages = client.pages("/me/messages")
    next(pages)
    with pytest.raises(ProviderError, match="refusing to send the Graph token"):
        next(pages)
    assert [url for url, _ in http.sent] == ["https://graph.microsoft.com/v1.0/me/messages"]


def test_graph_follows_links_on_its_own_origin() -> None:
    http = _Recording("https://GRAPH.microsoft.com:443/v1.0/me/messages?$skip=10")
    client = GraphClient(StaticToken("t"), http=http)
    pages = client.pages("/me/messages")
    next(pages)
    next(pages)
    assert len(http.sent) == 2
    assert http.sent[1][1]["Authorization"] == "Bearer t"


def test_graph_stored_delta_link_to_another_host_expires(server: GraphServer) -> None:
    provider = GraphMailProvider(
        GraphClient(StaticToken(server.token), base_url=server.base_url), user=OWNER
    )
    try:
        inbox = next(f for f in provider.folders() if f.name.lower() == "inbox")
        scope = provider.scopes([inbox])[0]
        before = server.requests
        foreign = server.base_url.replace("127.0.0.1", "127.0.0.2")
        with pytest.raises(CursorExpired):
            provider.changes(scope, f"{foreign}/me/mailFolders/x/messages/delta?$deltatoken=1")
        with pytest.raises(CursorExpired):
            provider.changes(scope, "https://evil.example/delta?$deltatoken=1")
        assert server.requests == before
    finally:
        provider.close()


@pytest.fixture
def server() -> Any:
    with GraphServer(user=OWNER) as running:
        yield running


# -- Google ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"api_endpoint": "http://gmail.example.com/"},
        {"api_endpoint": "https://user:pw@gmail.example.com/"},
        {"token_uri": "http://oauth.example.com/token"},
    ],
)
def test_google_endpoints_must_be_https_unless_loopback(options: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        connect(_channel("gmail", ChannelKind.MAIL), {"token": "t", **options})


def test_google_loopback_endpoints_are_allowed() -> None:
    provider = connect(
        _channel("gmail", ChannelKind.MAIL),
        {
            "token": "t",
            "api_endpoint": "http://127.0.0.1:1/",
            "token_uri": "http://127.0.0.1:1/token",
        },
    )
    provider.close()
