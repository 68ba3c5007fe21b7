"""Helpers for the sign-in tests: clients and channel options for the local
authorization servers, a shared clock, and a consenting user."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from commlink.auth import (
    AuthorizationRequest,
    OAuthClient,
    authorization_url,
    exchange_code,
    google_identity,
    microsoft_identity,
)
from commlink.credentials import Secret
from commlink.records import OAuthToken
from commlink.testing.oauth import GoogleOAuthServer, MicrosoftOAuthServer
from commlink.testing.oauth_browser import consent

OWNER = "owner@home.example"
#: Any port on loopback matches the registered http://127.0.0.1/ (RFC 8252).
REDIRECT = "http://127.0.0.1:8765/"


class Clock:
    """A time the servers and the token sources share, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def google_client(server: GoogleOAuthServer) -> OAuthClient:
    identity = google_identity(
        authorization_endpoint=server.authorization_endpoint,
        token_endpoint=server.token_endpoint,
        revocation_endpoint=server.revocation_endpoint,
        issuer=server.issuer,
    )
    return OAuthClient(identity, server.client_id, Secret(server.client_secret or ""))


def google_options(server: GoogleOAuthServer, **extra: object) -> dict[str, object]:
    """Channel options for a Gmail/Calendar/IMAP channel signing in at ``server``."""
    return {
        "oauth": "google",
        "client_id": server.client_id,
        "client_secret": Secret(server.client_secret or ""),
        "auth_uri": server.authorization_endpoint,
        "token_uri": server.token_endpoint,
        "revoke_uri": server.revocation_endpoint,
        "issuer": server.issuer,
        **extra,
    }


def microsoft_client(server: MicrosoftOAuthServer, *, public: bool = False) -> OAuthClient:
    secret = None if public or server.client_secret is None else Secret(server.client_secret)
    return OAuthClient(
        microsoft_identity("common", authority_host=server.root_url),
        server.client_id,
        secret,
        ca_file=server.ca_file,
    )


def microsoft_options(server: MicrosoftOAuthServer, **extra: object) -> dict[str, object]:
    return {
        "oauth": "microsoft",
        "client_id": server.client_id,
        "client_secret": Secret(server.client_secret or ""),
        "tenant": server.tenant_domain,
        "authority_host": server.root_url,
        "oauth_ca_file": server.ca_file,
        **extra,
    }


def sign_in(
    client: OAuthClient, scopes: tuple[str, ...], *, ca_file: str | None = None
) -> tuple[AuthorizationRequest, dict[str, str]]:
    """Start a sign-in and let the (local) user consent: the request and the
    answer the browser would carry back (query or form_post fields)."""
    request = authorization_url(client, scopes, REDIRECT)
    answer = consent(request.url, ca_file=ca_file)
    assert answer.method in ("GET", "POST"), answer.page
    return request, answer.params


def connected(
    client: OAuthClient, scopes: tuple[str, ...], *, ca_file: str | None = None
) -> OAuthToken:
    """A grant for ``scopes``, as a user who consents gets it."""
    request, params = sign_in(client, scopes, ca_file=ca_file)
    return exchange_code(client, request, params)
