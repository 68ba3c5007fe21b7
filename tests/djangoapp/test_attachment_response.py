"""``attachment_response``: the demo's attachment streamed through the
configured channel's provider, with safe headers, and the provider closed
however the response ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.http import Http404
from django.test import override_settings
from host_fixtures import clear_host, host_settings, mailbox

from commlink.contrib.django import attachments
from commlink.contrib.django.attachments import attachment_response
from commlink.contrib.django.conf import get_directory, get_store
from commlink.contrib.django.runtime import configured_channels, open_provider
from commlink.contrib.django.store_testing import clear_store
from commlink.records import Viewer
from commlink.sync.engine import SyncEngine

QUOTE = "g2.demo@northwind.example"  # carries one PDF
PDF_NAME = "Globex quote \u2013 40 seats.pdf"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The providers ``attachment_response`` opens, each with a ``closed`` count."""
    found: list[Any] = []

    def recording(channel: Any) -> Any:
        provider = open_provider(channel)
        provider.closed = 0
        close = provider.close

        def counted() -> None:
            provider.closed += 1
            close()

        provider.close = counted
        found.append(provider)
        return provider

    monkeypatch.setattr(attachments, "open_provider", recording)
    return found


def _synced(**channel: Any) -> Iterator[str]:
    clear_store()
    clear_host()
    with override_settings(COMMLINK=host_settings(CHANNELS=[mailbox(**channel)])):
        engine = SyncEngine(get_store(), get_directory())
        for channel in configured_channels():
            provider = open_provider(channel)
            try:
                assert engine.run(channel, provider).errors == []
            finally:
                provider.close()
        yield get_store().threads_by_message_ids([QUOTE])[QUOTE]
    clear_store()


@pytest.fixture
def thread_id() -> Iterator[str]:
    yield from _synced(visibility="subject")


@pytest.fixture
def small_limit_thread_id() -> Iterator[str]:
    yield from _synced(visibility="subject", limits={"max_attachment_bytes": 10})


def test_the_owner_downloads_the_pdf_and_the_provider_is_closed(
    thread_id: str, opened: list[Any]
) -> None:
    response = attachment_response(Viewer("alice"), thread_id, QUOTE, index=0, inline=True)
    assert response.status_code == 200
    headers = dict(response.items())
    assert headers["Content-Type"] == "application/pdf"  # a PDF is never shown inline
    assert headers["Content-Disposition"].startswith('attachment; filename="Globex quote _ 40')
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "private, no-store"
    body = b"".join(response.streaming_content)  # type: ignore[union-attr]
    assert body.startswith(b"%PDF-1.4")
    assert body.endswith(b"%%EOF\n")
    assert [p.closed for p in opened] == [0]
    response.close()
    assert [p.closed for p in opened] == [1]


def test_a_response_dropped_unread_still_closes_the_provider(
    thread_id: str, opened: list[Any]
) -> None:
    response = attachment_response(Viewer("alice"), thread_id, QUOTE, index=0)
    response.close()
    assert [p.closed for p in opened] == [1]


def test_a_colleague_below_full_gets_not_found(thread_id: str, opened: list[Any]) -> None:
    with pytest.raises(Http404):
        attachment_response(Viewer("bob"), thread_id, QUOTE, index=0)
    with pytest.raises(Http404):
        attachment_response(Viewer("alice"), thread_id, QUOTE, index=1)
    assert opened == []  # refused before any provider was opened


def test_an_attachment_over_the_limit_is_refused_before_any_request(
    thread_id: str, opened: list[Any]
) -> None:
    response = attachment_response(Viewer("alice"), thread_id, QUOTE, index=0, max_bytes=10)
    assert response.status_code == 413
    assert opened == []


def test_the_channels_own_limit_applies_by_default(
    small_limit_thread_id: str, opened: list[Any]
) -> None:
    response = attachment_response(Viewer("alice"), small_limit_thread_id, QUOTE, index=0)
    assert response.status_code == 413
    assert opened == []
