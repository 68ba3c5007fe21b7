"""What a local authorization server remembers: authorization codes,
grants (one per consent), refresh tokens and access tokens, with the rules
RFC 6749 and RFC 7636 set for them.

- A code is single-use, bound to its client and redirect URI, expires
  after ``code_lifetime`` seconds, and is redeemed only with the PKCE
  verifier whose S256 hash is its challenge. A code used twice revokes
  the grant issued from it (RFC 6749 §4.1.2).
- A refresh token is bound to its client; with rotation, each refresh
  issues a new one and the old one stops working.
- Revoking an account (or any of a grant's tokens) revokes the grant:
  its refresh token answers ``invalid_grant`` and its access tokens stop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable

import attrs

__all__ = ["AccessToken", "Grant", "GrantBook", "OAuthFailure"]


class OAuthFailure(Exception):
    """An RFC 6749 error answer: ``error`` code, description, HTTP status."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@attrs.define
class Grant:
    """One user's consent to one client."""

    id: str
    client_id: str
    account: str
    scopes: tuple[str, ...]
    offline: bool
    nonce: str | None = None
    refresh_token: str | None = None
    revoked: bool = False
    access_tokens: list[str] = attrs.field(factory=list)


@attrs.define
class _Code:
    client_id: str
    redirect_uri: str
    account: str
    scopes: tuple[str, ...]
    challenge: str
    offline: bool
    nonce: str | None
    expires: float
    used: bool = False
    grant_id: str | None = None


@attrs.define
class AccessToken:
    grant_id: str
    account: str
    client_id: str
    scopes: tuple[str, ...]
    expires: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class GrantBook:
    """Codes, grants and tokens of one authorization server (thread-safe)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        code_lifetime: float,
        access_lifetime: float,
        rotate: bool,
        prefixes: tuple[str, str] = ("at-", "rt-"),
    ) -> None:
        self.clock = clock
        self.code_lifetime = code_lifetime
        self.access_lifetime = access_lifetime
        self.rotate = rotate
        self._prefixes = prefixes
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self.grants: dict[str, Grant] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> grant id
        self._access: dict[str, AccessToken] = {}

    def new_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        account: str,
        scopes: tuple[str, ...],
        challenge: str,
        offline: bool,
        nonce: str | None,
    ) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(
                client_id, redirect_uri, account, scopes, challenge, offline, nonce,
                self.clock() + self.code_lifetime,
            )  # fmt: skip
        return code

    def redeem(
        self, code: str, *, client_id: str, redirect_uri: str | None, verifier: str | None
    ) -> tuple[Grant, str]:
        """The grant for an authorization code and a new access token."""
        with self._lock:
            found = self._codes.get(code)
            if found is None:
                raise OAuthFailure("invalid_grant", "unknown authorization code")
            if found.used:
                if found.grant_id is not None:  # replayed: take back what it gave
                    self._revoke_grant(found.grant_id)
                raise OAuthFailure("invalid_grant", "authorization code already used")
            if found.client_id != client_id:
                raise OAuthFailure("invalid_grant", "code issued to another client")
            found.used = True
            if self.clock() > found.expires:
                raise OAuthFailure("invalid_grant", "authorization code expired")
            if redirect_uri != found.redirect_uri:
                raise OAuthFailure("invalid_grant", "redirect_uri differs from the authorization")
            if not verifier:
                raise OAuthFailure("invalid_request", "code_verifier required")
            if not hmac.compare_digest(_s256(verifier), found.challenge):
                raise OAuthFailure("invalid_grant", "PKCE verification failed")
            grant = Grant(
                secrets.token_hex(8), client_id, found.account, found.scopes, found.offline,
                found.nonce,
            )  # fmt: skip
            if found.offline:
                grant.refresh_token = self._new_refresh(grant.id)
            self.grants[grant.id] = grant
            found.grant_id = grant.id
            return grant, self._new_access(grant)

    def refresh(
        self, refresh_token: str, *, client_id: str, scopes: tuple[str, ...] | None
    ) -> tuple[Grant, str, str | None]:
        """The grant, a new access token, and a rotated refresh token (or ``None``)."""
        with self._lock:
            grant_id = self._refresh.get(refresh_token)
            grant = self.grants.get(grant_id or "")
            if grant is None or grant.revoked or grant.refresh_token != refresh_token:
                raise OAuthFailure("invalid_grant", "refresh token expired, revoked or unknown")
            if grant.client_id != client_id:
                raise OAuthFailure("invalid_grant", "refresh token issued to another client")
            if scopes is not None and not set(scopes) <= set(grant.scopes):
                raise OAuthFailure("invalid_scope", "scope not granted")
            rotated = None
            if self.rotate:
                del self._refresh[refresh_token]
                rotated = grant.refresh_token = self._new_refresh(grant.id)
            return grant, self._new_access(grant, scopes), rotated

    def access(self, token: str) -> AccessToken | None:
        """The access token's record while it is valid."""
        with self._lock:
            found = self._access.get(token)
            if found is None or self.clock() >= found.expires:
                return None
            grant = self.grants.get(found.grant_id)
            return None if grant is None or grant.revoked else found

    def revoke_account(self, account: str | None) -> list[str]:
        """Revoke every grant (of ``account``, or all); the access tokens that stop."""
        with self._lock:
            gone: list[str] = []
            for grant in self.grants.values():
                if account is None or grant.account.lower() == account.lower():
                    gone += self._revoke_grant(grant.id)
            return gone

    def revoke_token(self, token: str) -> list[str] | None:
        """Revoke the grant holding ``token`` (access or refresh); ``None`` if unknown."""
        with self._lock:
            grant_id = self._refresh.get(token)
            if grant_id is None and token in self._access:
                grant_id = self._access[token].grant_id
            if grant_id is None:
                return None
            return self._revoke_grant(grant_id)

    def expire_access(self, account: str | None = None) -> list[str]:
        """End access tokens now, as if their lifetime had passed."""
        with self._lock:
            gone = [
                token
                for token, found in self._access.items()
                if account is None or found.account.lower() == account.lower()
            ]
            for token in gone:
                self._access[token].expires = min(self._access[token].expires, self.clock())
            return gone

    def sweep(self) -> list[str]:
        """Forget access tokens whose time is up; returns them."""
        with self._lock:
            now = self.clock()
            gone = [t for t, found in self._access.items() if now >= found.expires]
            for token in gone:
                del self._access[token]
            return gone

    def _revoke_grant(self, grant_id: str) -> list[str]:
        grant = self.grants[grant_id]
        grant.revoked = True
        if grant.refresh_token is not None:
            self._refresh.pop(grant.refresh_token, None)
        gone = [t for t in grant.access_tokens if t in self._access]
        for token in gone:
            del self._access[token]
        return gone

    def _new_refresh(self, grant_id: str) -> str:
        token = self._prefixes[1] + secrets.token_urlsafe(32)
        self._refresh[token] = grant_id
        return token

    def _new_access(self, grant: Grant, scopes: tuple[str, ...] | None = None) -> str:
        token = self._prefixes[0] + secrets.token_urlsafe(32)
        self._access[token] = AccessToken(
            grant.id, grant.account, grant.client_id, scopes or grant.scopes,
            self.clock() + self.access_lifetime,
        )  # fmt: skip
        grant.access_tokens.append(token)
        return token
