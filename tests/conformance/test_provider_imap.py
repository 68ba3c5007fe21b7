"""The IMAP provider passes the provider conformance suite against real
servers: Dovecot and Cyrus IMAP, each with CONDSTORE/QRESYNC and without
them (``server_fixtures``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commlink.errors import CursorExpired
from commlink.testing.imap_account import ImapAccount, ImapTestServer
from commlink.testing.provider_conformance import (
    MailProviderConformance,
    RefusedCredentialsChecks,
    sample_message,
)
from server_fixtures import unique_name

pytestmark = pytest.mark.integration


def _account(server: ImapTestServer) -> Iterator[ImapAccount]:
    account = ImapAccount(server, unique_name("conf"))
    try:
        yield account
    finally:
        account.close()


class TestImapWithQresync(MailProviderConformance, RefusedCredentialsChecks):
    @pytest.fixture
    def harness(self, imap_server: ImapTestServer) -> Iterator[ImapAccount]:
        yield from _account(imap_server)

    def test_the_server_offers_qresync(self, harness: ImapAccount) -> None:
        assert harness.provider.conn.has("QRESYNC")


class TestImapWithoutCondstore(MailProviderConformance, RefusedCredentialsChecks):
    # without CONDSTORE an expunge is only seen as a count that does not add up
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, imap_plain_server: ImapTestServer) -> Iterator[ImapAccount]:
        yield from _account(imap_plain_server)

    def test_the_server_offers_no_condstore(self, harness: ImapAccount) -> None:
        assert not harness.provider.conn.has("CONDSTORE")
        assert not harness.provider.conn.has("QRESYNC")

    def test_an_expunge_expires_the_cursor(self, harness: ImapAccount) -> None:
        for n in (1, 2):
            harness.add("INBOX", sample_message(n))
        provider = harness.provider
        scope = provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]
        cursor = provider.snapshot(scope)
        harness.delete("INBOX", "msg-1@conformance")
        with pytest.raises(CursorExpired):
            provider.changes(scope, cursor)
