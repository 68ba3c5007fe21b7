"""The CalDAV provider passes the calendar provider conformance suite against
Radicale, Xandikos and Cyrus CalDAV (``server_fixtures``), with
sync-collection and with the ctag fallback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.dav_account import DavAccount
from commlink.testing.provider_conformance import (
    CalendarProviderConformance,
    RefusedCredentialsChecks,
)
from server_fixtures import DavServer

pytestmark = pytest.mark.integration


def _ics(uid: str, title: str, start: datetime, attendees: tuple[str, ...]) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    people = "".join(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}\r\n" for a in attendees)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{start.strftime(fmt)}\r\n"
        f"DTSTART:{start.strftime(fmt)}\r\nDTEND:{(start + timedelta(hours=1)).strftime(fmt)}\r\n"
        f"SUMMARY:{title}\r\n{people}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class CalDavHarness:
    def __init__(self, account: DavAccount, **options: bool | None) -> None:
        self.account = account
        self.path = account.make_calendar("work", "Work")
        self.provider = CalDavProvider(
            account.url, username=account.username, password=account.password, **options
        )
        self.opened = [self.provider]

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        assert calendar_id == self.path
        self.account.put("work", f"{uid}.ics", _ics(uid, title, start, attendees))

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self.account.delete("work", f"{uid}.ics")

    def calendar_id(self) -> str:
        return self.path

    def refused_provider(self) -> CalDavProvider:
        """The same server without credentials (an anonymous client)."""
        provider = CalDavProvider(self.account.url)
        self.opened.append(provider)
        return provider

    def close(self) -> None:
        for provider in self.opened:
            provider.close()


class TestCalDavSyncCollection(CalendarProviderConformance, RefusedCredentialsChecks):
    @pytest.fixture
    def harness(self, dav_server: DavServer) -> Iterator[CalDavHarness]:
        harness = CalDavHarness(dav_server.account("sync"))
        yield harness
        harness.close()


class TestCalDavCtagFallback(CalendarProviderConformance, RefusedCredentialsChecks):
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, dav_server: DavServer) -> Iterator[CalDavHarness]:
        harness = CalDavHarness(dav_server.account("ctag"), use_sync_collection=False)
        yield harness
        harness.close()
