"""Reading an OpenID Connect ID token's claims to learn the account's address.

The signature is not verified: commlink has no keys to check it with, and
it need not. The ID token comes straight from the token endpoint in the
response to our own request over TLS (or to a loopback test server), which
OpenID Connect Core §3.1.3.7 accepts in place of a signature check; msal
reads Microsoft's ID tokens the same way. The audience and, when known,
the issuer are still checked. Never decode an ID token handed over by a
browser or a third party with this module.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from ..errors import AuthError

__all__ = ["account_from_claims", "check_claims", "unverified_claims"]

#: ID tokens are small; a larger one is not read.
MAX_ID_TOKEN = 16_384


def unverified_claims(id_token: str | None) -> dict[str, Any]:
    """The payload of a compact JWS as a dict; ``{}`` for anything malformed."""
    if not id_token or not isinstance(id_token, str) or len(id_token) > MAX_ID_TOKEN:
        return {}
    parts = id_token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def check_claims(claims: Mapping[str, Any], *, client_id: str, issuer: str | None) -> None:
    """Raise ``AuthError`` when the ID token was not issued to ``client_id``
    (``aud``) or, when ``issuer`` is given, by it (``iss``)."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise AuthError("the ID token was issued to another app (aud): sign in again")
    if issuer is not None:
        found = str(claims.get("iss", "")).rstrip("/")
        # Google names itself with or without the scheme
        if found not in (issuer.rstrip("/"), issuer.removeprefix("https://").rstrip("/")):
            raise AuthError("the ID token names another issuer (iss): sign in again")


def account_from_claims(claims: Mapping[str, Any]) -> str:
    """The mailbox address the grant is for: ``email`` (unless Google marks
    it unverified), else Microsoft's ``preferred_username`` or ``upn``;
    ``""`` when none looks like an address."""
    candidates = []
    if claims.get("email_verified") is not False:
        candidates.append(claims.get("email"))
    candidates += [claims.get("preferred_username"), claims.get("upn")]
    for value in candidates:
        if isinstance(value, str) and _looks_like_address(value.strip()):
            return value.strip().lower()
    return ""


def _looks_like_address(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return (
        bool(at and local and "." in domain.strip("."))
        and len(text) <= 254
        and text.isprintable()
        and not any(c.isspace() or c in '<>,;"' for c in text)
    )
