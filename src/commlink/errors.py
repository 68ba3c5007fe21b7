"""The exception tree. Adapters translate SDK errors into these at their edge."""

from __future__ import annotations

import math

__all__ = [
    "MAX_RETRY_AFTER",
    "AttachmentTooLarge",
    "AuthError",
    "CommlinkError",
    "ConfigError",
    "CursorExpired",
    "InvalidInput",
    "NotFound",
    "ProviderError",
    "RateLimited",
    "StoreError",
    "SweepRefused",
    "TransientError",
    "bounded_wait",
]


class CommlinkError(Exception):
    """Root of every error commlink raises."""


class ConfigError(CommlinkError):
    """A setting is missing or wrong; ``field`` names it when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class InvalidInput(CommlinkError):
    """A value handed to commlink is not acceptable; nothing was written."""


class StoreError(CommlinkError):
    """The store failed to read or write."""


class ProviderError(CommlinkError):
    """A mail or calendar provider failed."""


class AuthError(ProviderError):
    """Credentials were refused or revoked; the user must reconnect."""


class TransientError(ProviderError):
    """A temporary failure (network, 5xx): retry later."""


#: The longest wait a provider's ``Retry-After`` can impose, in seconds (one
#: day): a server that asks for longer, or sends a non-finite number, gets this.
MAX_RETRY_AFTER = 86_400.0


class RateLimited(TransientError):
    """The provider asked us to slow down; retry after ``retry_after`` seconds.

    ``retry_after`` is clamped to ``0..MAX_RETRY_AFTER``; a non-finite value
    counts as the maximum, an unreadable one as absent.
    """

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = bounded_wait(retry_after)


def bounded_wait(value: object) -> float | None:
    """Seconds to wait from a provider's hint, clamped to ``0..MAX_RETRY_AFTER``
    (NaN and infinity count as the maximum); ``None`` when unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds):
        return MAX_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class CursorExpired(ProviderError):
    """The incremental cursor is no longer valid: a full resync is needed."""


class NotFound(ProviderError):
    """The requested item or folder does not exist (any more)."""


class AttachmentTooLarge(ProviderError):
    """An attachment's content is larger than the limit it was opened with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"attachment larger than {limit} bytes")
        self.limit = limit


class SweepRefused(ProviderError):
    """A sync step would have deleted more of a channel than its guard allows
    (``SyncEngine(max_sweep_share=...)``), or the provider listed no folders
    or calendars at all while the channel holds some. Nothing was deleted;
    ``would_remove`` of the ``held`` stored ids would have gone."""

    def __init__(self, message: str, *, would_remove: int = 0, held: int = 0) -> None:
        super().__init__(message)
        self.would_remove = would_remove
        self.held = held
