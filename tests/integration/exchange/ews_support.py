"""Test data, channels and engines for the Exchange provider tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory

OWNER = "owner@home.example"
PASSWORD = "s3cret"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def mail(n: int, *, sender: str = "ann@client.example", subject: str | None = None) -> bytes:
    """A message with Message-ID ``<m{n}@test>`` and subject ``Subject {n}``."""
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Ann <{sender}>\r\nTo: {OWNER}\r\nSubject: {subject or f'Subject {n}'}\r\n"
        f"Date: {date}\r\nMessage-ID: <m{n}@test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello {n}\r\n"
    ).encode()


def settings(**changes: object) -> ChannelSettings:
    return ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"home.example"}),
        **changes,  # type: ignore[arg-type]
    )


def mail_channel(channel_settings: ChannelSettings | None = None) -> Channel:
    return Channel("ews", "u-owner", ChannelKind.MAIL, "exchange", channel_settings or settings())


def calendar_channel() -> Channel:
    return Channel("ews-cal", "u-owner", ChannelKind.CALENDAR, "exchange", settings())


def directory() -> InMemoryDirectory:
    found = InMemoryDirectory()
    found.add_company("co-client", "Client", ["client.example"])
    found.add_person("p-ann", "Ann", ["ann@client.example"], company_id="co-client")
    return found


def engine(store: MemoryStore | SqlStore, batch_size: int = 50) -> SyncEngine:
    return SyncEngine(store, directory(), batch_size=batch_size)


def subjects(store: MemoryStore | SqlStore) -> list[str]:
    items = store.timeline(Target(TargetKind.COMPANY, "co-client"), Viewer("u-owner")).items
    return sorted(t.subject or "" for t in items)
