"""Local OAuth 2.0 / OpenID Connect authorization servers for tests:
``GoogleOAuthServer`` and ``MicrosoftOAuthServer``.

They follow RFC 6749 (authorization code and refresh token grants, client
authentication by ``client_secret_basic`` or ``client_secret_post``, error
answers), RFC 7636 (PKCE, S256 only, required), RFC 8252 §7.3 (a loopback
redirect URI matches on any port) and each provider's wire format:
Google's ``/o/oauth2/v2/auth``, ``/token``, ``/revoke`` and ``/tokeninfo``;
Microsoft's ``/{tenant}/oauth2/v2.0/authorize|token`` with the OpenID
configuration msal reads, served over TLS (``ca_file`` to trust) because
msal accepts only https authorities.

The consent screen is skipped: ``/authorize`` consents for the configured
user at once and redirects with the code (``deny_next`` makes the user
decline, ``grant_only`` makes them untick scopes). ID tokens are signed
(ES256, keys at ``jwks_uri``).

Access tokens reach the local API servers through ``issue_to(server)``:
each token issued is added to them (``add_token``) and taken back when it
is revoked or expires; the Gmail, Calendar and Graph test servers accept
it like their own. Expiry is noticed when the OAuth server next answers a
request, or at once with ``expire_access_tokens()``. Dovecot's ``oauth2``
passdb can check tokens at Google's ``/tokeninfo`` (``tokeninfo_url``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from .local_http import HttpAnswer
from .oauth_grants import Grant, OAuthFailure
from .oauth_server import JSON_HEADERS, OAuthServer, ResourceServer, form_body, json_answer

__all__ = ["GoogleOAuthServer", "MicrosoftOAuthServer", "OAuthServer", "ResourceServer"]


class GoogleOAuthServer(OAuthServer):
    """Google's authorization server, locally (plain http unless ``tls=True``).

    Refresh tokens are not rotated unless ``rotate_refresh_tokens=True``
    (Google keeps them); a refresh token is issued for
    ``access_type=offline``. ``email`` and ``profile`` are granted under
    their full names, as Google does.
    """

    name = "google"
    _prefixes = ("ya29.test-", "1//test-")
    _EXPANDED: ClassVar[dict[str, str]] = {
        "email": "https://www.googleapis.com/auth/userinfo.email",
        "profile": "https://www.googleapis.com/auth/userinfo.profile",
    }

    def __init__(
        self,
        user: str = "owner@home.example",
        *,
        rotate_refresh_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(user, rotate_refresh_tokens=rotate_refresh_tokens, **kwargs)
        self.subject = str(uuid.uuid4().int)[:21]

    @property
    def issuer(self) -> str:
        return self.root_url.rstrip("/")

    @property
    def authorization_endpoint(self) -> str:
        return self.root_url + "o/oauth2/v2/auth"

    @property
    def token_endpoint(self) -> str:
        return self.root_url + "token"

    @property
    def revocation_endpoint(self) -> str:
        return self.root_url + "revoke"

    @property
    def tokeninfo_url(self) -> str:
        """For Dovecot's ``tokeninfo_url`` (the token is appended)."""
        return self.root_url + "tokeninfo?access_token="

    def granted_scopes(self, asked: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._EXPANDED.get(s, s) for s in asked))

    def offline(self, params: Mapping[str, str], scopes: Sequence[str]) -> bool:
        return params.get("access_type") == "offline"

    def redirect_extras(self, scopes: Sequence[str]) -> dict[str, str]:
        return {"scope": " ".join(scopes), "authuser": "0", "prompt": "consent"}

    def id_claims(self, grant: Grant) -> dict[str, Any]:
        now = int(self.clock())
        return {
            "iss": self.issuer,
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": self.subject,
            "email": grant.account,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }

    def route(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        if method == "GET" and path == "/o/oauth2/v2/auth":
            return self.authorize(query)
        if method == "POST" and path == "/token":
            return self.token(headers, body)
        if method == "POST" and path == "/revoke":
            return self._revoke(query, headers, body)
        if method == "GET" and path == "/tokeninfo":
            return self._tokeninfo(query)
        if method == "GET" and path == "/.well-known/openid-configuration":
            return json_answer(self._discovery())
        if method == "GET" and path == "/oauth2/v3/certs":
            return json_answer(self.signer.jwks())
        return json_answer({"error": "not_found"}, 404)

    def _revoke(self, query: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        form = form_body(body) if body else form_body(query.encode())
        gone = self.book.revoke_token(form.get("token", ""))
        if gone is None:
            body_out = {"error": "invalid_token", "error_description": "Token expired or revoked"}
            return 400, JSON_HEADERS, json.dumps(body_out).encode()
        self._withdraw(gone)
        return json_answer({})

    def _tokeninfo(self, query: str) -> HttpAnswer:
        token = form_body(query.encode()).get("access_token", "")
        found = self.book.access(token)
        if found is None:
            body = {"error": "invalid_token", "error_description": "Invalid Value"}
            return 400, JSON_HEADERS, json.dumps(body).encode()
        left = max(int(found.expires - self.clock()), 0)
        return json_answer(
            {
                "azp": found.client_id,
                "aud": found.client_id,
                "sub": self.subject,
                "scope": " ".join(found.scopes),
                "exp": str(int(found.expires)),
                "expires_in": str(left),
                "email": found.account,
                "email_verified": "true",
                "access_type": "offline",
            }
        )

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
            "jwks_uri": self.root_url + "oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }


class MicrosoftOAuthServer(OAuthServer):
    """The Microsoft identity platform (v2.0 endpoints), locally, over TLS.

    ``tenant_id`` (a GUID) and ``tenant_domain`` name the user's tenant;
    ``common`` and ``organizations`` are served too. Refresh tokens rotate
    (as Azure AD's do) and come with the ``offline_access`` scope. Pass
    ``authority_host=server.root_url`` and ``ca_file`` to the client.
    """

    name = "microsoft"
    _prefixes = ("eyJ0eXAi.test-", "0.AAAA-test-")

    def __init__(
        self,
        user: str = "owner@home.example",
        *,
        tenant_id: str | None = None,
        tenant_domain: str = "home.example",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("tls", True)
        super().__init__(user, **kwargs)
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tenant_domain = tenant_domain
        self.object_id = str(uuid.uuid4())

    def _tenant(self, name: str) -> str:
        if name in ("common", "organizations", self.tenant_id, self.tenant_domain):
            return name
        raise OAuthFailure("invalid_tenant", f"AADSTS90002: Tenant '{name}' not found.", 400)

    def route(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        parts = path.strip("/").split("/")
        tenant = self._tenant(parts[0]) if parts and parts[0] else ""
        rest = "/".join(parts[1:])
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            return json_answer(self._discovery(tenant))
        if method == "GET" and rest == "oauth2/v2.0/authorize":
            return self.authorize(query, {"session_state": str(uuid.uuid4())})
        if method == "POST" and rest == "oauth2/v2.0/token":
            return self.token(headers, body)
        if method == "GET" and rest == "discovery/v2.0/keys":
            return json_answer(self.signer.jwks())
        return json_answer({"error": "not_found"}, 404)

    def error_answer(self, failure: OAuthFailure, headers: Mapping[str, str]) -> HttpAnswer:
        status, extra, _ = super().error_answer(failure, headers)
        codes = {"invalid_grant": 70000, "invalid_client": 7000215, "invalid_scope": 65001}
        code = codes.get(failure.error, 90014)
        body = {
            "error": failure.error,
            "error_description": f"AADSTS{code}: {failure.description}\r\n"
            f"Trace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}",
            "error_codes": [code],
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }
        return status, extra, json.dumps(body).encode()

    def offline(self, params: Mapping[str, str], scopes: Sequence[str]) -> bool:
        return "offline_access" in scopes

    def token_response(
        self, grant: Grant, access: str, refresh: str | None, form: Mapping[str, str]
    ) -> dict[str, Any]:
        answer = super().token_response(grant, access, refresh, form)
        answer["ext_expires_in"] = answer["expires_in"]
        wanted = form.get("scope")
        if wanted:  # a refresh for some of the scopes: the token is for those
            answer["scope"] = " ".join(self.granted_scopes(wanted.split()))
        if form.get("client_info") == "1":
            info = {"uid": self.object_id, "utid": self.tenant_id}
            answer["client_info"] = (
                base64.urlsafe_b64encode(json.dumps(info).encode()).rstrip(b"=").decode()
            )
        return answer

    def id_claims(self, grant: Grant) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "iss": f"{self.root_url}{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": grant.account.split("@")[0],
            "oid": self.object_id,
            "preferred_username": grant.account,
            "sub": self.object_id.replace("-", "")[:32],
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        if "email" in grant.scopes:
            claims["email"] = grant.account
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return claims

    def _discovery(self, tenant: str) -> dict[str, Any]:
        base = f"{self.root_url}{quote(tenant)}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.root_url}{self.tenant_id}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "code_challenge_methods_supported": ["S256"],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
        }  # fmt: skip
