"""The registry builds the Microsoft providers from configuration options."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from commlink.errors import ConfigError
from commlink.model import Channel, ChannelKind, ChannelSettings, Visibility
from commlink.providers.microsoft.exchange import ExchangeCalendarProvider, ExchangeMailProvider
from commlink.providers.microsoft.graph import GraphCalendarProvider, GraphMailProvider
from commlink.providers.registry import PROVIDER_KINDS, connect
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import EwsServer, GraphServer
from commlink.testing.provider_conformance import OWNER, sample_message

pytestmark = pytest.mark.integration

SETTINGS = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as running:
        yield running


def test_graph_channels_from_options(graph: GraphServer) -> None:
    assert PROVIDER_KINDS["graph"] is ChannelKind.MAIL
    assert PROVIDER_KINDS["graph-calendar"] is ChannelKind.CALENDAR
    graph.mail.add_message(sample_message(1), received=datetime(2026, 3, 2, tzinfo=timezone.utc))
    options = {"token": graph.token, "base_url": graph.base_url, "user": OWNER, "max_wait": 1}
    channel = Channel("m365", "u-owner", ChannelKind.MAIL, "graph", SETTINGS)
    provider = connect(channel, options)
    assert isinstance(provider, GraphMailProvider)
    directory = InMemoryDirectory()
    directory.add_person("ann", "Ann Client", ["ann@client.example"])
    store = MemoryStore()
    try:
        report = SyncEngine(store, directory).run(channel, provider)
    finally:
        provider.close()
    assert report.complete
    assert report.imported == 1
    page = store.timeline(Target(TargetKind.PERSON, "ann"), Viewer("u-owner"))
    assert [t.subject for t in page.items] == ["Proposal 1"]
    assert graph.calls(r"/\$value")  # a full-content channel downloads MIME

    calendar_channel = Channel(
        "m365-cal", "u-owner", ChannelKind.CALENDAR, "graph-calendar", SETTINGS
    )
    calendar = connect(calendar_channel, {**options, "past_days": 30, "future_days": 30})
    assert isinstance(calendar, GraphCalendarProvider)
    try:
        assert calendar.calendars()
    finally:
        calendar.close()


def test_graph_options_are_checked() -> None:
    channel = Channel("m365", "u-owner", ChannelKind.MAIL, "graph", SETTINGS)
    with pytest.raises(ConfigError) as refresh:
        connect(channel, {"refresh_token": "r"})
    assert refresh.value.field == "client_id"
    with pytest.raises(ConfigError) as app_only:
        connect(channel, {"tenant": "t", "client_id": "c"})
    assert app_only.value.field == "client_secret"


def test_metadata_channel_asks_graph_for_metadata_only(graph: GraphServer) -> None:
    graph.mail.add_message(sample_message(2), received=datetime(2026, 3, 2, tzinfo=timezone.utc))
    settings = ChannelSettings(owner=OWNER, visibility=Visibility.METADATA)
    channel = Channel("m365", "u-owner", ChannelKind.MAIL, "graph", settings)
    provider = connect(channel, {"token": graph.token, "base_url": graph.base_url})
    try:
        SyncEngine(MemoryStore(), InMemoryDirectory()).run(channel, provider)
    finally:
        provider.close()
    assert graph.calls(r"/\$value") == []


def test_exchange_channels_from_options() -> None:
    assert PROVIDER_KINDS["exchange"] is ChannelKind.MAIL
    assert PROVIDER_KINDS["exchange-calendar"] is ChannelKind.CALENDAR
    with EwsServer(user=OWNER, password="pw") as ews:
        ews.add_message("inbox", sample_message(3))
        options = {
            "service_endpoint": ews.url,
            "auth": "basic",
            "username": OWNER,
            "password": "pw",
            "version": "2016",
        }
        channel = Channel("exch", "u-owner", ChannelKind.MAIL, "exchange", SETTINGS)
        provider = connect(channel, options)
        assert isinstance(provider, ExchangeMailProvider)
        directory = InMemoryDirectory()
        directory.add_person("ann", "Ann Client", ["ann@client.example"])
        store = MemoryStore()
        try:
            report = SyncEngine(store, directory).run(channel, provider)
        finally:
            provider.close()
        assert report.complete
        page = store.timeline(Target(TargetKind.PERSON, "ann"), Viewer("u-owner"))
        assert [t.subject for t in page.items] == ["Proposal 3"]
        calendar_channel = Channel(
            "exch-cal", "u-owner", ChannelKind.CALENDAR, "exchange-calendar", SETTINGS
        )
        calendar = connect(calendar_channel, options)
        assert isinstance(calendar, ExchangeCalendarProvider)
        try:
            assert calendar.calendars()
        finally:
            calendar.close()


def test_exchange_needs_a_server() -> None:
    channel = Channel("exch", "u-owner", ChannelKind.MAIL, "exchange", SETTINGS)
    with pytest.raises(ConfigError):
        connect(channel, {"username": "u", "password": "p"})
