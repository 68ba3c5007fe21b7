"""Secrets stay masked: Secret values, URLs with credentials, and log records
from any logger, third-party ones at DEBUG included."""

from __future__ import annotations

import logging

import pytest

from commlink.credentials import (
    MASK,
    RedactingFilter,
    Secret,
    install_log_redaction,
    redact_text,
    redact_url,
    reveal,
)


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("hunter2-very-secret")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!s:>30}", f"{[secret]}"):
        assert "hunter2" not in shown
    assert reveal(secret) == "hunter2-very-secret"
    assert reveal("plain") == "plain"
    assert reveal(None) is None
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ann:pw@dav.example/cal/", f"https://{MASK}@dav.example/cal/"),
        ("https://ann@dav.example:8443/x?y=1", f"https://{MASK}@dav.example:8443/x?y=1"),
        ("https://dav.example/cal/", "https://dav.example/cal/"),
        ("http://[::1]:5232/", "http://[::1]:5232/"),
    ],
)
def test_urls_lose_their_credentials(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Basic YW5uOnB3ZA==",
        "{'Authorization': 'Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.x.y'}",
        "password=pw123456&user=ann",
        'refresh_token": "1//0gabcdefgh"',
        "GET https://ann:pw123456@dav.example/cal/",
        'a001 LOGIN ann "pw123456"',
        "a002 AUTHENTICATE XOAUTH2 dXNlcj1hbm4BYXV0aD1CZWFyZXIgeHl6AQE=",
    ],
)
def test_credential_shaped_text_is_masked(text: str) -> None:
    cleaned = redact_text(text)
    assert MASK in cleaned
    for secret in ("YW5uOnB3ZA", "eyJ0eXAi", "pw123456", "1//0gabcdefgh", "dXNlcj1hbm4"):
        assert secret not in cleaned


def test_third_party_debug_logs_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("s3cr3t-token-value")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("exchangelib.util").debug(
            "request headers: %s", {"Authorization": "Basic YW5uOnB3ZA=="}
        )
        logging.getLogger("httpx").debug("sending token %s", secret.reveal())
        try:
            raise RuntimeError(f"failed with {secret.reveal()}")
        except RuntimeError:
            logging.getLogger("commlink.sync").warning("step failed", exc_info=True)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "YW5uOnB3ZA" not in text
    assert "s3cr3t-token-value" not in text
    assert text.count(MASK) >= 3


def test_install_adds_one_filter_to_each_root_handler() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        install_log_redaction()
        install_log_redaction()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
