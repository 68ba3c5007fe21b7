"""The Google Calendar provider passes the provider conformance suite
against the local Google API server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs
import pytest
from google.oauth2.credentials import Credentials

from commlink.providers.google.calendar import GoogleCalendarProvider
from commlink.testing.google import GoogleApiServer
from commlink.testing.provider_conformance import CalendarProviderConformance

pytestmark = pytest.mark.integration

CALENDAR = "owner@home.example"


@attrs.define
class CalendarHarness:
    server: GoogleApiServer
    provider: GoogleCalendarProvider

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        self.server.calendar.add_event(
            calendar_id,
            {
                "iCalUID": uid,
                "summary": title,
                "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": "UTC"},
                "organizer": {"email": attendees[0]},
                "attendees": [{"email": a, "responseStatus": "accepted"} for a in attendees],
            },
        )

    def delete_event(self, calendar_id: str, uid: str) -> None:
        calendar = self.server.calendar
        calendar.delete_event(calendar_id, calendar.find_event(calendar_id, uid))

    def calendar_id(self) -> str:
        return CALENDAR


class TestGoogleCalendar(CalendarProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[CalendarHarness]:
        with GoogleApiServer(user=CALENDAR) as server:
            server.calendar.add_calendar(CALENDAR, CALENDAR, "Owner", primary=True)
            server.calendar.add_calendar(CALENDAR, "team@group.example", "Team")
            provider = GoogleCalendarProvider(
                Credentials(token=server.token), api_endpoint=server.calendar_url
            )
            yield CalendarHarness(server, provider)
            provider.close()

    def test_every_calendar_is_listed(self, harness: CalendarHarness) -> None:
        names = {f.id: f.name for f in harness.provider.calendars()}
        assert names == {CALENDAR: "Owner", "team@group.example": "Team"}
