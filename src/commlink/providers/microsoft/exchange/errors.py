"""Translating exchangelib errors into commlink's, and honouring back-off.

``ErrorServerBusy`` carries the server's ``BackOffMilliseconds``: a call
waits that long and tries again (up to ``max_retries`` times, never longer
than ``max_wait`` per wait), then raises ``RateLimited`` with the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ....errors import AuthError, CursorExpired, NotFound, RateLimited, TransientError
from ...retry import RetryPolicy, retry_after_seconds

__all__ = ["Caller", "item_error"]

R = TypeVar("R")

#: Waited when a busy answer names no back-off.
DEFAULT_BACK_OFF = 5.0


def _auth_errors() -> tuple[type[BaseException], ...]:
    from exchangelib import errors as e

    return (
        e.UnauthorizedError,
        e.ErrorAccessDenied,
        e.ErrorNonExistentMailbox,
        e.ErrorImpersonateUserDenied,
        e.ErrorImpersonationDenied,
        e.ErrorImpersonationFailed,
    )


def _sync_state_errors() -> tuple[type[BaseException], ...]:
    from exchangelib import errors as e

    return (e.ErrorInvalidSyncStateData, e.ErrorSyncFolderNotFound)


class Caller:
    """Runs exchangelib calls with retries on ``ErrorServerBusy``."""

    def __init__(
        self,
        max_retries: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = RetryPolicy(max_retries=max_retries, max_wait=max_wait, sleep=sleep)

    @property
    def retries(self) -> int:
        """How many calls were made again after a busy answer."""
        return self.retry.retries

    def __call__(self, what: str, call: Callable[[], R]) -> R:
        from exchangelib import errors as e

        attempt = 0
        while True:
            try:
                return call()
            except e.ErrorServerBusy as exc:
                wait = retry_after_seconds(exc.back_off) or DEFAULT_BACK_OFF
                busy = RateLimited(f"{what}: server busy", retry_after=wait)
                self.retry.wait_or_raise(busy, attempt, exc)
                attempt += 1
            except _sync_state_errors() as exc:
                raise CursorExpired(f"{what}: {exc}") from exc
            except _auth_errors() as exc:
                raise AuthError(f"{what}: {exc}") from exc
            except e.ErrorFolderNotFound as exc:
                raise NotFound(f"{what}: {exc}") from exc
            except (e.TransportError, e.CASError, OSError) as exc:
                raise TransientError(f"{what}: {type(exc).__name__}: {exc}"[:500]) from exc


def item_error(exc: BaseException) -> str:
    """The reason recorded for an item GetItem could not return."""
    from exchangelib import errors as e

    if isinstance(exc, e.ErrorItemNotFound):
        return "not found"
    return f"could not fetch: {type(exc).__name__}: {exc}"[:500]
