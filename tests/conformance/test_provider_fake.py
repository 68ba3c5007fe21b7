"""The fake providers pass the public provider conformance suites."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
import pytest

from commlink.addresses import parse_address
from commlink.model import Attendee, Event
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider, FakeMailProvider
from commlink.testing.provider_conformance import (
    CalendarProviderConformance,
    MailProviderConformance,
)


@attrs.define
class FakeMailHarness:
    provider: FakeMailProvider = attrs.field(factory=lambda: FakeMailProvider(page_size=3))

    def add(self, folder_id: str, raw: bytes) -> None:
        self.provider.box.add(folder_id, raw)

    def delete(self, folder_id: str, message_id: str) -> None:
        for item_id, raw in list(self.provider.box.items[folder_id].items()):
            if f"<{message_id}>".encode() in raw:
                self.provider.box.delete(folder_id, item_id)

    def inbox(self) -> str:
        return "INBOX"


@attrs.define
class FakeCalendarHarness:
    store: FakeCalendar = attrs.field(factory=FakeCalendar)
    provider: FakeCalendarProvider = attrs.field(init=False)
    ids: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.store.add_calendar("work")
        self.provider = FakeCalendarProvider(self.store)

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        people = tuple(Attendee(parse_address(a)) for a in attendees)
        event = Event("", uid, start, start + timedelta(hours=1), title=title, attendees=people)
        self.ids[uid] = self.store.put(calendar_id, (event,), self.ids.get(uid))

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self.store.delete(calendar_id, self.ids.pop(uid))

    def calendar_id(self) -> str:
        return "work"


class TestFakeMailProvider(MailProviderConformance):
    @pytest.fixture
    def harness(self) -> FakeMailHarness:
        return FakeMailHarness()


class TestFakeCalendarProvider(CalendarProviderConformance):
    @pytest.fixture
    def harness(self) -> FakeCalendarHarness:
        return FakeCalendarHarness()
