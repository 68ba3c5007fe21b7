"""Bad input from Exchange is skipped or repaired with a recorded reason
while the rest of the sync goes on."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from ews_support import OWNER, calendar_channel, directory, engine, mail_channel, subjects
from ews_support import mail as message

from commlink.model import Detail
from commlink.providers.microsoft.exchange import ExchangeCalendarProvider, ExchangeMailProvider
from commlink.records import Reason
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.conformance_data import owner_of
from commlink.testing.microsoft import EwsServer
from commlink.testing.microsoft.ews import Person

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_message_without_message_id_gets_a_synthetic_one(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    raw = message(1).replace(b"Message-ID: <m1@test>\r\n", b"")
    server.add_message("inbox", raw)
    server.add_message("inbox", message(2))
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert report.imported == 2
    assert subjects(store) == ["Subject 1", "Subject 2"]


def test_broken_mime_is_repaired_or_skipped_and_the_rest_goes_on(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    server.add_message("inbox", b"\x00\xff garbage without headers \r\n\r\n\xfe")
    server.add_message(
        "inbox",
        b"From: Ann <ann@client.example>\r\nSubject: Broken\r\nMessage-ID: <b@test>\r\n"
        b"Content-Type: multipart/mixed; boundary=missing\r\n\r\nno parts here",
    )
    server.add_message("inbox", message(3))
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert "Subject 3" in subjects(store)
    assert report.imported + sum(report.skipped.values()) == 3


def test_corrupt_and_vanished_items_are_recorded_as_errors(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    broken = server.add_message("inbox", message(1))
    server.add_message("inbox", message(2))
    server.break_item(broken)
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert report.imported == 1
    assert report.skipped[Reason.ERROR] == 1
    (skip,) = [s for s in store.skips("ews", owner_of(store, "ews")) if s.provider_id == broken]
    assert "ErrorItemCorrupt" in skip.detail
    scope = mail.scopes([f for f in mail.folders() if f.name == "Inbox"])[0]
    (gone,) = mail.fetch(scope, ["no-such-item"], Detail.METADATA)
    assert gone.error == "not found"


def test_attendee_without_address_is_dropped_with_a_warning(
    server: EwsServer, calendar: ExchangeCalendarProvider
) -> None:
    server.put_event(
        "calendar",
        "uid-1",
        "Meeting",
        START,
        organizer=Person(OWNER),
        required=(Person("ann@client.example", "Ann", "Accept"), Person("", "Meeting Room")),
    )
    broken = server.put_event("calendar", "uid-2", "Unreadable", START)
    server.break_item(broken)
    store = MemoryStore()
    report = SyncEngine(store, directory()).run(calendar_channel(), calendar)
    assert report.errors == []
    assert report.imported == 1
    assert report.skipped[Reason.ERROR] == 1
    scope = calendar.scopes(calendar.calendars())[0]
    items = {i.provider_id: i for i in calendar.fetch(scope, calendar.list_page(scope, None).ids)}
    good = next(i for i in items.values() if i.error is None)
    (event,) = good.events
    assert [a.address.key for a in event.attendees] == ["ann@client.example"]
    assert event.warnings == ("attendee-without-address",)
