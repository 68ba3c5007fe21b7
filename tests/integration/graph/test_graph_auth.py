"""Graph token sources: client credentials and refresh tokens over an msal
application (a recording stand-in here: msal itself talks to Azure AD),
and building a source from settings."""

from __future__ import annotations

from typing import Any

import pytest
from graph_support import OWNER

from commlink.errors import AuthError, ConfigError
from commlink.providers.microsoft.graph import (
    ClientCredentialsToken,
    GraphClient,
    GraphMailProvider,
    RefreshTokenSource,
    StaticToken,
    token_source,
)
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


class _ConfidentialApp:
    """Answers like msal's ConfidentialClientApplication for client credentials."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.issued = 0
        self.cached: str | None = None
        self.cleared = 0

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        assert scopes == ["https://graph.microsoft.com/.default"]
        if self.cached is None:
            if self.issued >= len(self.tokens):
                return {"error": "invalid_client", "error_description": "AADSTS7000215"}
            self.cached = self.tokens[self.issued]
            self.issued += 1
        return {"access_token": self.cached, "token_type": "Bearer", "expires_in": 3599}

    def remove_tokens_for_client(self) -> None:
        self.cleared += 1
        self.cached = None


class _DelegatedApp:
    """Answers like msal for a refresh-token grant, rotating the refresh token."""

    def __init__(self) -> None:
        self.accounts: list[dict[str, str]] = []
        self.calls: list[tuple[str, Any]] = []
        self.revoked = False

    def get_accounts(self) -> list[dict[str, str]]:
        return self.accounts

    def acquire_token_silent(
        self, scopes: list[str], account: Any, force_refresh: bool = False
    ) -> dict[str, Any] | None:
        self.calls.append(("silent", force_refresh))
        if force_refresh:
            return None
        return {"access_token": "silent-token"}

    def acquire_token_by_refresh_token(
        self, refresh_token: str, scopes: list[str]
    ) -> dict[str, Any]:
        self.calls.append(("refresh", refresh_token))
        if self.revoked:
            return {"error": "invalid_grant", "error_description": "AADSTS700082: expired"}
        self.accounts = [{"home_account_id": "u"}]
        return {"access_token": f"from-{refresh_token}", "refresh_token": refresh_token + "+"}


def test_client_credentials_reach_the_server_and_refresh_after_401(server: GraphServer) -> None:
    app = _ConfidentialApp(["app-token-1", "app-token-2"])
    server.add_token("app-token-1")
    server.add_token("app-token-2")
    tokens = ClientCredentialsToken("tenant-id", "client-id", "secret", app=app)
    provider = GraphMailProvider(GraphClient(tokens, base_url=server.base_url), user=OWNER)
    try:
        assert provider.folders()
        assert app.issued == 1
        server.revoke_token("app-token-1")
        assert provider.aliases() == (OWNER, "sales@home.example")
        assert app.cleared == 1
        assert app.issued == 2
        server.revoke_token("app-token-2")
        with pytest.raises(AuthError, match="invalid_client"):
            provider.aliases()
    finally:
        provider.close()


def test_refresh_token_source_rotates_and_reports_the_new_token() -> None:
    app = _DelegatedApp()
    saved: list[str] = []
    tokens = RefreshTokenSource("client-id", "rt1", app=app, on_refresh_token=saved.append)
    assert tokens.token() == "from-rt1"
    assert tokens.token() == "from-rt1"  # cached
    assert saved == ["rt1+"]
    assert tokens.refresh_token == "rt1+"
    # once msal knows the account, a forced refresh falls back to the refresh token
    assert tokens.refresh() == "from-rt1+"
    assert ("silent", True) in app.calls
    assert saved == ["rt1+", "rt1++"]
    app.revoked = True
    with pytest.raises(AuthError, match="invalid_grant"):
        tokens.refresh()


def test_silent_tokens_are_used_when_msal_has_them() -> None:
    app = _DelegatedApp()
    app.accounts = [{"home_account_id": "u"}]
    tokens = RefreshTokenSource("client-id", "rt", app=app)
    assert tokens.token() == "silent-token"
    assert app.calls == [("silent", False)]


def test_token_source_from_settings() -> None:
    assert isinstance(token_source(token="abc"), StaticToken)
    with pytest.raises(ConfigError, match="client_id"):
        token_source(refresh_token="rt")
    with pytest.raises(ConfigError, match="tenant"):
        token_source(client_id="c", client_secret="s")
    with pytest.raises(ConfigError, match="client_secret"):
        token_source(tenant="t", client_id="c")
