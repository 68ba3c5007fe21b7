"""A fresh IMAP user per test, on each server (``server_fixtures``): ``imap``
runs a test on Dovecot and on Cyrus with CONDSTORE/QRESYNC, ``imap_plain``
on both without them. Tests share a server but never a mailbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commlink.testing.dovecot import DovecotAccount, DovecotServer
from commlink.testing.imap_account import ImapAccount, ImapTestServer
from server_fixtures import unique_name


def new_account(server: ImapTestServer, prefix: str = "it") -> Iterator[ImapAccount]:
    account = ImapAccount(server, unique_name(prefix))
    try:
        yield account
    finally:
        account.close()


@pytest.fixture
def imap(imap_server: ImapTestServer) -> Iterator[ImapAccount]:
    yield from new_account(imap_server)


@pytest.fixture
def imap_plain(imap_plain_server: ImapTestServer) -> Iterator[ImapAccount]:
    yield from new_account(imap_plain_server)


@pytest.fixture
def dovecot_account(dovecot: DovecotServer) -> Iterator[DovecotAccount]:
    """A user of the Dovecot server only (for what goes through its Maildir)."""
    account = DovecotAccount(dovecot, unique_name("dc"))
    try:
        yield account
    finally:
        account.close()
