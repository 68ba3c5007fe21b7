"""``OAuthServer``: what the local Google and Microsoft authorization
servers share (``commlink.testing.oauth``): clients and their redirect
URIs, the authorization endpoint that consents at once, the token endpoint
with client authentication, TLS, and handing tokens to API servers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs

from ..credentials import is_loopback_host
from .local_http import HttpAnswer, LocalHttpServer
from .oauth_grants import Grant, GrantBook, OAuthFailure
from .tls import JwtSigner, LocalCertificate

__all__ = [
    "JSON_HEADERS",
    "OAuthServer",
    "ResourceServer",
    "form_body",
    "html_page",
    "json_answer",
]

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
_HTML = {"Content-Type": "text/html; charset=utf-8"}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class ResourceServer(Protocol):
    """A local API server that accepts bearer tokens handed to it."""

    def add_token(self, token: str, user: str) -> None: ...

    def revoke_token(self, token: str | None = None) -> None: ...


@attrs.define
class _Client:
    secret: str | None
    redirect_uris: tuple[str, ...]


def form_body(body: bytes) -> dict[str, str]:
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    found = dict(pairs)
    if len(found) != len(pairs):
        raise OAuthFailure("invalid_request", "a parameter is repeated")
    return found


def _loopback_match(registered: str, given: str) -> bool:
    """RFC 8252 §7.3: a loopback redirect URI matches on any port."""
    r, g = urlsplit(registered), urlsplit(given)
    return (
        r.scheme == g.scheme == "http"
        and is_loopback_host(r.hostname)
        and r.hostname == g.hostname
        and (r.path or "/") == (g.path or "/")
        and r.query == g.query
    )


class OAuthServer(LocalHttpServer):
    """What both flavours share; use ``GoogleOAuthServer`` or ``MicrosoftOAuthServer``.

    ``user`` is the account that consents. One client is registered
    (``client_id``/``client_secret``; ``client_secret=None`` makes it a
    public client) with ``redirect_uris``; ``register_client`` adds more.
    ``rotate_refresh_tokens`` issues a new refresh token on every refresh
    and voids the old one; ``clock`` (seconds) lets a test move time.
    """

    name: ClassVar[str] = ""
    _prefixes: ClassVar[tuple[str, str]] = ("at-", "rt-")

    def __init__(
        self,
        user: str = "owner@home.example",
        *,
        client_id: str = "commlink-test-client",
        client_secret: str | None = "commlink-test-secret",
        redirect_uris: Sequence[str] = ("http://127.0.0.1/",),
        code_lifetime: float = 60.0,
        access_token_lifetime: float = 3600.0,
        rotate_refresh_tokens: bool = True,
        tls: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.user = user
        self.client_id = client_id
        self.client_secret = client_secret
        self.clients: dict[str, _Client] = {}
        self.register_client(client_id, client_secret, redirect_uris)
        self.book = GrantBook(
            clock=clock,
            code_lifetime=code_lifetime,
            access_lifetime=access_token_lifetime,
            rotate=rotate_refresh_tokens,
            prefixes=self._prefixes,
        )
        self.clock = clock
        self.signer = JwtSigner()
        self.certificate = LocalCertificate() if tls else None
        self.resource_servers: list[ResourceServer] = []
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []
        self._deny: str | None = None
        self._grant_only: frozenset[str] | None = None
        self._lock = threading.RLock()

    # -- control --------------------------------------------------------------

    def register_client(
        self, client_id: str, secret: str | None = None, redirect_uris: Sequence[str] = ()
    ) -> None:
        """Register an app (``secret=None``: a public client)."""
        self.clients[client_id] = _Client(secret, tuple(redirect_uris))

    def issue_to(self, *servers: ResourceServer) -> None:
        """Make the access tokens issued from now on valid at ``servers``."""
        self.resource_servers.extend(servers)

    def revoke(self, account: str | None = None) -> None:
        """The user revokes the app (every grant of ``account``, or of everyone):
        refresh tokens answer ``invalid_grant``, access tokens stop working."""
        self._withdraw(self.book.revoke_account(account))

    def expire_access_tokens(self, account: str | None = None) -> None:
        """End the access tokens issued so far, as if their hour had passed."""
        self._withdraw(self.book.expire_access(account))
        self.book.sweep()

    def deny_next(self, error: str = "access_denied") -> None:
        """The next consent is declined: the redirect carries ``error``."""
        self._deny = error

    def grant_only(self, scopes: Sequence[str] | None) -> None:
        """The user grants only these of the scopes asked (``None``: all)."""
        self._grant_only = frozenset(scopes) if scopes is not None else None

    def token_info(self, token: str) -> Mapping[str, Any] | None:
        """What the server knows of a valid access token (``None`` otherwise)."""
        found = self.book.access(token)
        if found is None:
            return None
        return {
            "account": found.account,
            "client_id": found.client_id,
            "scopes": found.scopes,
            "expires": found.expires,
        }

    @property
    def ca_file(self) -> str | None:
        """The CA to trust for this server's TLS (``None`` without TLS)."""
        return self.certificate.ca_file if self.certificate is not None else None

    @property
    def root_url(self) -> str:
        scheme = "https" if self.certificate is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def start(self) -> OAuthServer:
        super().start()
        if self.certificate is not None and self._httpd is not None:
            # wrapped before any client can connect; each connection's
            # handshake then runs on its own handler thread
            self._httpd.socket = self.certificate.server_context().wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        return self

    def stop(self) -> None:
        super().stop()
        if self.certificate is not None:
            self.certificate.cleanup()

    # -- answering ------------------------------------------------------------

    def answer_http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        self._withdraw(self.book.sweep())
        parts = urlsplit(path)
        try:
            return self.route(method, unquote(parts.path), parts.query, headers, body)
        except OAuthFailure as failure:
            return self.error_answer(failure, headers)

    def route(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        raise NotImplementedError

    def error_answer(self, failure: OAuthFailure, headers: Mapping[str, str]) -> HttpAnswer:
        extra = dict(_NO_STORE)
        if failure.status == 401 and headers.get("authorization", "").lower().startswith("basic"):
            extra["WWW-Authenticate"] = 'Basic realm="token"'
        body = {"error": failure.error, "error_description": failure.description}
        return failure.status, {**JSON_HEADERS, **extra}, json.dumps(body).encode()

    def _withdraw(self, tokens: Sequence[str]) -> None:
        for token in tokens:
            for server in self.resource_servers:
                server.revoke_token(token)

    # -- the authorization endpoint ---------------------------------------------

    def authorize(self, query: str, extra: Mapping[str, str] | None = None) -> HttpAnswer:
        """Consent for the configured user and redirect back with a code.

        An unknown client or redirect URI is answered here (never redirected
        to, RFC 6749 §4.1.2.1); other errors go back to the redirect URI."""
        try:
            params = form_body(query.encode())
        except OAuthFailure:
            return html_page(400, "invalid_request: a parameter is repeated")
        with self._lock:
            self.authorize_requests.append(
                {k: v for k, v in params.items() if k not in ("code_challenge", "nonce")}
            )
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return html_page(401, "invalid_client: the OAuth client was not found")
        redirect = params.get("redirect_uri", "")
        if not self._redirect_allowed(client, redirect):
            return html_page(400, "redirect_uri_mismatch: the redirect URI is not registered")
        state = params.get("state")
        mode = params.get("response_mode", "query")

        def back(answer: dict[str, str]) -> HttpAnswer:
            if state is not None:
                answer["state"] = state
            if mode == "form_post":
                return (
                    200,
                    {"Content-Type": "text/html; charset=utf-8"},
                    _form_post(redirect, answer),
                )
            joiner = "&" if urlsplit(redirect).query else "?"
            return 302, {"Location": redirect + joiner + urlencode(answer)}, b""

        if mode not in ("query", "form_post"):
            mode = "query"
            return back({"error": "invalid_request", "error_description": "response_mode"})
        if params.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        if not params.get("code_challenge"):
            return back({"error": "invalid_request", "error_description": "PKCE required"})
        if params.get("code_challenge_method", "plain") != "S256":
            return back({"error": "invalid_request", "error_description": "S256 required"})
        asked = self.granted_scopes(params.get("scope", "").split())
        if not asked:
            return back({"error": "invalid_scope", "error_description": "no scope"})
        if self._deny is not None:
            error, self._deny = self._deny, None
            return back({"error": error})
        scopes = tuple(s for s in asked if self._grant_only is None or s in self._grant_only)
        code = self.book.new_code(
            client_id=params["client_id"],
            redirect_uri=redirect,
            account=self.user,
            scopes=scopes,
            challenge=params["code_challenge"],
            offline=self.offline(params, scopes),
            nonce=params.get("nonce"),
        )
        return back({"code": code, **(extra or {}), **self.redirect_extras(scopes)})

    def granted_scopes(self, asked: Sequence[str]) -> tuple[str, ...]:
        """The scopes as the server names them (Google expands ``email``)."""
        return tuple(dict.fromkeys(asked))

    def offline(self, params: Mapping[str, str], scopes: Sequence[str]) -> bool:
        """Whether the grant comes with a refresh token."""
        raise NotImplementedError

    def redirect_extras(self, scopes: Sequence[str]) -> dict[str, str]:
        return {}

    def _redirect_allowed(self, client: _Client, uri: str) -> bool:
        if not uri or "#" in uri:
            return False
        return any(r == uri or _loopback_match(r, uri) for r in client.redirect_uris)

    # -- the token endpoint -----------------------------------------------------

    def token(self, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        """The token endpoint: authorization code and refresh token grants."""
        if "application/x-www-form-urlencoded" not in headers.get("content-type", ""):
            raise OAuthFailure("invalid_request", "expected a form body")
        form = form_body(body)
        client_id, method = self._authenticate(headers, form)
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.token_requests.append({"grant_type": grant_type, "client_auth": method})
        if grant_type == "authorization_code":
            grant, access = self.book.redeem(
                form.get("code", ""),
                client_id=client_id,
                redirect_uri=form.get("redirect_uri"),
                verifier=form.get("code_verifier"),
            )
            refresh = grant.refresh_token
        elif grant_type == "refresh_token":
            wanted = form.get("scope")
            grant, access, refresh = self.book.refresh(
                form.get("refresh_token", ""),
                client_id=client_id,
                scopes=self.granted_scopes(wanted.split()) if wanted else None,
            )
        else:
            raise OAuthFailure("unsupported_grant_type", grant_type or "no grant_type")
        for server in self.resource_servers:
            server.add_token(access, grant.account)
        answer = self.token_response(grant, access, refresh, form)
        return 200, {**JSON_HEADERS, **_NO_STORE}, json.dumps(answer).encode()

    def token_response(
        self, grant: Grant, access: str, refresh: str | None, form: Mapping[str, str]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.book.access_lifetime),
            "scope": " ".join(grant.scopes),
        }
        if refresh is not None:
            answer["refresh_token"] = refresh
        if "openid" in grant.scopes:
            answer["id_token"] = self.signer.sign(self.id_claims(grant))
        return answer

    def id_claims(self, grant: Grant) -> dict[str, Any]:
        raise NotImplementedError

    def _authenticate(self, headers: Mapping[str, str], form: Mapping[str, str]) -> tuple[str, str]:
        """The client's id and how it authenticated (RFC 6749 §2.3.1)."""
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            if "client_secret" in form:
                raise OAuthFailure("invalid_request", "one client authentication method only")
            try:
                decoded = base64.b64decode(basic[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthFailure("invalid_client", "malformed Basic credentials", 401) from None
            user, _, password = decoded.partition(":")
            client_id, method = unquote(user), "client_secret_basic"
            secret: str | None = unquote(password)
            if form.get("client_id", client_id) != client_id:
                raise OAuthFailure(
                    "invalid_request", "client_id differs from the Basic credentials"
                )
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret")
            method = "client_secret_post" if secret is not None else "none"
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthFailure("invalid_client", "the OAuth client was not found", 401)
        if client.secret is None:
            if secret is not None:
                raise OAuthFailure("invalid_client", "a public client has no secret", 401)
        elif secret is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise OAuthFailure("invalid_client", "client authentication failed", 401)
        return client_id, method


def html_page(status: int, text: str) -> HttpAnswer:
    body = f"<!doctype html><title>Error</title><p>{text}".encode()
    return status, _HTML, body


def _form_post(action: str, fields: Mapping[str, str]) -> bytes:
    """The self-submitting page of ``response_mode=form_post`` (OAuth 2.0
    Form Post Response Mode), as Azure AD sends it."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}" />'
        for k, v in fields.items()
    )
    return (
        "<html><head><title>Working...</title></head>"
        '<body onload="javascript:document.forms[0].submit()">'
        f'<form method="POST" name="hiddenform" action="{html.escape(action)}">{inputs}'
        "<noscript><p>Script is disabled. Click Submit to continue.</p>"
        '<input type="submit" value="Submit" /></noscript></form></body></html>'
    ).encode()


def json_answer(value: Any, status: int = 200) -> HttpAnswer:
    return status, JSON_HEADERS, json.dumps(value).encode()
