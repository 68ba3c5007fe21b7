"""Proxy addresses found through Graph and applied by the sync engine: mail
sent from an alias is outgoing and creates contacts with no alias
configured; the aliases survive a restart on SQLite and PostgreSQL; a
refused or hostile ``proxyAddresses`` answer never fails a sync."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from graph_support import BASE, mail_channel
from sqlalchemy.engine import Engine

from commlink.addresses import address_key
from commlink.model import Direction
from commlink.providers.microsoft.graph import GraphMailProvider
from commlink.records import ChannelState, ChannelStatus, Target, TargetKind, Viewer
from commlink.stores.sql import SqlStore
from commlink.sync.aliases import MAX_ALIASES
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

ALIAS = "sales@home.example"  # the server fixture's proxy address
PROSPECT = "zed@prospect.example"


def sent_from(n: int, sender: str = ALIAS) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Sales <{sender}>\r\nTo: Zed <{PROSPECT}>\r\nSubject: Offer {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <offer{n}@home.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nOur offer\r\n"
    ).encode()


def prospect_directions(store: SqlStore, directory: InMemoryDirectory) -> list[Direction]:
    person = directory.people_by_addresses([PROSPECT]).get(PROSPECT)
    if person is None:
        return []
    viewer = Viewer("u-owner")
    found: list[Direction] = []
    for summary in store.timeline(Target(TargetKind.PERSON, person.id), viewer).items:
        view = store.thread(summary.thread_id, viewer)
        assert view is not None
        found.extend(m.direction for m in view.messages)
    return found


def saved(store: SqlStore) -> ChannelState:
    return store.channel_state("gr") or ChannelState("gr")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'graph.sqlite'}")
        yield engine
        engine.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    with pg.begin() as conn:
        conn.exec_driver_sql("DELETE FROM commlink_channel_states")
    yield pg
    pg.dispose()


def test_mail_from_a_proxy_address_is_outgoing_and_survives_a_restart(
    server: GraphServer, mail: GraphMailProvider, database: Engine
) -> None:
    server.mail.add_message(sent_from(1), "sentitems")
    store, directory = SqlStore(database), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), mail)
    assert report.errors == []
    assert report.contacts_created == 1
    assert prospect_directions(store, directory) == [Direction.OUTGOING]
    store.close()
    database.dispose()
    restarted = SqlStore(database)
    assert saved(restarted).aliases == (ALIAS,)  # the mailbox's own address left out
    restarted.close()


def test_without_proxy_addresses_the_same_mail_is_incoming(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    server.aliases = ()
    server.mail.add_message(sent_from(1), "sentitems")
    store, directory = SqlStore("sqlite://"), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), mail)
    assert (report.errors, report.contacts_created) == ([], 0)
    assert directory.people_by_addresses([PROSPECT]) == {}
    store.close()


def test_a_refused_user_read_keeps_the_last_known_aliases(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    store, directory = SqlStore("sqlite://"), InMemoryDirectory()
    engine = SyncEngine(store, directory)
    assert engine.run(mail_channel(), mail).errors == []
    assert saved(store).aliases == (ALIAS,)
    # an app without User.Read.All: 403 on the user object, the mail still syncs
    server.inject_error(r"proxyAddresses", 403)
    server.mail.add_message(sent_from(2), "sentitems")
    report = engine.run(mail_channel(), mail)
    assert (report.errors, report.status, report.contacts_created) == ([], ChannelStatus.ACTIVE, 1)
    assert saved(store).aliases == (ALIAS,)
    assert prospect_directions(store, directory) == [Direction.OUTGOING]
    # a mailbox whose aliases were removed: discovered ones go too
    server.aliases = ()
    assert engine.run(mail_channel(), mail).errors == []
    assert saved(store).aliases == ()
    store.close()


def test_hostile_proxy_address_lists_are_capped(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    server.aliases = (
        *(f"a{n}@home.example" for n in range(4_000)),
        *("y" * 100_000 + "@home.example" for _ in range(10)),
        "", "@", "two@@at.example", "spa ce@home.example",
    )  # fmt: skip
    store = SqlStore("sqlite://")
    report = SyncEngine(store, InMemoryDirectory()).run(mail_channel(), mail)
    assert report.errors == []
    aliases = saved(store).aliases
    assert len(aliases) == MAX_ALIASES
    assert all(address_key(a) == a and len(a) < 40 for a in aliases)
    store.close()
