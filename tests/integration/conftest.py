"""Private Dovecot servers for the IMAP tests (skipped when Dovecot is absent).

Two servers run for the session: one with CONDSTORE/QRESYNC (Dovecot's
default) and one advertising neither. Each test gets a fresh user, so tests
share a server but never a mailbox.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

# before commlink.testing is imported: its suites get detailed assertion messages
from commlink.testing.dovecot import (
    DovecotAccount,
    DovecotServer,
    dovecot_binary,
)

_users = itertools.count(1)


def start_server(**kwargs: Any) -> Iterator[DovecotServer]:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (Debian package dovecot-imapd)")
    server = DovecotServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_account(server: DovecotServer) -> Iterator[DovecotAccount]:
    account = DovecotAccount(server, f"it{next(_users)}")
    try:
        yield account
    finally:
        account.close()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A Dovecot with CONDSTORE and QRESYNC."""
    yield from start_server()


@pytest.fixture(scope="session")
def dovecot_plain() -> Iterator[DovecotServer]:
    """A Dovecot advertising neither CONDSTORE nor QRESYNC."""
    yield from start_server(condstore=False)


@pytest.fixture
def imap(dovecot: DovecotServer) -> Iterator[DovecotAccount]:
    yield from new_account(dovecot)


@pytest.fixture
def imap_plain(dovecot_plain: DovecotServer) -> Iterator[DovecotAccount]:
    yield from new_account(dovecot_plain)
