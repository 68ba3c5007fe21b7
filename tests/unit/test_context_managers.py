"""``with`` releases every closable object on exit, also when the body raises."""

from __future__ import annotations

import mailbox
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import sqlalchemy as sa

from commlink.closing import Closing, Stopping
from commlink.contrib.webhooks import push_app
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.files.ics import IcsProvider
from commlink.providers.files.maildir import MaildirProvider
from commlink.providers.files.mbox import MboxProvider
from commlink.providers.microsoft.graph import (
    GraphCalendarProvider,
    GraphClient,
    GraphMailProvider,
    StaticToken,
)
from commlink.providers.microsoft.graph.notify import GraphWebhook
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.stores.sql_directory import SqlDirectory
from commlink.sync.engine import SyncEngine
from commlink.sync.runner import Runner
from commlink.sync.watch_hub import WatchHub
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.microsoft import GraphServer
from commlink.testing.provider_conformance import OWNER, sample_message


class Boom(Exception):
    pass


def fail_within(resource: AbstractContextManager[object]) -> None:
    """Enter ``resource`` and raise ``Boom`` inside it."""
    with resource:
        raise Boom


class Counted(Closing):
    def __init__(self) -> None:
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


class Stopped(Stopping):
    def __init__(self) -> None:
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


def test_closing_yields_the_object_and_closes_once() -> None:
    thing = Counted()
    with thing as entered:
        assert entered is thing
        assert thing.closes == 0
    assert thing.closes == 1


def test_closing_closes_when_the_body_raises_and_lets_the_error_through() -> None:
    thing = Counted()
    with pytest.raises(Boom):
        fail_within(thing)
    assert thing.closes == 1


def test_stopping_stops_on_exit_and_on_error() -> None:
    thing = Stopped()
    with thing as entered:
        assert entered is thing
    with pytest.raises(Boom):
        fail_within(thing)
    assert thing.stops == 2


# -- Graph: the client owns an httpx pool ------------------------------------------


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as server:
        yield server


def _graph_client(server: GraphServer) -> GraphClient:
    return GraphClient(StaticToken(server.token), base_url=server.base_url, base_delay=0.01)


def test_graph_client_closes_its_http_pool(graph: GraphServer) -> None:
    client = _graph_client(graph)
    assert not client._http.is_closed
    with pytest.raises(Boom):
        fail_within(client)
    assert client._http.is_closed


def test_graph_mail_provider_closes_its_client(graph: GraphServer) -> None:
    with GraphMailProvider(_graph_client(graph), user=OWNER) as provider:
        assert provider.folders()
    assert provider.client._http.is_closed
    provider = GraphMailProvider(_graph_client(graph), user=OWNER)
    with pytest.raises(Boom):
        fail_within(provider)
    assert provider.client._http.is_closed


def test_graph_calendar_provider_closes_its_client(graph: GraphServer) -> None:
    provider = GraphCalendarProvider(_graph_client(graph), user=OWNER)
    provider.calendars()
    with pytest.raises(Boom):
        fail_within(provider)
    assert provider.client._http.is_closed


def test_graph_webhook_stops_its_lifecycle_threads() -> None:
    webhook = GraphWebhook(MemoryStore(), lambda _: None)
    webhook._start(lambda: None)
    pool = webhook._pool
    assert pool is not None
    with pytest.raises(Boom):
        fail_within(webhook)
    assert webhook._pool is None
    assert not any(t.is_alive() for t in pool._threads)


def test_push_app_stops_the_graph_lifecycle_threads() -> None:
    app = push_app(MemoryStore(), lambda _: None)
    app.graph._start(lambda: None)
    pool = app.graph._pool
    assert pool is not None
    with app as entered:
        assert entered is app
    assert app.graph._pool is None
    assert not any(t.is_alive() for t in pool._threads)


# -- files: caches are dropped --------------------------------------------------


def test_mbox_provider_forgets_its_offsets(tmp_path: Path) -> None:
    path = tmp_path / "all.mbox"
    box = mailbox.mbox(path)
    box.add(sample_message(1))
    box.close()
    provider = MboxProvider(path)
    provider.list_page(provider.scopes(provider.folders())[0], None)
    assert provider._offsets
    with pytest.raises(Boom):
        fail_within(provider)
    assert not provider._offsets


def test_maildir_provider_forgets_its_file_names(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "mail")
    box.add(sample_message(1))
    provider = MaildirProvider(tmp_path / "mail")
    provider.list_page(provider.scopes(provider.folders())[0], None)
    assert provider._names
    with pytest.raises(Boom):
        fail_within(provider)
    assert not provider._names


def test_ics_provider_forgets_parsed_files(tmp_path: Path) -> None:
    path = tmp_path / "work.ics"
    path.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\n"
        "UID:e1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
        "DTEND:20260102T110000Z\r\nSUMMARY:Call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    provider = IcsProvider(path)
    provider.list_page(provider.scopes(provider.calendars())[0], None)
    assert provider._parsed
    with pytest.raises(Boom):
        fail_within(provider)
    assert not provider._parsed


# -- SQL: a directory disposes only the engine it created -----------------------


def test_sql_directory_disposes_the_engine_it_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dir.db'}"
    directory = SqlDirectory(url)
    directory.people_by_addresses(["ann@client.example"])
    pool = directory.engine.pool
    assert pool.checkedin() == 1
    with pytest.raises(Boom):
        fail_within(directory)
    assert directory.engine.pool is not pool
    assert directory.engine.pool.checkedin() == 0


def test_sql_directory_leaves_a_shared_engine_open(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path / 'shared.db'}") as store:
        with SqlDirectory(store) as directory:
            directory.people_by_addresses(["ann@client.example"])
        pool = store.engine.pool
        assert pool.checkedin() == 1
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1


# -- sync: the runner and the watch hub stop their threads ------------------------


def _channel() -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel("ch", "u-owner", ChannelKind.MAIL, "fake", settings)


def test_watch_hub_stops_its_watchers() -> None:
    provider = FakeMailProvider()
    hub = WatchHub(lambda c: provider, lambda cid: None)
    hub.ensure(_channel())
    watchers = list(hub._watchers.values())
    assert watchers
    assert all(w.is_alive() for w in watchers)
    with pytest.raises(Boom):
        fail_within(hub)
    assert hub.states() == {}
    assert not any(w.is_alive() for w in watchers)


def test_runner_stops_serving_and_watching() -> None:
    store = MemoryStore()
    store.save_channel(_channel())
    engine = SyncEngine(store, InMemoryDirectory())
    provider = FakeMailProvider()
    runner = Runner(engine, lambda c: provider)
    serving = threading.Thread(target=runner.serve, daemon=True)
    serving.start()
    for _ in range(200):
        if runner.hub.states():
            break
        threading.Event().wait(0.01)
    watchers = list(runner.hub._watchers.values())
    assert watchers
    with pytest.raises(Boom):
        fail_within(runner)
    serving.join(5)
    assert not serving.is_alive()
    assert not any(w.is_alive() for w in watchers)
