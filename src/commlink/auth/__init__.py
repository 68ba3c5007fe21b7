"""Connecting accounts: OAuth 2.0 sign-in for Google and Microsoft, and
token sources that keep every refresh in a ``TokenStore``.

- ``authorization_url`` / ``exchange_code``: the authorization code flow
  with PKCE (S256) and a state checked in constant time; the result is an
  ``OAuthToken`` with the account's address.
- ``token_source``: a ``SavedTokenSource`` on a saved grant; it is Graph's
  ``TokenSource`` and IMAP's XOAUTH2 token callable, and
  ``google_credentials`` wraps it for the Gmail and Calendar providers.
- ``scopes_for``: the read-only scopes per channel kind and visibility.
- ``LoopbackReceiver``: the redirect for sign-ins from a terminal (RFC 8252).

Client libraries (google-auth, msal) are imported only when used.
"""

from __future__ import annotations

from .errors import GrantRefused, grant_error
from .flow import authorization_url, disconnect, exchange_code, token_source
from .google import google_credentials
from .id_token import account_from_claims, unverified_claims
from .identity import (
    AuthorizationRequest,
    IdentityProvider,
    OAuthClient,
    google_identity,
    microsoft_identity,
    redirect_params,
)
from .loopback import LoopbackReceiver
from .pkce import PkcePair, new_pkce, s256_challenge
from .scopes import scopes_for, scopes_for_channels
from .source import SavedTokenSource
from .state import check_state, new_state

__all__ = [
    "AuthorizationRequest",
    "GrantRefused",
    "IdentityProvider",
    "LoopbackReceiver",
    "OAuthClient",
    "PkcePair",
    "SavedTokenSource",
    "account_from_claims",
    "authorization_url",
    "check_state",
    "disconnect",
    "exchange_code",
    "google_credentials",
    "google_identity",
    "grant_error",
    "microsoft_identity",
    "new_pkce",
    "new_state",
    "redirect_params",
    "s256_challenge",
    "scopes_for",
    "scopes_for_channels",
    "token_source",
    "unverified_claims",
]
