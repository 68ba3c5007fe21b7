"""The CalDAV provider passes the calendar provider conformance suite against Radicale."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.provider_conformance import CalendarProviderConformance
from commlink.testing.radicale import RadicaleAccount, RadicaleServer

pytestmark = pytest.mark.integration

_users = itertools.count(1)


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
    def __init__(self, account: RadicaleAccount, **options: bool | None) -> None:
        self.account = account
        self.path = account.make_calendar("work", "Work")
        self.provider = CalDavProvider(
            account.url, username=account.username, password=account.password, **options
        )

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        assert calendar_id == self.path
        self.account.put("work", f"{uid}.ics", _ics(uid, title, start, attendees))

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self.account.delete("work", f"{uid}.ics")

    def calendar_id(self) -> str:
        return self.path


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    root: Path = tmp_path_factory.mktemp("radicale-conformance")
    with RadicaleServer(root) as server:
        yield server


class TestCalDavSyncCollection(CalendarProviderConformance):
    @pytest.fixture
    def harness(self, radicale: RadicaleServer) -> Iterator[CalDavHarness]:
        harness = CalDavHarness(radicale.add_account(f"sync{next(_users)}", "pw"))
        yield harness
        harness.provider.close()


class TestCalDavCtagFallback(CalendarProviderConformance):
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, radicale: RadicaleServer) -> Iterator[CalDavHarness]:
        account = radicale.add_account(f"ctag{next(_users)}", "pw")
        harness = CalDavHarness(account, use_sync_collection=False)
        yield harness
        harness.provider.close()
