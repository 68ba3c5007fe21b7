"""EWS streaming notifications for every selected folder and calendar
(``watch_scopes``), on by default from the registry, and a refused
subscription that leaves the channel to polling without an error."""

from __future__ import annotations

import queue
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from ews_support import OWNER, PASSWORD, mail, mail_channel

from commlink.model import Channel, ChannelKind, FolderKind
from commlink.providers.microsoft.exchange import (
    ExchangeCalendarProvider,
    ExchangeMailProvider,
    connect,
)
from commlink.providers.registry import connect as open_channel
from commlink.testing.microsoft import EwsServer
from commlink.testing.microsoft.ews_mailbox import EwsMailbox
from commlink.testing.microsoft.ews_xml import error_message

pytestmark = pytest.mark.integration


def _reader(events: Iterator[str]) -> queue.Queue[str | None]:
    found: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        try:
            for folder_id in events:
                found.put(folder_id)
        finally:
            found.put(None)

    threading.Thread(target=read, daemon=True).start()
    return found


def _finish(watch: object, found: queue.Queue[str | None]) -> None:
    """Cancel the watch and wait for its reader (the stream ends within a second)."""
    watch.cancel()  # type: ignore[attr-defined]
    while found.get(timeout=5) is not None:
        pass


def _mail(server: EwsServer) -> ExchangeMailProvider:
    server.subscriptions.stream_seconds = 0.5
    return ExchangeMailProvider(
        connect(
            OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=PASSWORD
        ),
        streaming=True,
        streaming_minutes=1,
    )


def test_one_subscription_names_the_folder_that_changed(server: EwsServer) -> None:
    provider = _mail(server)
    folders = [f for f in provider.folders() if f.kind in (FolderKind.INBOX, FolderKind.SENT)]
    scopes = provider.scopes(folders)
    ids = {f.kind: f.id for f in folders}
    watch = provider.watch_scopes(scopes)
    assert watch is not None
    with watch as events:
        found = _reader(events)
        started = time.monotonic()
        server.add_message("sentitems", mail(1))
        assert found.get(timeout=5) == ids[FolderKind.SENT]
        server.add_message("inbox", mail(2))  # the next stream carries it on
        assert found.get(timeout=5) == ids[FolderKind.INBOX]
        waited = time.monotonic() - started
        server.add_message("drafts", mail(3))  # not watched
        with pytest.raises(queue.Empty):
            found.get(timeout=1.0)
        _finish(watch, found)
    assert server.requests["Subscribe"] == 1
    assert server.requests["Unsubscribe"] == 1
    assert waited < 4.0
    provider.close()


def test_calendars_are_watched_too(server: EwsServer) -> None:
    server.subscriptions.stream_seconds = 0.5
    provider = ExchangeCalendarProvider(
        connect(
            OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=PASSWORD
        ),
        streaming_minutes=1,
    )
    scopes = provider.scopes(provider.calendars())
    watch = provider.watch_scopes(scopes)
    assert watch is not None
    with watch as events:
        found = _reader(events)
        server.put_event(
            "calendar", "uid-1", "Kick-off", datetime(2026, 3, 3, 9, tzinfo=timezone.utc)
        )
        assert found.get(timeout=5) == scopes[0].id
        _finish(watch, found)
    provider.close()


def test_streaming_is_on_by_default_from_the_registry(server: EwsServer) -> None:
    options = {"service_endpoint": server.url, "auth": "basic", "username": OWNER}
    options["password"] = PASSWORD
    provider = open_channel(mail_channel(), options)
    assert isinstance(provider, ExchangeMailProvider)
    assert provider.streaming
    off = open_channel(mail_channel(), {**options, "streaming": False})
    assert isinstance(off, ExchangeMailProvider)
    assert not off.streaming
    assert off.watch_scopes(off.scopes(off.folders())) is None
    calendar = open_channel(
        Channel(
            "ews-cal", "u-owner", ChannelKind.CALENDAR, "exchange-calendar", mail_channel().settings
        ),
        options,
    )
    assert isinstance(calendar, ExchangeCalendarProvider)
    assert calendar.streaming
    for opened in (provider, off, calendar):
        opened.close()


def test_a_refused_subscription_leaves_the_channel_to_polling(
    server: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
        error_message(
            messages, "Subscribe", "ErrorInvalidSubscriptionRequest", "Streaming is disabled."
        )

    monkeypatch.setattr(server.subscriptions, "subscribe", refuse)
    provider = _mail(server)
    watch = provider.watch_scopes(provider.scopes(provider.folders()))
    assert watch is not None
    with watch as events:
        assert list(events) == []
    assert server.requests["Subscribe"] == 1
    provider.close()
