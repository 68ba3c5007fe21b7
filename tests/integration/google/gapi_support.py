"""Test data and channels for the Google provider tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from commlink.model import Channel, ChannelKind, ChannelSettings

OWNER = "owner@home.example"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def mail(n: int, *, sender: str = "ann@client.example", body: str = "Hello") -> bytes:
    """A message with Message-ID ``<m{n}@test>`` and subject ``Subject {n}``."""
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Ann <{sender}>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <m{n}@test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body} {n}\r\n"
    ).encode()


def mail_channel(settings: ChannelSettings | None = None) -> Channel:
    return Channel(
        "gm",
        "u-owner",
        ChannelKind.MAIL,
        "gmail",
        settings or ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
    )
