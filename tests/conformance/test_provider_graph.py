"""The Microsoft Graph providers pass the provider conformance suites against
the local Graph server, through httpx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs
import pytest

from commlink.model import Detail
from commlink.providers.microsoft.graph import (
    GraphCalendarProvider,
    GraphClient,
    GraphMailProvider,
    StaticToken,
)
from commlink.testing.microsoft import GraphServer
from commlink.testing.provider_conformance import (
    CalendarProviderConformance,
    MailProviderConformance,
)

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"


def _client(server: GraphServer) -> GraphClient:
    return GraphClient(StaticToken(server.token), base_url=server.base_url, base_delay=0.01)


@attrs.define
class GraphMailHarness:
    server: GraphServer
    provider: GraphMailProvider

    def add(self, folder_id: str, raw: bytes) -> None:
        self.server.mail.add_message(raw, folder_id)

    def delete(self, folder_id: str, message_id: str) -> None:
        self.server.mail.delete(self.server.mail.find(message_id))

    def inbox(self) -> str:
        return self.server.mail.folder_id("inbox")


class TestGraphMail(MailProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[GraphMailHarness]:
        with GraphServer(user=OWNER) as server:
            provider = GraphMailProvider(_client(server), user=OWNER, page_size=3)
            yield GraphMailHarness(server, provider)
            provider.close()

    def test_full_fetch_is_a_batch_of_sizes_then_one_of_mime(
        self, harness: GraphMailHarness
    ) -> None:
        for n in range(1, 8):
            harness.add("inbox", f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody\r\n".encode())
        provider = harness.provider
        scope = provider.scopes([f for f in provider.folders() if f.id == harness.inbox()])[0]
        provider.snapshot(scope)
        ids = provider.list_page(scope, None).ids
        before = harness.server.requests
        fetched = list(provider.fetch(scope, ids, Detail.FULL))
        assert len(fetched) == 3
        assert all(f.raw and b"body" in f.raw for f in fetched)
        assert harness.server.requests - before == 2
        assert [method for method, _ in harness.server.request_log[-2:]] == ["POST", "POST"]
        assert len(harness.server.calls(r"/\$value$")) == 3


@attrs.define
class GraphCalendarHarness:
    server: GraphServer
    provider: GraphCalendarProvider

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        end = start + timedelta(hours=1)
        self.server.calendar.add_event(
            calendar_id,
            {
                "iCalUId": uid,
                "subject": title,
                "start": {
                    "dateTime": start.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                    "timeZone": "UTC",
                },
                "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
                "organizer": {"emailAddress": {"name": "", "address": attendees[0]}},
                "attendees": [
                    {
                        "type": "required",
                        "status": {"response": "accepted", "time": "2026-01-01T00:00:00Z"},
                        "emailAddress": {"name": "", "address": a},
                    }
                    for a in attendees
                ],
            },
        )

    def delete_event(self, calendar_id: str, uid: str) -> None:
        calendar = self.server.calendar
        calendar.delete_event(calendar_id, calendar.find_event(calendar_id, uid))

    def calendar_id(self) -> str:
        return self.server.calendar.default


class TestGraphCalendar(CalendarProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[GraphCalendarHarness]:
        with GraphServer(user=OWNER) as server:
            server.calendar.add_calendar("Team")
            provider = GraphCalendarProvider(_client(server), user=OWNER, page_size=2)
            yield GraphCalendarHarness(server, provider)
            provider.close()

    def test_every_calendar_is_listed(self, harness: GraphCalendarHarness) -> None:
        names = sorted(f.name for f in harness.provider.calendars())
        assert names == ["Calendar", "Team"]
