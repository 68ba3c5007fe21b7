"""Microsoft sign-in through msal: the auth code flow (msal does PKCE, the
state and the OpenID nonce) and refresh-token grants whose rotated refresh
tokens are saved.

msal reads the authority's OpenID configuration when an application object
is made, so one is made only when needed. A loopback authority (a local
server in tests) turns msal's instance discovery off; national clouds are
known to msal already. msal is imported lazily (``pip install commlink[graph]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from ..credentials import Secret, is_loopback_host, redact_text
from ..errors import AuthError, ConfigError, ProviderError, TransientError
from ..records import OAuthToken
from .errors import GrantRefused, grant_error
from .http import requests_session
from .id_token import account_from_claims, check_claims
from .identity import AuthorizationRequest, OAuthClient
from .scopes import MSAL_RESERVED
from .source import Refresher, as_secret, expires_at
from .state import check_state, new_state

__all__ = ["microsoft_authorization", "microsoft_exchange", "microsoft_refresher", "msal_app"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def msal_app(client: OAuthClient) -> Iterator[Any]:
    """An msal application for ``client``: confidential with a client secret,
    public without one. Reads the authority's OpenID configuration; its
    connections are closed on exit."""
    try:
        import msal
        import requests
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("Microsoft sign-in needs msal: pip install commlink[graph]") from exc
    authority = client.identity.authority
    if not authority:
        raise ConfigError("a Microsoft identity needs an authority", field="authority")
    options: dict[str, Any] = {"authority": authority}
    if is_loopback_host(urlsplit(authority).hostname):
        options["instance_discovery"] = False
    with requests_session(client) as session:
        try:
            if client.client_secret is not None:
                app = msal.ConfidentialClientApplication(
                    client.client_id,
                    client_credential=client.client_secret.reveal(),
                    http_client=session,
                    **options,
                )
            else:
                app = msal.PublicClientApplication(client.client_id, http_client=session, **options)
        except requests.RequestException as exc:
            raise TransientError(redact_text(f"Microsoft sign-in unreachable: {exc}")) from None
        except ValueError as exc:  # msal: the authority's configuration is unusable
            text = redact_text(f"Microsoft sign-in at {authority}: {exc}")[:300]
            raise ProviderError(text) from None
        yield app


def _msal_scopes(scopes: Sequence[str]) -> list[str]:
    """Scopes as msal takes them: it adds ``openid profile offline_access`` itself."""
    return sorted({s for s in scopes if s not in MSAL_RESERVED})


def microsoft_authorization(
    client: OAuthClient,
    scopes: Sequence[str],
    redirect_uri: str,
    *,
    login_hint: str | None = None,
) -> AuthorizationRequest:
    """Where to send the user, from msal's auth code flow (PKCE, state,
    nonce). The response is POSTed to ``redirect_uri`` as a form
    (``response_mode=form_post``): read the parameters from the body."""
    with msal_app(client) as app:
        flow = app.initiate_auth_code_flow(
            _msal_scopes(scopes),
            redirect_uri=redirect_uri,
            state=new_state(),
            prompt="select_account",
            login_hint=login_hint,
            # the code comes back in a POSTed form, not in a URL that browsers
            # keep in their history (RFC 9700 §4.3.1)
            response_mode="form_post",
        )
    if "error" in flow:
        raise grant_error(
            "microsoft", GrantRefused(str(flow["error"]), str(flow.get("error_description", "")))
        )
    return AuthorizationRequest(
        url=str(flow["auth_uri"]),
        state=str(flow["state"]),
        code_verifier=Secret(str(flow["code_verifier"])),
        redirect_uri=redirect_uri,
        scopes=tuple(scopes),
        provider="microsoft",
        flow=dict(flow),
    )


def microsoft_exchange(
    client: OAuthClient, request: AuthorizationRequest, params: Mapping[str, str]
) -> OAuthToken:
    """Finish a sign-in from the redirect's query ``params`` through msal."""
    if params.get("error"):
        raise grant_error(
            "microsoft",
            GrantRefused(str(params["error"]), str(params.get("error_description", ""))),
        )
    check_state(request.state, params.get("state"))
    if not params.get("code"):
        raise AuthError("the authorization response carries no code: start again")
    try:
        with msal_app(client) as app:
            # msal pops from the flow it is given: hand it a copy
            result = app.acquire_token_by_auth_code_flow(dict(request.flow), dict(params))
    except (ValueError, RuntimeError) as exc:  # state, nonce or flow refused by msal
        raise AuthError(
            f"Microsoft sign-in response refused ({type(exc).__name__}): start again"
        ) from None
    except Exception as exc:
        unreachable = _unreachable(exc)
        if unreachable is None:
            raise
        raise unreachable from None
    return _token_from(client, result, _utcnow())


def _token_from(client: OAuthClient, result: Mapping[str, Any], now: datetime) -> OAuthToken:
    if "error" in result or not result.get("access_token"):
        raise grant_error("microsoft", _refused(result))
    claims = result.get("id_token_claims")
    account = ""
    if isinstance(claims, Mapping) and claims:
        check_claims(claims, client_id=client.client_id, issuer=None)
        account = account_from_claims(claims)
    return OAuthToken(
        access_token=Secret(str(result["access_token"])),
        refresh_token=as_secret(result.get("refresh_token")),
        expires_at=expires_at(now, result.get("expires_in")),
        scopes=tuple(sorted(set(str(result.get("scope") or "").split()))),
        account=account,
    )


def _refused(result: Mapping[str, Any]) -> GrantRefused:
    error = str(result.get("error") or "invalid_response")
    # AADSTS descriptions carry trace and correlation ids: keep the first line
    description = str(result.get("error_description") or "").splitlines()[:1]
    return GrantRefused(error, description[0] if description else "")


def _unreachable(exc: Exception) -> TransientError | None:
    """A network failure under msal (requests) as ``TransientError``."""
    import requests

    if isinstance(exc, requests.RequestException):
        return TransientError(redact_text(f"Microsoft sign-in unreachable: {exc}"))
    return None


def microsoft_refresher(
    client: OAuthClient, scopes: Sequence[str] = (), clock: Callable[[], datetime] = _utcnow
) -> Refresher:
    """Refreshes a grant with msal's refresh-token grant for ``scopes`` (by
    default the scopes the grant has); Azure AD rotates the refresh token.
    The new token's lifetime is counted from ``clock``.

    An msal application is made for each refresh (about once an hour), so
    no connection stays open between them."""

    def refresh(grant: OAuthToken) -> OAuthToken:
        assert grant.refresh_token is not None
        wanted = _msal_scopes(scopes or grant.scopes)
        try:
            with msal_app(client) as app:
                result = app.acquire_token_by_refresh_token(
                    grant.refresh_token.reveal(), scopes=wanted
                )
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable is None:
                raise
            raise unreachable from None
        if "error" in result or not result.get("access_token"):
            raise _refused(result)
        return _token_from(client, result, clock())

    return refresh
