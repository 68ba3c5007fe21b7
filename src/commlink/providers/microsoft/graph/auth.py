"""Access tokens for Microsoft Graph.

A ``TokenSource`` hands out a bearer token and can be asked for a fresh one
after Graph answered 401. Three sources: a static token (tests, hosts that
manage tokens themselves), app-only client credentials and a delegated
refresh token, the last two through msal (``pip install commlink[graph]``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ....errors import AuthError, ConfigError

__all__ = [
    "GRAPH_DEFAULT_SCOPE",
    "ClientCredentialsToken",
    "RefreshTokenSource",
    "StaticToken",
    "TokenSource",
]

#: The app-only scope: whatever application permissions were granted.
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
#: Delegated scopes commlink needs (``offline_access`` is added by msal).
DELEGATED_SCOPES = (
    "https://graph.microsoft.com/Mail.Read",
    "https://graph.microsoft.com/Calendars.Read",
)


class TokenSource(Protocol):
    """Something that provides Graph bearer tokens."""

    def token(self) -> str:
        """A token to send (cached while valid)."""
        ...

    def refresh(self) -> str:
        """A new token, after Graph refused the current one; raises ``AuthError``
        when none can be had."""
        ...


class StaticToken:
    """A fixed bearer token; ``refresh`` cannot do better than return it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def refresh(self) -> str:
        return self._token


def _msal() -> Any:
    try:
        import msal
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("Microsoft Graph needs msal: pip install commlink[graph]") from exc
    return msal


def _authority(tenant: str, authority_host: str) -> str:
    return f"{authority_host.rstrip('/')}/{tenant}"


def _access_token(result: Mapping[str, Any] | None, what: str) -> str:
    if not result or "access_token" not in result:
        error = (result or {}).get("error", "no token")
        detail = (result or {}).get("error_description", "")
        raise AuthError(f"{what} refused: {error} {detail}".strip()[:500])
    return str(result["access_token"])


class ClientCredentialsToken:
    """App-only access (``/users/{id}``) with a client secret or certificate.

    ``credential`` is a secret string or msal's certificate mapping. ``app``
    replaces the msal application (anything with ``acquire_token_for_client``).
    """

    def __init__(
        self,
        tenant: str,
        client_id: str,
        credential: str | Mapping[str, Any],
        *,
        authority_host: str = "https://login.microsoftonline.com",
        scopes: Sequence[str] = (GRAPH_DEFAULT_SCOPE,),
        app: Any = None,
    ) -> None:
        self.scopes = list(scopes)
        self._app = app or _msal().ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=_authority(tenant, authority_host),
        )
        self._lock = threading.Lock()
        self._token: str | None = None

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                # msal serves a cached token until shortly before it expires
                result = self._app.acquire_token_for_client(scopes=self.scopes)
                self._token = _access_token(result, "client credentials")
            return self._token

    def refresh(self) -> str:
        with self._lock:
            remove = getattr(self._app, "remove_tokens_for_client", None)
            if remove is not None:
                remove()  # drop msal's cached token so a new one is issued
            result = self._app.acquire_token_for_client(scopes=self.scopes)
            self._token = _access_token(result, "client credentials")
            return self._token


class RefreshTokenSource:
    """Delegated access from an authorization-code grant's refresh token.

    Access tokens come from the refresh token (msal's cache first); when
    Azure AD rotates the refresh token, ``on_refresh_token`` receives the
    new one so the host can persist it. ``client_credential`` is ``None``
    for a public client. ``app`` replaces the msal application.
    """

    def __init__(
        self,
        client_id: str,
        refresh_token: str,
        *,
        tenant: str = "common",
        client_credential: str | Mapping[str, Any] | None = None,
        authority_host: str = "https://login.microsoftonline.com",
        scopes: Sequence[str] = DELEGATED_SCOPES,
        on_refresh_token: Callable[[str], None] | None = None,
        app: Any = None,
    ) -> None:
        self.scopes = list(scopes)
        self.refresh_token = refresh_token
        self._on_refresh_token = on_refresh_token
        if app is None:
            msal = _msal()
            authority = _authority(tenant, authority_host)
            app = (
                msal.ConfidentialClientApplication(
                    client_id, client_credential=client_credential, authority=authority
                )
                if client_credential is not None
                else msal.PublicClientApplication(client_id, authority=authority)
            )
        self._app = app
        self._lock = threading.Lock()
        self._token: str | None = None

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._acquire(force=False)
            return self._token

    def refresh(self) -> str:
        with self._lock:
            self._token = self._acquire(force=True)
            return self._token

    def _acquire(self, *, force: bool) -> str:
        accounts = self._app.get_accounts() if hasattr(self._app, "get_accounts") else []
        if accounts:
            result = self._app.acquire_token_silent(
                self.scopes, account=accounts[0], force_refresh=force
            )
            if result and "access_token" in result:
                self._keep(result)
                return str(result["access_token"])
        result = self._app.acquire_token_by_refresh_token(self.refresh_token, scopes=self.scopes)
        token = _access_token(result, "refresh token")
        self._keep(result)
        return token

    def _keep(self, result: Mapping[str, Any]) -> None:
        rotated = result.get("refresh_token")
        if rotated and rotated != self.refresh_token:
            self.refresh_token = str(rotated)
            if self._on_refresh_token is not None:
                self._on_refresh_token(self.refresh_token)
