"""Test data, channels and engines for the Graph provider tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from commlink.model import Channel, ChannelKind, ChannelSettings, FolderSelection
from commlink.ports import Store
from commlink.providers.microsoft.graph import GraphClient, StaticToken
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.microsoft import GraphServer

OWNER = "owner@home.example"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def client(server: GraphServer, **kwargs: Any) -> GraphClient:
    options: dict[str, Any] = {"base_delay": 0.01, **kwargs}
    return GraphClient(StaticToken(server.token), base_url=server.base_url, **options)


def raw_mail(n: int, *, sender: str = "ann@client.example", body: str = "Hello") -> bytes:
    """A message with Message-ID ``<m{n}@test>`` and subject ``Subject {n}``."""
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Ann <{sender}>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <m{n}@test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body} {n}\r\n"
    ).encode()


def mail_channel(include: frozenset[str] = frozenset()) -> Channel:
    settings = ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"home.example"}),
        folders=FolderSelection(include=include),
    )
    return Channel("gr", "u-owner", ChannelKind.MAIL, "graph", settings)


def calendar_channel() -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel("gr-cal", "u-owner", ChannelKind.CALENDAR, "graph", settings)


def engine(store: Store | None = None, **kwargs: Any) -> tuple[SyncEngine, Store]:
    """An engine on ``store`` (a new ``MemoryStore`` by default) with Ann
    and Bob in the directory."""
    store = store or MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    directory.add_person("p-bob", "Bob", ["bob@partner.example"])
    return SyncEngine(store, directory, batch_size=50, **kwargs), store


def graph_event(
    subject: str,
    start: datetime,
    *,
    hours: float = 1,
    attendees: tuple[tuple[str, str], ...] = (("ann@client.example", "accepted"),),
    **extra: Any,
) -> dict[str, Any]:
    """A Graph event resource in UTC; ``attendees``: (address, response)."""
    end = start + timedelta(hours=hours)
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "organizer": {"emailAddress": {"name": "Owner", "address": OWNER}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": address.split("@")[0], "address": address},
            }
            for address, response in attendees
        ],
        **extra,
    }
