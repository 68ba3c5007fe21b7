"""Retry-After values, as both HTTP adapters read them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from commlink.providers.google.client import retry_after
from commlink.providers.retry import retry_after_seconds


def test_seconds_dates_and_junk() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("-5") == 0.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    wait = retry_after_seconds(later)
    assert wait is not None
    assert 80 <= wait <= 91
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_google_responses_use_the_lower_cased_header() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after(None) is None
