"""Push wake-ups for every folder of an IMAP channel, on real servers:
NOTIFY (RFC 5465) on Dovecot, IDLE per folder with a cap (Dovecot with
NOTIFY turned off, and Cyrus, which has no NOTIFY), and a watch that comes
back after the server drops it."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.ports import Scope
from commlink.providers.imap.idle import IdleGroup
from commlink.providers.imap.notify import NotifyWatch, notify_command
from commlink.providers.imap.provider import ImapProvider
from commlink.sync.watch_hub import Backoff, WatchHub
from commlink.testing.dovecot import DovecotAccount
from commlink.testing.imap_account import ImapAccount
from commlink.testing.provider_conformance import OWNER, sample_message

pytestmark = pytest.mark.integration

WATCHED = ("INBOX", "Sent", "Archive")


class Events:
    """An iterator read by a thread of its own, so a test can wait on it with a timeout."""

    def __init__(self, events: Iterator[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(events,), daemon=True)
        self._thread.start()

    def _read(self, events: Iterator[str]) -> None:
        try:
            for folder in events:
                self._queue.put(folder)
        finally:
            self._queue.put(None)

    def next(self, timeout: float) -> str | None:
        """The next folder, ``None`` at the end; raises ``queue.Empty`` on time-out."""
        return self._queue.get(timeout=timeout)

    def quiet_for(self, seconds: float) -> bool:
        try:
            self._queue.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def _scopes(provider: ImapProvider, names: tuple[str, ...] = WATCHED) -> list[Scope]:
    folders = [f for f in provider.folders() if f.id in names]
    return list(provider.scopes(folders))


def _timed_wake(
    account: ImapAccount, events: Events, folder: str, n: int, timeout: float = 5.0
) -> float:
    """Append message ``n`` to ``folder`` and return how long the watch took to name it."""
    started = time.monotonic()
    account.add(folder, sample_message(n))
    seen = events.next(timeout)
    waited = time.monotonic() - started
    assert seen == folder
    return waited


def test_notify_command_quotes_and_encodes_names() -> None:
    assert notify_command(["INBOX", 'A "q"\\b', "Entwürfe"]) == (
        '(mailboxes ("INBOX" "A \\"q\\"\\\\b" "Entw&APw-rfe") (MessageNew MessageExpunge))'
    )
    assert notify_command(["INBOX"], flags=True).endswith("(MessageNew MessageExpunge FlagChange))")


def test_dovecot_offers_notify(dovecot_account: DovecotAccount) -> None:
    assert dovecot_account.provider.conn.has("NOTIFY")


def test_notify_wakes_on_every_watched_folder(dovecot_account: DovecotAccount) -> None:
    provider = dovecot_account.new_provider()
    watch = provider.watch_scopes(_scopes(provider))
    assert watch is not None
    with watch as stream:
        assert isinstance(watch.active, NotifyWatch)  # type: ignore[attr-defined]
        events = Events(stream)
        waits = [
            _timed_wake(dovecot_account, events, folder, n)
            for n, folder in enumerate(("Archive", "Sent", "INBOX"), start=1)
        ]
        # a folder outside the selection wakes nothing
        dovecot_account.add("Drafts", sample_message(9))
        assert events.quiet_for(1.5)
    assert max(waits) < 2.0, waits


def test_notify_wakes_on_expunge(dovecot_account: DovecotAccount) -> None:
    dovecot_account.add("Archive", sample_message(1))
    provider = dovecot_account.new_provider()
    watch = provider.watch_scopes(_scopes(provider))
    assert watch is not None
    with watch as stream:
        events = Events(stream)
        dovecot_account.delete("Archive", "msg-1@conformance")
        assert events.next(5.0) == "Archive"


@pytest.mark.parametrize("kind", ["dovecot", "cyrus"])
def test_idle_per_folder_up_to_the_cap(
    kind: str, request: pytest.FixtureRequest, dovecot_account: DovecotAccount
) -> None:
    """Without NOTIFY (turned off on Dovecot; Cyrus has none) each folder gets
    an IDLE connection of its own, the inbox and sent mail first, up to
    ``max_idle_connections``; the others are left to polling."""
    if kind == "cyrus":
        cyrus = request.getfixturevalue("cyrus")
        account: ImapAccount = ImapAccount(cyrus, f"push{time.monotonic_ns() % 10**9}")
        request.addfinalizer(account.close)
        provider = account.new_provider(max_idle_connections=2)
        assert not provider.conn.has("NOTIFY")
    else:
        account = dovecot_account
        provider = account.new_provider(notify=False, max_idle_connections=2)
    scopes = list(reversed(_scopes(provider)))  # the order given does not matter
    watch = provider.watch_scopes(scopes)
    assert watch is not None
    with watch as stream:
        group = watch.active  # type: ignore[attr-defined]
        assert isinstance(group, IdleGroup)
        assert [w.folder for w in group.watches] == ["INBOX", "Sent"]
        events = Events(stream)
        waits = [_timed_wake(account, events, "Sent", 1), _timed_wake(account, events, "INBOX", 2)]
        account.add("Archive", sample_message(3))  # over the cap: polled, not watched
        assert events.quiet_for(1.5)
    assert max(waits) < 2.0, waits


def _channel(channel_id: str) -> Channel:
    return Channel(channel_id, "u-owner", ChannelKind.MAIL, "imap", ChannelSettings(owner=OWNER))


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_hub_watches_again_after_the_server_drops_it(dovecot_account: DovecotAccount) -> None:
    woken: queue.Queue[tuple[str, float]] = queue.Queue()
    hub = WatchHub(
        lambda channel: dovecot_account.new_provider(),
        lambda channel_id: woken.put((channel_id, time.monotonic())),
        backoff=Backoff(first=0.2, most=1.0),
        wake_on_start=False,
    )
    channel = _channel("push-restart")
    try:
        hub.watch([channel])
        assert _wait_for(lambda: hub.states() == {"push-restart": "watching"}, 10)
        server = dovecot_account.server
        kicked = subprocess.run(
            ["doveadm", "-c", str(server.config_path), "kick", dovecot_account.username],
            capture_output=True,
            check=False,
        )
        assert kicked.returncode == 0, kicked.stderr
        _relogin(dovecot_account)  # the kick took the test's own session too
        # back after the back-off, and the channel woken to catch up with the gap
        assert woken.get(timeout=10)[0] == "push-restart"
        assert hub.states() == {"push-restart": "watching"}
        started = time.monotonic()
        dovecot_account.add("Archive", sample_message(1))
        channel_id, at = woken.get(timeout=5)
        assert channel_id == "push-restart"
        assert at - started < 2.0
    finally:
        hub.stop()
    assert hub.states() == {}


def _relogin(account: ImapAccount) -> None:
    import imapclient

    with contextlib.suppress(Exception):
        account.admin.shutdown()
    account.admin = imapclient.IMAPClient(account.server.host, account.server.port, ssl=False)
    account.admin.login(account.username, account.password)


def test_hub_stops_a_blocked_watch_at_once(dovecot_account: DovecotAccount) -> None:
    hub = WatchHub(lambda channel: dovecot_account.new_provider(), lambda channel_id: None)
    hub.watch([_channel("push-stop")])
    assert _wait_for(lambda: hub.states() == {"push-stop": "watching"}, 10)
    watcher = hub._watchers["push-stop"]
    started = time.monotonic()
    hub.stop()
    assert not watcher.is_alive()
    assert time.monotonic() - started < 2.0


def test_watch_scopes_is_none_without_idle(dovecot_account: DovecotAccount) -> None:
    from commlink.testing.dovecot import DovecotServer

    caps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ SPECIAL-USE"
    with DovecotServer(extra=f"imap_capability = {caps}\n") as server:
        account = ImapAccount(server, "noidle")
        try:
            watch: AbstractContextManager[Iterator[str]] | None
            watch = account.provider.watch_scopes(_scopes(account.provider))
            assert watch is None
        finally:
            account.close()
