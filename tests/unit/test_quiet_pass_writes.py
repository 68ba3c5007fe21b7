"""A pass that finds nothing new writes no cursor and no channel row: a
fleet's quiet passes cost the database the lease and the channel state only."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.providers.files.maildir import MaildirProvider
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory

_OWNER = "owner@home.example"


def _mail(n: int) -> bytes:
    return (
        f"From: Ann <ann@client{n}.example>\r\nTo: {_OWNER}\r\n"
        f"Subject: Note {n}\r\nMessage-ID: <n{n}@client.example>\r\n"
        "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1700000001.M1P1.host:2,S").write_bytes(_mail(1))
    _settled(root, 60)
    return root


def _settled(root: Path, ago: float) -> None:
    """Changes made ``ago`` seconds ago: a Maildir cursor taken within seconds
    of a change is checked again on the next pass (coarse file system clocks)."""
    moment = time.time() - ago
    for path in (*root.rglob("*"), root):
        os.utime(path, (moment, moment))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path}/store.sqlite")
    yield opened
    opened.close()


def _written(store: SqlStore, run: object) -> list[str]:
    """The tables the statements run by ``run()`` wrote to."""
    seen: list[str] = []

    def record(*args: object) -> None:
        statement = " ".join(str(args[2]).split()).upper()
        if statement.startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement.split()[2])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        run()  # type: ignore[operator]
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    return seen


def test_a_quiet_pass_writes_no_cursor_and_no_channel(store: SqlStore, maildir: Path) -> None:
    channel = Channel(
        "c1",
        "u1",
        ChannelKind.MAIL,
        "maildir",
        ChannelSettings(owner=_OWNER, contact_policy=ContactPolicy.NONE),
    )
    engine = SyncEngine(store, InMemoryDirectory())
    assert engine.run(channel, MaildirProvider(maildir)).imported == 1
    quiet = _written(store, lambda: engine.run(channel, MaildirProvider(maildir)))
    assert "COMMLINK_CURSORS" not in quiet
    assert "COMMLINK_CHANNELS" not in quiet
    assert set(quiet) <= {"COMMLINK_LEASES", "COMMLINK_CHANNEL_STATES"}
    # new mail still arrives, and moves the cursor on
    (maildir / "new" / "1700000002.M2P1.host").write_bytes(_mail(2))
    _settled(maildir, 30)
    cursor = store.cursor("c1", "INBOX")
    busy = _written(store, lambda: engine.run(channel, MaildirProvider(maildir)))
    assert "COMMLINK_CURSORS" in busy
    assert store.cursor("c1", "INBOX") != cursor
    assert len(store.known_ids("c1", "INBOX", ["1700000002.M2P1.host"])) == 1
    # a changed channel is saved again
    changed = attrs.evolve(
        channel, settings=attrs.evolve(channel.settings, blocklist=frozenset({"x.example"}))
    )
    assert "COMMLINK_CHANNELS" in _written(
        store, lambda: engine.run(changed, MaildirProvider(maildir))
    )
    saved = store.channel("c1")
    assert saved is not None
    assert saved.settings.blocklist == frozenset({"x.example"})
