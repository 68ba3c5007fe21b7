"""Retry-After values and the back-off the HTTP and EWS clients share."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from commlink.errors import AuthError, ProviderError, RateLimited, TransientError
from commlink.providers.google.client import retry_after
from commlink.providers.retry import MAX_RETRY_AFTER, RetryPolicy, retry_after_seconds


def test_seconds_dates_and_junk() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("-5") == 0.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    wait = retry_after_seconds(later)
    assert wait is not None
    assert 80 <= wait <= 91
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("86400", MAX_RETRY_AFTER),
        ("86401", MAX_RETRY_AFTER),
        ("1e400", MAX_RETRY_AFTER),
        ("inf", MAX_RETRY_AFTER),
        ("Infinity", MAX_RETRY_AFTER),
        ("nan", MAX_RETRY_AFTER),
        (float("inf"), MAX_RETRY_AFTER),
        (float("nan"), MAX_RETRY_AFTER),
        ("-inf", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
    ],
)
def test_waits_are_capped_at_one_day(value: object, seconds: float) -> None:
    assert MAX_RETRY_AFTER == 86_400.0
    assert retry_after_seconds(value) == seconds


def test_google_responses_use_the_lower_cased_header() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after(None) is None


def policy(**kwargs: Any) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    return RetryPolicy(sleep=slept.append, **kwargs), slept


def test_backs_off_exponentially_with_jitter() -> None:
    retry, slept = policy(max_retries=4, base_delay=1.0)
    for attempt in range(4):
        retry.wait_or_raise(TransientError("503"), attempt)
    assert retry.retries == 4
    for attempt, delay in enumerate(slept):
        assert 2.0**attempt <= delay <= 1.5 * 2.0**attempt


def test_follows_the_servers_hint() -> None:
    retry, slept = policy()
    retry.wait_or_raise(RateLimited("429", retry_after=2.5), 0)
    assert slept == [2.5]


def test_raises_what_is_not_transient_or_outlasts_the_retries() -> None:
    retry, slept = policy(max_retries=1)
    cause = OSError("refused")
    with pytest.raises(AuthError) as raised:
        retry.wait_or_raise(AuthError("401"), 0, cause)
    assert raised.value.__cause__ is cause
    with pytest.raises(ProviderError, match="400"):
        retry.wait_or_raise(ProviderError("400"), 0)
    with pytest.raises(TransientError, match="503"):
        retry.wait_or_raise(TransientError("503"), 1)
    assert slept == []
    assert retry.retries == 0


def test_a_wait_beyond_max_wait_is_handed_back_as_rate_limited() -> None:
    retry, slept = policy(max_wait=10.0)
    with pytest.raises(RateLimited) as raised:
        retry.wait_or_raise(RateLimited("429", retry_after=float("inf")), 0)
    assert raised.value.retry_after == MAX_RETRY_AFTER
    assert str(raised.value) == "429"
    assert slept == []
