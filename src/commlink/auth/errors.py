"""What an authorization server's refusal means for the host.

Token endpoints answer errors as RFC 6749 §5.2 codes. ``grant_error``
turns one into commlink's error tree with a message a host can show:
``invalid_grant`` (revoked, expired, or a password change) means the user
must connect the account again; a refused client is the app's settings;
a server error is worth a retry.
"""

from __future__ import annotations

from ..errors import AuthError, ProviderError, TransientError

__all__ = ["LABELS", "GrantRefused", "grant_error"]

LABELS = {"google": "Google", "microsoft": "Microsoft"}

_RETRY = frozenset({"temporarily_unavailable", "server_error", "slow_down"})


class GrantRefused(ProviderError):
    """A token endpoint answered an OAuth error; ``error`` is its code."""

    def __init__(self, error: str, description: str = "", status: int | None = None) -> None:
        super().__init__(f"{error}: {description}".strip(": ")[:300])
        self.error = error
        self.description = description
        self.status = status


def grant_error(provider: str, refused: GrantRefused) -> ProviderError:
    """The commlink error for ``refused`` at ``provider`` (``google``/``microsoft``)."""
    who = LABELS.get(provider, provider)
    code = refused.error
    if code == "invalid_grant":
        return AuthError(f"{who} refused the saved grant (invalid_grant): reconnect the account")
    if code in ("invalid_client", "unauthorized_client"):
        return AuthError(
            f"{who} refused the app's client credentials ({code}): check client_id "
            "and client_secret"
        )
    if code == "invalid_scope":
        return AuthError(
            f"{who} refused the scopes asked for (invalid_scope): reconnect the account"
        )
    if code == "access_denied":
        return AuthError(f"{who} sign-in was declined (access_denied): try connecting again")
    if code in _RETRY or (refused.status is not None and refused.status >= 500):
        return TransientError(f"{who} sign-in is unavailable ({code}): will retry")
    return ProviderError(f"{who} sign-in failed ({code})")
