"""Connecting an account, whichever the identity provider: the
authorization URL, the code exchange, and a token source on the saved grant.

    client = OAuthClient(google_identity(), "ID.apps.googleusercontent.com", Secret("..."))
    request = authorization_url(client, scopes_for("gmail"), "https://crm.example/oauth")
    # send the user to request.url; keep request until the redirect comes back
    token = exchange_code(client, request, redirect_params(callback_url))
    store.save_token("alice-mail", token)
    source = token_source(client, store, "alice-mail")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from ..errors import InvalidInput
from ..ports import TokenStore
from ..records import OAuthToken
from .google import google_authorization, google_exchange, google_refresher, google_revoke
from .identity import AuthorizationRequest, OAuthClient, check_endpoint
from .microsoft import microsoft_authorization, microsoft_exchange, microsoft_refresher
from .source import SavedTokenSource

__all__ = ["authorization_url", "disconnect", "exchange_code", "token_source"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def authorization_url(
    client: OAuthClient,
    scopes: Sequence[str],
    redirect_uri: str,
    *,
    login_hint: str | None = None,
) -> AuthorizationRequest:
    """Start a sign-in: the URL to send the user to, with PKCE and a state.

    ``redirect_uri`` must be registered with the app (a loopback
    ``http://127.0.0.1:PORT/`` for a desktop app, RFC 8252 §7.3)."""
    check_endpoint(redirect_uri, "redirect_uri")
    if client.identity.name == "google":
        return google_authorization(client, scopes, redirect_uri, login_hint=login_hint)
    return microsoft_authorization(client, scopes, redirect_uri, login_hint=login_hint)


def exchange_code(
    client: OAuthClient, request: AuthorizationRequest, params: Mapping[str, str]
) -> OAuthToken:
    """Finish a sign-in from the redirect's query parameters (``code`` and
    ``state``, or ``error``): the state is checked in constant time before
    the code is traded for tokens. Raises ``AuthError`` when refused."""
    if request.provider != client.identity.name:
        raise InvalidInput("this sign-in was started with another identity provider")
    if client.identity.name == "google":
        return google_exchange(client, request, params)
    return microsoft_exchange(client, request, params)


def token_source(
    client: OAuthClient,
    store: TokenStore,
    key: str,
    *,
    scopes: Sequence[str] = (),
    margin: float = 300.0,
    clock: Callable[[], datetime] = _utcnow,
) -> SavedTokenSource:
    """Fresh access tokens for the grant saved under ``key``; every refresh
    and rotation is saved back. ``scopes`` narrow a Microsoft refresh to
    one API (Graph, or Outlook IMAP); Google tokens cover the whole grant."""
    refresher = (
        google_refresher(client, clock)
        if client.identity.name == "google"
        else microsoft_refresher(client, scopes, clock)
    )
    return SavedTokenSource(
        store, key, refresher, provider=client.identity.name, margin=margin, clock=clock
    )


def disconnect(client: OAuthClient, store: TokenStore, key: str) -> None:
    """Forget the grant saved under ``key``, revoking it first where the
    provider offers revocation (Google; Microsoft has no endpoint for one
    app's grant, so the user removes the app from their account page)."""
    saved = store.load_token(key)
    if saved is not None and client.identity.name == "google":
        google_revoke(client, saved)
    store.delete_token(key)
