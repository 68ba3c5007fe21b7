"""The OAuth ``state`` parameter: binds an authorization response to the
sign-in that asked for it (RFC 6749 §10.12, cross-site request forgery).

It is unguessable, checked on return with a constant-time comparison, and
a mismatch is refused before the code is used.
"""

from __future__ import annotations

import hmac
import secrets

from ..errors import AuthError

__all__ = ["check_state", "new_state"]


def new_state() -> str:
    """A fresh state value: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def check_state(expected: str, received: str | None) -> None:
    """Raise ``AuthError`` unless ``received`` is the state that was sent."""
    if not expected:
        raise AuthError("this sign-in has no state to check: start it again")
    given = (received or "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected.encode("utf-8"), given):
        raise AuthError(
            "the authorization response does not belong to this sign-in (state mismatch): "
            "start connecting the account again"
        )
