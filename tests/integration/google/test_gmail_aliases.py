"""Send-as aliases found through Gmail and applied by the sync engine: mail
sent from an alias is outgoing and creates contacts with no alias
configured; the aliases are kept in the store (across a restart) and shown
by ``commlink status``; a failing or hostile ``sendAs`` list never fails a
sync."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from gapi_support import BASE, OWNER, mail_channel

from commlink.addresses import address_key
from commlink.cli.main import main
from commlink.model import Direction
from commlink.providers.google.gmail import GmailProvider
from commlink.records import ChannelStatus, Target, TargetKind, Viewer
from commlink.stores.sql import SqlStore
from commlink.sync.aliases import MAX_ALIASES
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration

ALIAS = "sales@home.example"
PROSPECT = "zed@prospect.example"


def sent_from(n: int, sender: str = ALIAS, to: str = PROSPECT) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Sales <{sender}>\r\nTo: Zed <{to}>\r\nSubject: Offer {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <offer{n}@home.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nOur offer\r\n"
    ).encode()


def directions(store: SqlStore, directory: InMemoryDirectory, address: str) -> list[Direction]:
    """The direction of every message the person with ``address`` took part in."""
    person = directory.people_by_addresses([address]).get(address)
    if person is None:
        return []
    viewer = Viewer("u-owner")
    found: list[Direction] = []
    for summary in store.timeline(Target(TargetKind.PERSON, person.id), viewer).items:
        view = store.thread(summary.thread_id, viewer)
        assert view is not None
        found.extend(m.direction for m in view.messages)
    return found


def test_mail_from_a_send_as_alias_is_outgoing_and_creates_a_contact(
    server: GoogleApiServer, gmail: GmailProvider, tmp_path: Path
) -> None:
    server.gmail.add_alias(OWNER, ALIAS)
    server.gmail.add_message(OWNER, sent_from(1), labels=("SENT",))
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    store, directory = SqlStore(url), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), gmail)
    assert report.errors == []
    assert report.contacts_created == 1
    assert directions(store, directory, PROSPECT) == [Direction.OUTGOING]
    store.close()

    restarted = SqlStore(url)
    state = restarted.channel_state("gm")
    assert state is not None
    assert state.aliases == (ALIAS,)
    assert state.status is ChannelStatus.ACTIVE
    restarted.close()


def test_without_the_alias_the_same_mail_is_incoming(
    server: GoogleApiServer, gmail: GmailProvider, tmp_path: Path
) -> None:
    server.gmail.add_message(OWNER, sent_from(1), labels=("SENT",))
    store, directory = SqlStore(f"sqlite:///{tmp_path / 'crm.sqlite'}"), InMemoryDirectory()
    report = SyncEngine(store, directory).run(mail_channel(), gmail)
    assert report.errors == []
    assert report.contacts_created == 0
    assert directory.people_by_addresses([PROSPECT]) == {}
    assert (store.channel_state("gm") or pytest.fail("no state")).aliases == ()
    store.close()


def test_status_shows_configured_and_discovered_aliases(
    server: GoogleApiServer,
    gmail: GmailProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.gmail.add_alias(OWNER, ALIAS)
    server.gmail.add_alias(OWNER, "Team@Home.Example")
    store = SqlStore(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    assert SyncEngine(store, InMemoryDirectory()).run(mail_channel(), gmail).errors == []
    store.close()
    config = tmp_path / "channels.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///crm.sqlite"\n\n'
        '[[channels]]\nid = "gm"\nuser = "u-owner"\nprovider = "gmail"\n'
        f'owner = "{OWNER}"\naliases = ["a.martin@home.example", "Sales@home.example"]\n'
    )
    assert main(["status", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gm: active, incremental, last success ")
    assert lines[1] == (
        "  aliases: a.martin@home.example (configured); sales@home.example (configured,"
        " discovered); team@home.example (discovered)"
    )
    assert main(["status", "--json", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)[0]["aliases"]
    assert shown == [
        {"address": "a.martin@home.example", "configured": True, "discovered": False},
        {"address": "sales@home.example", "configured": True, "discovered": True},
        {"address": "team@home.example", "configured": False, "discovered": True},
    ]


def test_aliases_are_asked_for_with_the_folders(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    server.gmail.add_alias(OWNER, ALIAS)
    store = SqlStore("sqlite://")
    engine = SyncEngine(store, InMemoryDirectory(), folder_ttl=timedelta(minutes=5))
    for _ in range(3):
        assert engine.run(mail_channel(), gmail).errors == []
    assert len(server.calls(r"/settings/sendAs")) == len(server.calls(r"/labels\?")) == 1
    # the folder list is cached, the aliases come from the stored state
    server.gmail.add_message(OWNER, sent_from(2), labels=("SENT",))
    assert engine.run(mail_channel(), gmail).contacts_created == 1
    store.close()


def test_a_failing_send_as_list_keeps_the_last_known_aliases(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    store, directory = SqlStore("sqlite://"), InMemoryDirectory()
    engine = SyncEngine(store, directory)
    server.inject_error(r"/settings/sendAs", 403, reason="insufficientPermissions")
    first = engine.run(mail_channel(), gmail)  # never learnt any: the sync still completes
    assert (first.errors, first.status) == ([], ChannelStatus.ACTIVE)
    server.gmail.add_alias(OWNER, ALIAS)
    assert engine.run(mail_channel(), gmail).errors == []
    server.inject_error(r"/settings/sendAs", 500, times=50)
    server.gmail.add_message(OWNER, sent_from(3), labels=("SENT",))
    report = engine.run(mail_channel(), gmail)
    assert (report.errors, report.status, report.contacts_created) == ([], ChannelStatus.ACTIVE, 1)
    assert (store.channel_state("gm") or pytest.fail("no state")).aliases == (ALIAS,)
    assert directions(store, directory, PROSPECT) == [Direction.OUTGOING]
    store.close()


def test_hostile_send_as_lists_are_capped(server: GoogleApiServer, gmail: GmailProvider) -> None:
    box = server.gmail.mailbox(OWNER)
    box.send_as.extend({"sendAsEmail": f"alias{n}@home.example"} for n in range(3_000))
    box.send_as.extend({"sendAsEmail": "x" * 200_000 + "@home.example"} for _ in range(20))
    box.send_as.extend({"sendAsEmail": bad} for bad in ("", "no-at-sign", "a@@b", "\x00@x.y"))
    store = SqlStore("sqlite://")
    started = time.perf_counter()
    report = SyncEngine(store, InMemoryDirectory()).run(mail_channel(), gmail)
    elapsed = time.perf_counter() - started
    assert report.errors == []
    aliases = (store.channel_state("gm") or pytest.fail("no state")).aliases
    assert len(aliases) == MAX_ALIASES
    assert all(address_key(a) == a and len(a) < 40 for a in aliases)
    assert elapsed < 30
    store.close()


def test_a_malformed_send_as_answer_never_fails_a_sync(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    server.gmail.add_alias(OWNER, ALIAS)
    store = SqlStore("sqlite://")
    engine = SyncEngine(store, InMemoryDirectory())
    assert engine.run(mail_channel(), gmail).errors == []
    server.gmail.mailbox(OWNER).send_as.append("not an object")  # type: ignore[arg-type]
    report = engine.run(mail_channel(), gmail)
    assert (report.errors, report.status) == ([], ChannelStatus.ACTIVE)
    assert (store.channel_state("gm") or pytest.fail("no state")).aliases == (ALIAS,)
    store.close()
