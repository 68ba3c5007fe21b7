"""Google sign-in: the authorization URL, the code exchange, refreshes
through google-auth, and google-auth ``Credentials`` backed by a
``SavedTokenSource`` for the Gmail and Google Calendar providers.

The refresh grant is google-auth's own (``Credentials.refresh``); the
code exchange is one RFC 6749 §4.1.3 POST sent through google-auth's
requests transport. google-auth-oauthlib is not used: oauthlib refuses a
token endpoint that is not https unless an environment variable relaxes
it for the whole process, and raises when Google grants fewer scopes than
asked (which its granular consent screen lets a user do).

google-auth is imported lazily (``pip install commlink[gmail]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from ..credentials import Secret, redact_text
from ..errors import AuthError, ConfigError, ProviderError, TransientError
from ..records import OAuthToken
from .errors import GrantRefused, grant_error
from .http import requests_session
from .id_token import account_from_claims, check_claims, unverified_claims
from .identity import AuthorizationRequest, OAuthClient
from .pkce import new_pkce
from .source import Refresher, SavedTokenSource, as_secret, expires_at
from .state import check_state, new_state

__all__ = [
    "google_authorization",
    "google_credentials",
    "google_exchange",
    "google_refresher",
    "google_revoke",
]

#: When the token endpoint does not say how long a token lasts.
_DEFAULT_LIFETIME = timedelta(minutes=55)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _transport(client: OAuthClient) -> Iterator[Any]:
    """google-auth's requests transport, trusting ``client.ca_file`` when set."""
    try:
        from google.auth.transport.requests import Request
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("Google sign-in needs google-auth: pip install commlink[gmail]") from exc
    with requests_session(client) as session:
        yield Request(session)


def _secret(client: OAuthClient) -> str:
    if client.client_secret is None:
        raise ConfigError("Google OAuth clients have a client secret: give it", "client_secret")
    return client.client_secret.reveal()


def google_authorization(
    client: OAuthClient,
    scopes: Sequence[str],
    redirect_uri: str,
    *,
    login_hint: str | None = None,
) -> AuthorizationRequest:
    """Where to send the user: consent for ``scopes`` with PKCE (S256), an
    unguessable state, and offline access (a refresh token, asked for again
    with ``prompt=consent`` so that reconnecting yields a new one)."""
    pkce = new_pkce()
    state = new_state()
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
    }
    if login_hint:
        query["login_hint"] = login_hint
    url = f"{client.identity.authorization_endpoint}?{urlencode(query)}"
    return AuthorizationRequest(url, state, pkce.verifier, redirect_uri, tuple(scopes), "google")


def _post(client: OAuthClient, url: str, form: Mapping[str, str]) -> tuple[int, Any]:
    """POST a form through google-auth's transport; ``(status, parsed JSON)``."""
    from google.auth import exceptions

    try:
        with _transport(client) as send:
            response = send(
                url=url,
                method="POST",
                body=urlencode(form),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                timeout=client.timeout,
            )
    except exceptions.TransportError as exc:
        raise TransientError(redact_text(f"Google sign-in unreachable: {exc}")) from None
    data = response.data
    try:
        parsed = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError):
        parsed = {}
    return int(response.status), parsed


def google_exchange(
    client: OAuthClient, request: AuthorizationRequest, params: Mapping[str, str]
) -> OAuthToken:
    """Finish a sign-in from the redirect's query ``params``: check the state,
    trade the code (with the PKCE verifier) for tokens, and learn the
    account from the ID token."""
    if params.get("error"):
        raise grant_error("google", GrantRefused(str(params["error"])))
    check_state(request.state, params.get("state"))
    code = params.get("code")
    if not code:
        raise AuthError("the authorization response carries no code: start again")
    status, body = _post(
        client,
        client.identity.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": request.redirect_uri,
            "client_id": client.client_id,
            "client_secret": _secret(client),
            "code_verifier": request.code_verifier.reveal(),
        },
    )
    if status != 200 or not isinstance(body, Mapping) or not body.get("access_token"):
        error = str(body.get("error") or "invalid_response") if isinstance(body, Mapping) else ""
        description = str(body.get("error_description") or "") if isinstance(body, Mapping) else ""
        raise grant_error("google", GrantRefused(error or "invalid_response", description, status))
    return _token_from(client, body, _utcnow(), request.scopes)


