"""Retrying a provider's transient failures, shared by the API clients:
reading ``Retry-After`` and backing off with jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import attrs

from ..errors import (
    MAX_RETRY_AFTER,
    ProviderError,
    RateLimited,
    TransientError,
    bounded_wait,
)

# jitter from a generator of its own: the process-wide `random` state is the
# host's (and a test framework's), never to be disturbed from background threads
_JITTER = random.SystemRandom()

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "retry_after_seconds"]

log = logging.getLogger("commlink.providers.retry")


def retry_after_seconds(value: object) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP
    date); ``None`` when absent or unreadable.

    Bounded as ``RateLimited.retry_after`` is: at most ``MAX_RETRY_AFTER``
    (one day), which is also what ``inf`` and ``nan`` mean.
    """
    if not value:
        return None
    try:
        return bounded_wait(float(str(value)))
    except ValueError:
        pass
    try:
        return bounded_wait(parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


@attrs.define
class RetryPolicy:
    """When to retry a failed call, and how long to wait first.

    ``TransientError`` is retried up to ``max_retries`` times, waiting what a
    ``RateLimited`` error's ``retry_after`` says, else ``base_delay * 2**attempt``
    plus up to half of that again as jitter. ``retries`` counts the waits.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0

    def delay(self, error: ProviderError, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        hinted = error.retry_after if isinstance(error, RateLimited) else None
        if hinted is not None:
            return hinted
        return float(self.base_delay * 2.0**attempt * (1 + _JITTER.random() / 2))

    def wait_or_raise(
        self, error: ProviderError, attempt: int, cause: BaseException | None = None
    ) -> None:
        """Sleep before the next try, or raise: ``error`` itself when it is not
        transient or the retries are used up, ``RateLimited`` (with the wait)
        when the wait is longer than ``max_wait``. ``cause`` chains the raise."""
        if not isinstance(error, TransientError) or attempt >= self.max_retries:
            raise error from cause
        delay = self.delay(error, attempt)
        if delay > self.max_wait:
            raise RateLimited(str(error), delay) from cause
        self.retries += 1
        log.info("retrying after %.2fs: %s", delay, error)
        self.sleep(delay)
