"""The IMAP provider passes the provider conformance suite against a real
Dovecot, with CONDSTORE/QRESYNC and without them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from commlink.errors import CursorExpired
from commlink.testing.dovecot import DovecotAccount, DovecotServer, dovecot_binary
from commlink.testing.provider_conformance import MailProviderConformance, sample_message

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(dovecot_binary() is None, reason="dovecot is not installed"),
]

_users = itertools.count(1)


def _server(condstore: bool) -> Iterator[DovecotServer]:
    with DovecotServer(condstore=condstore) as server:
        yield server


@pytest.fixture(scope="module")
def server_qresync() -> Iterator[DovecotServer]:
    yield from _server(True)


@pytest.fixture(scope="module")
def server_plain() -> Iterator[DovecotServer]:
    yield from _server(False)


def _account(server: DovecotServer) -> Iterator[DovecotAccount]:
    account = DovecotAccount(server, f"conf{next(_users)}")
    try:
        yield account
    finally:
        account.close()


class TestImapWithQresync(MailProviderConformance):
    @pytest.fixture
    def harness(self, server_qresync: DovecotServer) -> Iterator[DovecotAccount]:
        yield from _account(server_qresync)

    def test_the_server_offers_qresync(self, harness: DovecotAccount) -> None:
        assert harness.provider.conn.has("QRESYNC")


class TestImapWithoutCondstore(MailProviderConformance):
    # without CONDSTORE an expunge is only seen as a count that does not add up
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, server_plain: DovecotServer) -> Iterator[DovecotAccount]:
        yield from _account(server_plain)

    def test_the_server_offers_no_condstore(self, harness: DovecotAccount) -> None:
        assert not harness.provider.conn.has("CONDSTORE")
        assert not harness.provider.conn.has("QRESYNC")

    def test_an_expunge_expires_the_cursor(self, harness: DovecotAccount) -> None:
        for n in (1, 2):
            harness.add("INBOX", sample_message(n))
        provider = harness.provider
        scope = provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]
        cursor = provider.snapshot(scope)
        harness.delete("INBOX", "msg-1@conformance")
        with pytest.raises(CursorExpired):
            provider.changes(scope, cursor)
