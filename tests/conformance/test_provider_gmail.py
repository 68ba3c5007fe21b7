"""The Gmail provider passes the provider conformance suite against the
local Google API server, through the real google-api-python-client."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from google.oauth2.credentials import Credentials

from commlink.model import Detail
from commlink.providers.google.gmail import GmailProvider
from commlink.testing.google import GoogleApiServer
from commlink.testing.provider_conformance import MailProviderConformance

pytestmark = pytest.mark.integration


@attrs.define
class GmailHarness:
    """The conformance harness: a provider and the server's Python API."""

    server: GoogleApiServer
    provider: GmailProvider

    def add(self, folder_id: str, raw: bytes) -> None:
        self.server.gmail.add_message(self.server.user, raw, [folder_id])

    def delete(self, folder_id: str, message_id: str) -> None:
        user = self.server.user
        self.server.gmail.delete_message(user, self.server.gmail.find(user, message_id))

    def inbox(self) -> str:
        return "INBOX"


class TestGmail(MailProviderConformance):
    @pytest.fixture
    def harness(self) -> Iterator[GmailHarness]:
        with GoogleApiServer() as server:
            provider = GmailProvider(Credentials(token=server.token), api_endpoint=server.base_url)
            yield GmailHarness(server, provider)
            provider.close()

    def test_fetches_are_batched(self, harness: GmailHarness) -> None:
        for n in range(1, 8):
            harness.add("INBOX", f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody\r\n".encode())
        provider = harness.provider
        scope = provider.scopes(provider.folders())[0]
        ids = provider.list_page(scope, None).ids
        before = len(harness.server.request_log)
        fetched = list(provider.fetch(scope, ids, Detail.METADATA))
        assert len(fetched) == 7
        assert harness.server.request_log[before:] == [("POST", "/batch/gmail/v1")]
