"""The Exchange (EWS) providers pass the provider conformance suites against
the local EWS server, through the real exchangelib client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs
import pytest

from commlink.model import Detail, FolderKind
from commlink.providers.microsoft.exchange import (
    ExchangeCalendarProvider,
    ExchangeConnection,
    ExchangeMailProvider,
    connect,
)
from commlink.testing.microsoft import EwsServer
from commlink.testing.microsoft.ews import Person
from commlink.testing.provider_conformance import (
    CalendarProviderConformance,
    MailProviderConformance,
    sample_message,
)

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
PASSWORD = "s3cret"


def _connect(server: EwsServer) -> ExchangeConnection:
    return connect(
        OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=PASSWORD
    )


@attrs.define
class MailHarness:
    server: EwsServer
    provider: ExchangeMailProvider

    def add(self, folder_id: str, raw: bytes) -> None:
        self.server.add_message(folder_id, raw)

    def delete(self, folder_id: str, message_id: str) -> None:
        self.server.delete(self.server.find(message_id))

    def inbox(self) -> str:
        return self.server.mailbox.folder_id("inbox")


class TestExchangeMail(MailProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[MailHarness]:
        with EwsServer(user=OWNER, password=PASSWORD) as server:
            provider = ExchangeMailProvider(_connect(server), page_size=3, fetch_batch=2)
            yield MailHarness(server, provider)
            provider.close()

    def test_distinguished_and_custom_folders(self, harness: MailHarness) -> None:
        server = harness.server
        clients = server.add_folder("Clients")
        server.add_folder("Key accounts", parent="Clients")
        server.add_folder("Old projects", parent="deleteditems")
        server.add_folder("Conflicts", parent="syncissues")
        server.add_folder("Archive", parent="Clients")
        folders = {f.name: f for f in harness.provider.folders()}
        kinds = {name: f.kind for name, f in folders.items()}
        assert kinds["Inbox"] is FolderKind.INBOX
        assert kinds["Sent Items"] is FolderKind.SENT
        assert kinds["Junk Email"] is FolderKind.SPAM
        assert kinds["Outbox"] is FolderKind.DRAFTS  # never imported
        assert kinds["Old projects"] is FolderKind.TRASH  # a deleted folder
        assert kinds["Clients"] is FolderKind.CUSTOM
        assert kinds["Key accounts"] is FolderKind.CUSTOM
        assert folders["Key accounts"].parent == clients
        archives = [f for f in harness.provider.folders() if f.name == "Archive"]
        assert sorted(f.kind.value for f in archives) == ["archive", "custom"]
        for hidden in ("Calendar", "Sync Issues", "Conflicts", "Conversation History"):
            assert hidden not in kinds

    def test_fetches_are_batched(self, harness: MailHarness) -> None:
        for n in range(5):
            harness.add(harness.inbox(), sample_message(n))
        provider = harness.provider
        scope = provider.scopes([f for f in provider.folders() if f.kind is FolderKind.INBOX])[0]
        ids = provider.list_page(scope, None).ids
        before = harness.server.requests["GetItem"]
        fetched = list(provider.fetch(scope, ids, Detail.FULL))
        assert len(fetched) == 3  # one page of the listing
        # one GetItem of sizes and headers, then MIME in two (fetch_batch=2)
        assert harness.server.requests["GetItem"] - before == 3


@attrs.define
class CalendarHarness:
    server: EwsServer
    provider: ExchangeCalendarProvider

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        self.server.put_event(
            calendar_id,
            uid,
            title,
            start,
            start + timedelta(hours=1),
            organizer=Person(attendees[0]),
            required=tuple(Person(a, response="Accept") for a in attendees),
        )

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self.server.delete(self.server.find(uid))

    def calendar_id(self) -> str:
        return self.server.mailbox.folder_id("calendar")


class TestExchangeCalendar(CalendarProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[CalendarHarness]:
        with EwsServer(user=OWNER, password=PASSWORD) as server:
            server.add_folder("Team", parent="calendar", calendar=True)
            provider = ExchangeCalendarProvider(_connect(server))
            yield CalendarHarness(server, provider)
            provider.close()

    def test_default_and_sub_calendars_are_listed(self, harness: CalendarHarness) -> None:
        names = sorted(c.name for c in harness.provider.calendars())
        assert names == ["Calendar", "Team"]
