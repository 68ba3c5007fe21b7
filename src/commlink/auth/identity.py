"""Who signs the user in: the authorization servers of Google and Microsoft,
an app registered with one (``OAuthClient``), and one sign-in in progress
(``AuthorizationRequest``).

Every endpoint can be overridden: a sovereign cloud
(``login.microsoftonline.us``), a tenant, or a local server in tests.
Credentials are sent only over https, or plain http to a loopback address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from ..credentials import Secret, is_loopback_host, redact_url
from ..errors import ConfigError, InvalidInput

__all__ = [
    "GOOGLE_ISSUER",
    "MICROSOFT_LOGIN",
    "AuthorizationRequest",
    "IdentityProvider",
    "OAuthClient",
    "check_endpoint",
    "google_identity",
    "microsoft_identity",
    "redirect_params",
]

GOOGLE_ISSUER = "https://accounts.google.com"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"


def check_endpoint(url: str, field: str) -> str:
    """``url`` when it is https (or http to loopback) and carries no
    credentials; otherwise ``ConfigError``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"invalid URL {redact_url(url)}", field=field) from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError("must not carry credentials", field=field)
    loopback = is_loopback_host(parts.hostname)
    secure = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    if not parts.hostname or not secure:
        raise ConfigError(f"must be https (http only on loopback): {redact_url(url)}", field=field)
    return url


@attrs.frozen(slots=True)
class IdentityProvider:
    """An OAuth 2.0 / OpenID Connect authorization server.

    ``name`` is ``google`` or ``microsoft``. ``issuer`` is what ID tokens
    must name as ``iss`` (checked when set). ``authority`` is msal's
    authority URL (Microsoft: host and tenant).
    """

    name: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    issuer: str | None = None
    authority: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.name not in ("google", "microsoft"):
            raise ConfigError(f"unknown identity provider {self.name!r}", field="oauth")
        check_endpoint(self.authorization_endpoint, "authorization_endpoint")
        check_endpoint(self.token_endpoint, "token_endpoint")
        if self.revocation_endpoint:
            check_endpoint(self.revocation_endpoint, "revocation_endpoint")
        if self.authority:
            check_endpoint(self.authority, "authority")


def google_identity(
    *,
    authorization_endpoint: str = "https://accounts.google.com/o/oauth2/v2/auth",
    token_endpoint: str = "https://oauth2.googleapis.com/token",
    revocation_endpoint: str | None = "https://oauth2.googleapis.com/revoke",
    issuer: str | None = GOOGLE_ISSUER,
) -> IdentityProvider:
    """Google's authorization server (endpoints overridable)."""
    return IdentityProvider(
        "google", authorization_endpoint, token_endpoint, revocation_endpoint, issuer
    )


def microsoft_identity(
    tenant: str = "common", *, authority_host: str = MICROSOFT_LOGIN
) -> IdentityProvider:
    """The Microsoft identity platform (v2.0 endpoints) for ``tenant``:
    ``common``, ``organizations``, ``consumers``, a tenant id or domain.
    ``authority_host`` selects a national cloud or a local server."""
    if not tenant or "/" in tenant or "?" in tenant or "#" in tenant:
        raise ConfigError(f"not a tenant: {tenant!r}", field="tenant")
    authority = f"{authority_host.rstrip('/')}/{tenant}"
    return IdentityProvider(
        "microsoft",
        f"{authority}/oauth2/v2.0/authorize",
        f"{authority}/oauth2/v2.0/token",
        authority=authority,
    )


@attrs.frozen(slots=True)
class OAuthClient:
    """An app registered with an identity provider.

    ``client_secret`` is ``None`` for a public client (Microsoft "mobile and
    desktop" apps); Google's desktop clients have one even though it cannot
    be kept secret. ``ca_file`` is a CA bundle to trust for the identity
    provider's TLS (a TLS-inspecting proxy, a local server); ``timeout`` is
    per request, in seconds.
    """

    identity: IdentityProvider
    client_id: str
    client_secret: Secret | None = None
    ca_file: str | None = None
    timeout: float = 30.0

    def __attrs_post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("is required", field="client_id")


@attrs.frozen(slots=True)
class AuthorizationRequest:
    """One sign-in in progress: send the user to ``url``; keep the rest
    (server-side, e.g. in the host's session) until the redirect comes back.

    ``flow`` holds what the client library needs to finish (msal's auth
    code flow); like ``code_verifier`` it never shows in a ``repr``.
    """

    url: str
    state: str
    code_verifier: Secret
    redirect_uri: str
    scopes: tuple[str, ...]
    provider: str
    flow: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


def redirect_params(url_or_query: str) -> dict[str, str]:
    """The query parameters of a redirect (``code``, ``state`` or ``error``),
    from the URL the browser was sent to (or its path, or its query string).

    A parameter given twice is refused (RFC 6749 §3.1): which of the two
    would count is exactly what an attacker would like to choose."""
    if "://" in url_or_query or url_or_query.startswith("/"):
        query = urlsplit(url_or_query).query
    else:
        query = url_or_query.lstrip("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    found = dict(pairs)
    if len(found) != len(pairs):
        raise InvalidInput("a parameter appears twice in the authorization response")
    return found