def _token_from(
    client: OAuthClient, body: Mapping[str, Any], now: datetime, asked: Sequence[str]
) -> OAuthToken:
    account = ""
    if body.get("id_token"):
        claims = unverified_claims(str(body["id_token"]))
        check_claims(claims, client_id=client.client_id, issuer=client.identity.issuer)
        account = account_from_claims(claims)
    granted = str(body.get("scope") or "").split() or list(asked)
    access = as_secret(body.get("access_token"))
    if access is None:
        raise ProviderError("Google sign-in answered without an access token")
    return OAuthToken(
        access_token=access,
        refresh_token=as_secret(body.get("refresh_token")),
        expires_at=expires_at(now, body.get("expires_in")),
        scopes=tuple(sorted(set(granted))),
        account=account,
    )


def google_refresher(client: OAuthClient, clock: Callable[[], datetime] = _utcnow) -> Refresher:
    """Refreshes a grant with google-auth's refresh-token grant; the new
    token's lifetime is counted from ``clock``."""
    secret = _secret(client)

    def refresh(grant: OAuthToken) -> OAuthToken:
        from google.auth import exceptions
        from google.oauth2.credentials import Credentials

        assert grant.refresh_token is not None
        credentials = Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=grant.refresh_token.reveal(),
            token_uri=client.identity.token_endpoint,
            client_id=client.client_id,
            client_secret=secret,
        )
        try:
            with _transport(client) as send:
                credentials.refresh(send)  # type: ignore[no-untyped-call]
        except exceptions.RefreshError as exc:
            raise _refused(exc) from None
        except exceptions.TransportError as exc:
            raise TransientError(redact_text(f"Google sign-in unreachable: {exc}")) from None
        account = ""
        if credentials.id_token:
            claims = unverified_claims(credentials.id_token)
            if claims.get("aud") == client.client_id:
                account = account_from_claims(claims)
        expiry = credentials.expiry  # naive UTC, from google-auth's own clock
        lifetime = expiry.replace(tzinfo=timezone.utc) - _utcnow() if expiry else None
        return OAuthToken(
            access_token=Secret(str(credentials.token)),
            refresh_token=as_secret(credentials.refresh_token),
            expires_at=clock() + lifetime if lifetime is not None else None,
            scopes=grant.scopes,
            account=account,
        )

    return refresh


def _refused(exc: Exception) -> GrantRefused:
    """The OAuth error inside google-auth's ``RefreshError``."""
    body = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Mapping) else {}
    error = str(body.get("error") or "")
    if not error:
        error = "server_error" if getattr(exc, "retryable", False) else "invalid_request"
    return GrantRefused(error, str(body.get("error_description") or ""))


def google_credentials(source: SavedTokenSource) -> Any:
    """google-auth ``Credentials`` for the Gmail and Calendar providers whose
    refreshes go through ``source`` (so they are saved and shared).

    google-auth asks for a refresh when the token nears its expiry and after
    a 401; either way ``source`` adopts a token another user of the grant
    already refreshed, or refreshes once.
    """
    from google.oauth2.credentials import Credentials

    grant = source.current()

    def naive(moment: datetime | None) -> datetime:
        # google-auth compares expiries with naive UTC datetimes
        when = moment or (_utcnow() + _DEFAULT_LIFETIME)
        return when.astimezone(timezone.utc).replace(tzinfo=None)

    def refresh_handler(request: Any, scopes: Any = None) -> tuple[str, datetime]:
        fresh = source.renew(stale=credentials.token)
        return fresh.access_token.reveal(), naive(fresh.expires_at)

    credentials = Credentials(  # type: ignore[no-untyped-call]
        token=grant.access_token.reveal(),
        expiry=naive(grant.expires_at),
        refresh_handler=refresh_handler,
    )
    return credentials


def google_revoke(client: OAuthClient, grant: OAuthToken) -> None:
    """Revoke a grant at Google (its refresh token, else its access token);
    one already gone is not an error."""
    endpoint = client.identity.revocation_endpoint
    token = grant.refresh_token or grant.access_token
    if not endpoint or not token:
        return
    status, body = _post(client, endpoint, {"token": token.reveal()})
    if status == 200:
        return
    error = str(body.get("error") or "") if isinstance(body, Mapping) else ""
    if status == 400 and error in ("invalid_token", "invalid_grant"):
        return
    raise grant_error("google", GrantRefused(error or "server_error", "", status))
