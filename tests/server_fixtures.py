"""The real servers the integration and conformance tests run against.

Each kind starts at most once per session, when a test first needs it, and
every test gets a fresh user on it. ``imap_server`` runs a test on Dovecot
and on Cyrus IMAP, both with CONDSTORE/QRESYNC; ``imap_plain_server`` on
both without them; ``dav_server`` on Radicale, Xandikos and Cyrus CalDAV.

A server that is not installed skips its tests, unless
``COMMLINK_REQUIRE_SERVERS=1`` (CI sets it): then it fails them, so nothing
is skipped there without anyone noticing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import attrs
import pytest

from commlink.testing.cyrus import CyrusServer, cyrus_missing
from commlink.testing.dav_account import DavAccount
from commlink.testing.dovecot import DovecotServer, dovecot_binary
from commlink.testing.imap_account import ImapTestServer
from commlink.testing.radicale import RadicaleServer
from commlink.testing.xandikos import XandikosServer, xandikos_missing

IMAP_KINDS = ("dovecot", "cyrus")
DAV_KINDS = ("radicale", "xandikos", "cyrus")

_names = itertools.count(1)


def unique_name(prefix: str) -> str:
    """A user name no other test of the session uses."""
    return f"{prefix}{next(_names)}"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("COMMLINK_REQUIRE_SERVERS"):
        pytest.fail(f"required test server unavailable: {reason}")
    pytest.skip(reason)


def require(kind: str) -> None:
    """Skip (or, in CI, fail) the test when a server of ``kind`` cannot run here."""
    missing = _missing(kind)
    if missing is not None:
        unavailable(missing)


def _missing(kind: str) -> str | None:
    if kind.startswith("dovecot"):
        return None if dovecot_binary() else "dovecot is not installed (dovecot-imapd)"
    if kind.startswith("cyrus"):
        return cyrus_missing()
    if kind == "xandikos":
        return xandikos_missing()
    return None


@attrs.define
class DavServer:
    """A running CalDAV server of some kind, and how to add a user to it."""

    kind: str
    server: Any
    port: int
    root: str
    _add: Callable[[str], DavAccount]

    def account(self, prefix: str = "user") -> DavAccount:
        """A fresh user with an empty calendar home."""
        return self._add(unique_name(prefix))


class ServerPool:
    """Starts each kind of server once, on first use; stops them all at the end."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._running: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()

    def get(self, kind: str) -> Any:
        if kind not in self._running:
            require(kind)
            server = self._make(kind)
            self._stack.callback(server.stop)
            server.start()
            self._running[kind] = server
        return self._running[kind]

    def _make(self, kind: str) -> Any:
        if kind == "dovecot":
            return DovecotServer()
        if kind == "dovecot-plain":
            return DovecotServer(condstore=False)
        if kind == "cyrus":
            return CyrusServer()
        if kind == "cyrus-plain":
            return CyrusServer(condstore=False, caldav=False)
        if kind == "radicale":
            return RadicaleServer(self._tmp.mktemp("radicale"))
        if kind == "xandikos":
            return XandikosServer(self._tmp.mktemp("xandikos"))
        raise ValueError(f"no server kind {kind!r}")

    def dav(self, kind: str) -> DavServer:
        server = self.get(kind)
        if kind == "radicale":
            return DavServer(kind, server, server.port, "/", lambda n: server.add_account(n, "pw"))
        if kind == "xandikos":
            return DavServer(kind, server, server.port, "/", lambda n: server.add_account(n, "pw"))
        return DavServer(kind, server, server.http_port, "/dav/", server.dav_account)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def dovecot(servers: ServerPool) -> DovecotServer:
    """A Dovecot with CONDSTORE and QRESYNC."""
    server: DovecotServer = servers.get("dovecot")
    return server


@pytest.fixture(scope="session")
def dovecot_plain(servers: ServerPool) -> DovecotServer:
    """A Dovecot advertising neither CONDSTORE nor QRESYNC."""
    server: DovecotServer = servers.get("dovecot-plain")
    return server


@pytest.fixture(scope="session")
def cyrus(servers: ServerPool) -> CyrusServer:
    """A Cyrus IMAP (and CalDAV) with CONDSTORE and QRESYNC."""
    server: CyrusServer = servers.get("cyrus")
    return server


@pytest.fixture(scope="session", params=IMAP_KINDS)
def imap_server(request: pytest.FixtureRequest, servers: ServerPool) -> ImapTestServer:
    """Each IMAP server with CONDSTORE and QRESYNC."""
    server: ImapTestServer = servers.get(request.param)
    return server


@pytest.fixture(scope="session", params=[f"{k}-plain" for k in IMAP_KINDS])
def imap_plain_server(request: pytest.FixtureRequest, servers: ServerPool) -> ImapTestServer:
    """Each IMAP server without CONDSTORE and QRESYNC."""
    server: ImapTestServer = servers.get(request.param)
    return server


@pytest.fixture(scope="session", params=DAV_KINDS)
def dav_server(request: pytest.FixtureRequest, servers: ServerPool) -> DavServer:
    """Each CalDAV server."""
    return servers.dav(request.param)


@pytest.fixture(scope="session")
def radicale(servers: ServerPool) -> RadicaleServer:
    server: RadicaleServer = servers.get("radicale")
    return server
