"""PKCE (RFC 7636): a one-time code verifier and its S256 challenge.

The challenge travels in the authorization URL; the verifier stays with
the client and goes only to the token endpoint, so a code intercepted on
its way back (another app on the machine listening on the redirect) is
useless without it. Only ``S256`` is offered: ``plain`` protects nothing
once the URL is seen.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

import attrs

from ..credentials import Secret
from ..errors import InvalidInput

__all__ = ["PkcePair", "new_pkce", "s256_challenge", "valid_verifier"]

#: RFC 7636 §4.1: 43 to 128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"``.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def valid_verifier(verifier: str) -> bool:
    """Whether ``verifier`` has the length and alphabet RFC 7636 §4.1 requires."""
    return _VERIFIER.fullmatch(verifier) is not None


def s256_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 §4.2)."""
    if not valid_verifier(verifier):
        raise InvalidInput("a PKCE code verifier is 43-128 unreserved characters")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@attrs.frozen(slots=True)
class PkcePair:
    """A code verifier (secret) and the challenge sent with the authorization request."""

    verifier: Secret
    challenge: str
    method: str = "S256"


def new_pkce(length: int = 64) -> PkcePair:
    """A fresh verifier of ``length`` characters (43-128) from 32+ random bytes."""
    if not 43 <= length <= 128:
        raise InvalidInput("a PKCE code verifier is 43 to 128 characters long")
    # token_urlsafe yields ~1.3 characters per byte, from the unreserved alphabet
    verifier = secrets.token_urlsafe(length)[:length]
    return PkcePair(Secret(verifier), s256_challenge(verifier))
