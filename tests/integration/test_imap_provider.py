"""The IMAP provider's connection handling against real servers (Dovecot and
Cyrus): IDLE, missing folders, dropped connections, the registry entry."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import attrs
import pytest

from commlink.errors import ConfigError, NotFound, TransientError
from commlink.model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Detail,
    FolderKind,
)
from commlink.providers.imap.provider import ImapProvider
from commlink.providers.registry import connect
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Progress
from commlink.testing.cyrus import CyrusServer
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotServer
from commlink.testing.imap_account import ImapAccount, ImapTestServer
from commlink.testing.provider_conformance import OWNER, sample_message
from server_fixtures import require

pytestmark = pytest.mark.integration


def _inbox(provider: ImapProvider) -> object:
    return provider.scopes([f for f in provider.folders() if f.id == "INBOX"])[0]


def test_folders_have_special_use_kinds(imap: ImapAccount) -> None:
    imap.admin.create_folder("Clients/Acme")
    kinds = {f.id: f.kind for f in imap.provider.folders()}
    assert kinds["INBOX"] is FolderKind.INBOX
    assert kinds["Sent"] is FolderKind.SENT
    assert kinds["Junk"] is FolderKind.SPAM
    assert kinds["Trash"] is FolderKind.TRASH
    assert kinds["Drafts"] is FolderKind.DRAFTS
    assert kinds["Archive"] is FolderKind.ARCHIVE
    assert kinds["Clients/Acme"] is FolderKind.CUSTOM
    acme = next(f for f in imap.provider.folders() if f.id == "Clients/Acme")
    assert (acme.name, acme.parent) == ("Acme", "Clients")


def _own_server(kind: str, **options: object) -> DovecotServer | CyrusServer:
    """A server of its own for a test that needs another configuration."""
    require(kind)
    if kind == "cyrus":
        return CyrusServer(caldav=False, **options)  # type: ignore[arg-type]
    return DovecotServer(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["dovecot", "cyrus"])
def test_folders_by_name_without_special_use(kind: str) -> None:
    folders = ("Sent Items", "Papierkorb", "Spam")
    with _own_server(kind, special_use=False, folders=folders) as server:
        account = ImapAccount(server, "names")
        try:
            kinds = {f.id: f.kind for f in account.provider.folders()}
        finally:
            account.close()
    assert kinds == {
        "INBOX": FolderKind.INBOX,
        "Sent Items": FolderKind.SENT,
        "Papierkorb": FolderKind.TRASH,
        "Spam": FolderKind.SPAM,
    }


def test_idle_wakes_within_two_seconds(imap: ImapAccount) -> None:
    provider = imap.new_provider()
    watcher = provider.watch(_inbox(provider))  # type: ignore[arg-type]
    assert watcher is not None
    with watcher as events:
        timer = threading.Timer(0.3, imap.add, args=("INBOX", sample_message(1)))
        started = time.monotonic()
        timer.start()
        next(events)
        waited = time.monotonic() - started
        timer.join()
    assert waited < 2.0


def test_idle_ends_when_the_connection_drops(imap: ImapAccount) -> None:
    provider = imap.new_provider()
    watcher = provider.watch(_inbox(provider))  # type: ignore[arg-type]
    assert watcher is not None
    with watcher as events:
        client = watcher.conn.client  # type: ignore[attr-defined]
        threading.Timer(0.3, lambda: client.socket().shutdown(socket.SHUT_RDWR)).start()
        started = time.monotonic()
        assert list(events) == []
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", ["dovecot", "cyrus"])
def test_no_watch_without_idle(kind: str) -> None:
    caps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ SPECIAL-USE"
    options = {"extra": f"imap_capability = {caps}\n"} if kind == "dovecot" else {"idle": False}
    with _own_server(kind, **options) as server:
        account = ImapAccount(server, "noidle")
        try:
            assert account.provider.watch(_inbox(account.provider)) is None  # type: ignore[arg-type]
        finally:
            account.close()


def test_a_deleted_folder_is_not_found(imap: ImapAccount) -> None:
    imap.admin.create_folder("Gone")
    provider = imap.provider
    scope = provider.scopes([f for f in provider.folders() if f.id == "Gone"])[0]
    cursor = provider.snapshot(scope)
    imap.admin.delete_folder("Gone")
    with pytest.raises(NotFound):
        provider.changes(scope, cursor)
    with pytest.raises(NotFound):
        provider.snapshot(scope)


def test_connection_refused_is_transient() -> None:
    from commlink.testing.dovecot import free_port

    provider = ImapProvider("127.0.0.1", free_port(), username="u", password="p", ssl=False)
    with pytest.raises(TransientError):
        provider.folders()


def test_a_silent_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        provider = ImapProvider(
            "127.0.0.1", port, username="u", password="p", ssl=False, timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(TransientError):
            provider.folders()
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_reconnects_once_after_a_drop(imap: ImapAccount) -> None:
    imap.add("INBOX", sample_message(1))
    provider = imap.provider
    scope = _inbox(provider)
    ids = provider.list_page(scope, None).ids  # type: ignore[arg-type]
    provider.conn.client.socket().shutdown(socket.SHUT_RDWR)
    fetched = list(provider.fetch(scope, ids, Detail.FULL))  # type: ignore[arg-type]
    assert [f.provider_id for f in fetched] == list(ids)
    assert provider.conn.connects == 2


def test_registry_builds_the_provider(imap: ImapAccount) -> None:
    channel = Channel("c", "u", ChannelKind.MAIL, "imap", ChannelSettings(owner=OWNER))
    options = {
        "host": imap.server.host,
        "port": imap.server.port,
        "username": imap.username,
        "password": imap.password,
        "ssl": False,
    }
    provider = connect(channel, options)
    try:
        assert isinstance(provider, ImapProvider)
        assert any(f.id == "INBOX" for f in provider.folders())
    finally:
        provider.close()
    with pytest.raises(ConfigError, match="host"):
        connect(channel, {"username": "x", "password": "y"})
    with pytest.raises(ConfigError, match="password"):
        connect(channel, {"host": "h", "username": "x"})


# -- a connection dropped mid-fetch --------------------------------------------------


@attrs.define
class DroppingProxy:
    """A TCP proxy to the server that, once armed, cuts every connection after
    ``budget`` more bytes from the server (and refuses new ones until disarmed)."""

    target: int
    budget: int | None = None
    listener: socket.socket = attrs.field(init=False)
    sockets: list[socket.socket] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.budget is not None and self.budget <= 0:
                    client.close()
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    with self.lock:
                        if self.budget is not None:
                            self.budget -= len(data)
                            if self.budget <= 0:
                                raise OSError("cut")
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def proxy(imap_server: ImapTestServer) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(imap_server.port)
    yield proxy
    proxy.close()


def test_drop_mid_fetch_is_transient_and_the_next_run_resumes(
    imap: ImapAccount, proxy: DroppingProxy
) -> None:
    for n in range(1, 41):
        imap.add("INBOX", sample_message(n))
    provider = ImapProvider(
        "127.0.0.1", proxy.port, username=imap.username, password=imap.password, ssl=False
    )
    provider.page_size = 10
    store, directory = MemoryStore(), InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    channel = Channel(
        "drop",
        "u",
        ChannelKind.MAIL,
        "imap",
        ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
    )
    engine = SyncEngine(store, directory, batch_size=10)
    state: dict[str, int] = {}

    def arm(progress: Progress) -> None:
        if progress.imported and "armed" not in state:
            state["armed"] = 1
            with proxy.lock:
                proxy.budget = 3000  # less than a chunk of ten messages

    engine.progress = arm
    first = engine.run(channel, provider)
    assert first.errors
    assert "TransientError" in first.errors[0]
    assert 0 < first.imported < 40
    with proxy.lock:
        proxy.budget = None
    engine.progress = None
    second = engine.run(channel, provider)
    assert second.errors == []
    assert first.imported + second.imported == 40
    timeline = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u"))
    subjects = [t.subject for t in timeline.items]
    assert len(subjects) == len(set(subjects)) == 40
    provider.close()


def test_the_inbox_is_the_first_scope(imap: ImapAccount) -> None:
    scopes = imap.provider.scopes(imap.provider.folders())
    assert scopes[0].id == "INBOX"
    assert len(scopes) == len(imap.provider.folders())
