"""The mailbox's addresses found through EWS ``ResolveNames`` and applied by
the sync engine; a failing ``ResolveNames`` never fails a sync."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest
from ews_support import BASE, OWNER, mail_channel

from commlink.model import Direction
from commlink.providers.microsoft.exchange import ExchangeMailProvider
from commlink.providers.microsoft.exchange.aliases import smtp_addresses
from commlink.records import ChannelState, ChannelStatus, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import EwsServer

pytestmark = pytest.mark.integration

ALIAS = "sales@home.example"
PROSPECT = "zed@prospect.example"


def sent_from(n: int, sender: str = ALIAS) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Sales <{sender}>\r\nTo: Zed <{PROSPECT}>\r\nSubject: Offer {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <offer{n}@home.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nOur offer\r\n"
    ).encode()


def prospect_directions(store: MemoryStore, directory: InMemoryDirectory) -> list[Direction]:
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


def saved(store: MemoryStore) -> ChannelState:
    return store.channel_state("ews") or ChannelState("ews")


def test_resolve_names_lists_the_mailbox_smtp_addresses(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    assert mail.aliases() == (OWNER,)
    server.mailbox.proxy_addresses = [f"smtp:{ALIAS}", "SIP:owner@home.example", "smtp:x@y.example"]
    # the schema has three address keys: the third alias is beyond them
    assert mail.aliases() == (OWNER, ALIAS)
    assert server.requests["ResolveNames"] == 2


def test_mail_from_a_directory_alias_is_outgoing_and_creates_a_contact(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    server.mailbox.proxy_addresses = [f"smtp:{ALIAS}"]
    server.add_message("sentitems", sent_from(1))
    store, directory = MemoryStore(), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), mail)
    assert (report.errors, report.contacts_created) == ([], 1)
    assert prospect_directions(store, directory) == [Direction.OUTGOING]
    assert saved(store).aliases == (ALIAS,)


def test_without_the_alias_the_same_mail_is_incoming(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    server.add_message("sentitems", sent_from(1))
    store, directory = MemoryStore(), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), mail)
    assert (report.errors, report.contacts_created) == ([], 0)
    assert directory.people_by_addresses([PROSPECT]) == {}


def test_a_failing_resolve_names_keeps_the_last_known_aliases(
    server: EwsServer,
    mail: ExchangeMailProvider,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.mailbox.proxy_addresses = [f"smtp:{ALIAS}"]
    store, directory = MemoryStore(), InMemoryDirectory()
    engine = SyncEngine(store, directory)
    assert engine.run(mail_channel(), mail).errors == []
    server.http_error(500, operation="ResolveNames")
    server.add_message("sentitems", sent_from(2))
    report = engine.run(mail_channel(), mail)
    assert (report.errors, report.status, report.contacts_created) == ([], ChannelStatus.ACTIVE, 1)
    assert saved(store).aliases == (ALIAS,)
    server.server_busy("ResolveNames", times=10)  # throttled past every retry
    assert engine.run(mail_channel(), mail).errors == []
    assert saved(store).aliases == (ALIAS,)
    assert prospect_directions(store, directory) == [Direction.OUTGOING]
    failures = [r.getMessage() for r in caplog.records if "aliases of ews" in r.getMessage()]
    assert len(failures) == 2
    assert "TransientError" in failures[0]
    assert "RateLimited" in failures[1]
    assert len(sleeps) == 3  # the busy answers were waited out first


def test_only_smtp_routing_types_are_addresses() -> None:
    entries = ["SMTP:Owner@home.example", "smtp:b@x.example", "SIP:s@x.example", "X500:/o=x", "c@d"]
    assert smtp_addresses(entries) == ["Owner@home.example", "b@x.example", "c@d"]
