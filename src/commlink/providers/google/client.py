"""What the Gmail and Google Calendar providers share: building a client
from the bundled discovery documents, mapping errors, pacing within the
per-user quota, retrying and batching calls.

google-api-python-client is imported lazily (``pip install commlink[gmail]``).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from ...credentials import is_loopback_host, redact_text, redact_url
from ...errors import (
    AuthError,
    ConfigError,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
)
from ..retry import RetryPolicy, retry_after_seconds

__all__ = [
    "BATCH_LIMIT",
    "Call",
    "GoogleClient",
    "QuotaBucket",
    "build_service",
    "map_error",
]

#: Google accepts at most 100 calls per batch; Gmail advises 50.
BATCH_LIMIT = 50

_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def check_endpoint(url: str, field: str) -> None:
    """Credentials go only to an https endpoint (http only on loopback: a
    local test server); anything else raises ``ConfigError``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"invalid URL {redact_url(url)}", field=field) from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{field} must not carry credentials", field=field)
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
    ):
        raise ConfigError(
            f"{field} must be https (http only on loopback): {redact_url(url)}", field=field
        )


def build_service(
    api: str,
    version: str,
    credentials: Any,
    api_endpoint: str | None,
    http: Any = None,
) -> Any:
    """A client built from the bundled discovery document (no network)."""
    try:
        from googleapiclient.discovery import build
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the Google providers need google-api-python-client: pip install commlink[gmail]"
        ) from exc
    if api_endpoint:
        check_endpoint(api_endpoint, "api_endpoint")
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    if http is not None:
        authed = importlib.import_module("google_auth_httplib2").AuthorizedHttp(
            credentials, http=http
        )
        return build(api, version, http=authed, static_discovery=True, client_options=options)
    return build(
        api,
        version,
        credentials=credentials,
        static_discovery=True,
        client_options=options,
        cache_discovery=False,
    )


def _reason(exc: Any) -> str:
    try:
        details = exc.error_details
        if isinstance(details, list) and details and isinstance(details[0], dict):
            return str(details[0].get("reason", ""))
    except AttributeError:
        pass
    return ""


def retry_after(resp: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    return None if resp is None else retry_after_seconds(resp.get("retry-after"))


def map_error(exc: BaseException) -> ProviderError:
    """Translate a client-library or transport exception into commlink's tree."""
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, RefreshError):
        return AuthError(f"credentials refused: {redact_text(str(exc))}")
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        reason = _reason(exc)
        text = redact_text(f"HTTP {status} {reason}: {exc.reason}".strip())
        if status == 429 or (status == 403 and reason in _RATE_REASONS):
            return RateLimited(text, retry_after(exc.resp))
        if status in (401, 403):
            return AuthError(text)
        if status == 404:
            return NotFound(text)
        if status == 410:
            return CursorExpired(text)
        if status >= 500 or status == 408:
            return TransientError(text)
        return ProviderError(text)
    if isinstance(exc, TransportError | OSError | TimeoutError):
        return TransientError(redact_text(f"network: {exc!r}"))
    httplib2 = importlib.import_module("httplib2")
    if isinstance(exc, httplib2.HttpLib2Error):
        return TransientError(redact_text(f"network: {exc!r}"))
    return ProviderError(redact_text(f"{type(exc).__name__}: {exc}"))


class QuotaBucket:
    """A token bucket of quota units that sleeps *before* a call so the
    per-user ceiling is never crossed.

    The refill rate is ``headroom`` of the ceiling; the burst is a couple of
    seconds' worth, so time spent between calls (parsing, committing) is
    not lost while any 60 s window stays under the ceiling.
    """

    def __init__(
        self,
        units_per_minute: float | None,
        *,
        headroom: float = 0.96,
        burst_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = units_per_minute * headroom / 60.0 if units_per_minute else None
        self.capacity = (
            max(self.rate * burst_seconds, 1.0) if self.rate is not None else float("inf")
        )
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._at = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def take(self, units: float) -> None:
        """Wait until ``units`` may be spent, then spend them."""
        if self.rate is None:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= units
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self.waited += wait
            self._sleep(wait)


@attrs.frozen
class Call:
    """One API call for ``GoogleClient.batch``: a prepared request and its cost."""

    key: Hashable
    request: Any
    cost: int


class GoogleClient:
    """Runs calls against one Google API with pacing, retries and batching.

    Retryable failures (429, 403 rate limits, 5xx, network) are retried up
    to ``max_retries`` times with exponential back-off and jitter, honouring
    ``Retry-After``; a wait longer than ``max_wait`` seconds is handed to the
    engine as ``RateLimited`` instead of blocking.
    """

    def __init__(
        self,
        batch_uri: str,
        bucket: QuotaBucket,
        *,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.batch_uri = batch_uri
        self.bucket = bucket
        self.retry = RetryPolicy(
            max_retries=max_retries, base_delay=base_delay, max_wait=max_wait, sleep=sleep
        )

    @property
    def retries(self) -> int:
        """How many times a call was sent again after waiting."""
        return self.retry.retries

    def execute(self, request: Any, cost: int) -> Any:
        """Run one call; raises a commlink error when it finally fails."""
        return self._run(lambda: request.execute(num_retries=0), cost)

    def _run(self, send: Callable[[], Any], cost: int) -> Any:
        for attempt in range(self.retry.max_retries + 1):
            self.bucket.take(cost)
            try:
                return send()
            except Exception as exc:
                error = map_error(exc)
                self.retry.wait_or_raise(error, attempt, None if exc is error else exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def batch(self, calls: Sequence[Call]) -> Iterator[tuple[Hashable, Any | ProviderError]]:
        """Run calls in batch requests of at most ``BATCH_LIMIT``; yields each
        key with its result, or the ``ProviderError`` it finally failed with.

        A call that fails inside a batch with a retryable error is retried
        alone with back-off; an ``AuthError`` is raised.
        """
        from googleapiclient.http import BatchHttpRequest

        for start in range(0, len(calls), BATCH_LIMIT):
            chunk = calls[start : start + BATCH_LIMIT]
            if len(chunk) == 1:
                yield chunk[0].key, self._alone(chunk[0])
                continue
            results: dict[str, tuple[Any, BaseException | None]] = {}
            batch = BatchHttpRequest(callback=_collector(results), batch_uri=self.batch_uri)
            for n, call in enumerate(chunk):
                batch.add(call.request, request_id=str(n))
            self._run(batch.execute, sum(c.cost for c in chunk))
            for n, call in enumerate(chunk):
                response, exception = results.get(str(n), (None, TransientError("no answer")))
                if exception is None:
                    yield call.key, response
                    continue
                error = map_error(exception)
                if isinstance(error, AuthError):
                    raise error from exception
                if isinstance(error, TransientError):
                    yield call.key, self._alone(call)
                else:
                    yield call.key, error

    def _alone(self, call: Call) -> Any | ProviderError:
        try:
            return self.execute(call.request, call.cost)
        except AuthError:
            raise
        except ProviderError as error:
            return error


def _collector(
    results: dict[str, tuple[Any, BaseException | None]],
) -> Callable[[str, Any, BaseException | None], None]:
    def collect(request_id: str, response: Any, exception: BaseException | None) -> None:
        results[request_id] = (response, exception)

    return collect
