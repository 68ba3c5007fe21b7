"""Push for Celery: ``commlink watch`` holds the IMAP NOTIFY connections of two
Dovecot channels and queues ``sync_channel`` on the local Redis for the
channel that changed; a real worker syncs it into PostgreSQL. No beat runs,
so only push can bring the new mail in."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from celery_support import HERE, wait_for

from commlink.records import ChannelStatus
from commlink.stores.sql import SqlStore
from commlink.testing.dovecot import DovecotAccount, DovecotServer
from commlink.testing.provider_conformance import OWNER, sample_message
from server_fixtures import unique_name

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]


def write_config(path: Path, database: str, server: DovecotServer, users: dict[str, str]) -> None:
    """A configuration file with one IMAP channel per ``channel id: user``."""
    lines = ["[store]", f'url = "{database}"', ""]
    for channel_id, user in users.items():
        lines += [
            "[[channels]]",
            f'id = "{channel_id}"',
            'user = "u-owner"',
            'provider = "imap"',
            f'owner = "{OWNER}"',
            'org_domains = ["home.example"]',
            "[channels.options]",
            f'host = "{server.host}"',
            f"port = {server.port}",
            f'username = "{user}"',
            f'password = "{server.password}"',
            "ssl = false",
            "",
        ]
    path.write_text("\n".join(lines))


class Process:
    """A command run with the test run's environment in a process group of its own."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=HERE,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return -9
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def accounts(dovecot: DovecotServer) -> Iterator[dict[str, DovecotAccount]]:
    found = {cid: DovecotAccount(dovecot, unique_name("cw")) for cid in ("push-a", "push-b")}
    try:
        yield found
    finally:
        for account in found.values():
            account.close()


def _last_success(store: SqlStore, channel_id: str) -> datetime | None:
    state = store.channel_state(channel_id)
    return state.last_success if state is not None else None


def _settled(store: SqlStore, channel_ids: list[str], quiet: float = 2.0) -> datetime | None:
    """Wait until no channel has been synced for ``quiet`` seconds; the first
    channel's last success then."""
    deadline = time.monotonic() + 30
    seen = [_last_success(store, c) for c in channel_ids]
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            pytest.fail("the channels never stopped syncing")
        time.sleep(0.1)
        now = [_last_success(store, c) for c in channel_ids]
        if now != seen:
            seen, since = now, time.monotonic()
    return seen[0]


def test_watch_process_queues_a_sync_for_the_channel_that_changed(
    celery_env: dict[str, str],
    tmp_path: Path,
    dovecot: DovecotServer,
    accounts: dict[str, DovecotAccount],
) -> None:
    config = tmp_path / "commlink.toml"
    users = {cid: account.username for cid, account in accounts.items()}
    write_config(config, celery_env["COMMLINK_IT_DB"], dovecot, users)
    accounts["push-a"].add("INBOX", sample_message(1))
    path = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        **celery_env,
        "COMMLINK_IT_CONFIG": str(config),
        "PYTHONPATH": os.pathsep.join(path),
    }
    queue = celery_env["COMMLINK_IT_QUEUE"]
    celery = [sys.executable, "-m", "celery", "-A", "push_worker_app", "worker", "-Q", queue]
    options = ["--pool=prefork", "--concurrency=1", "-n", f"push-{queue}@%h", "--loglevel=INFO"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = Process([*celery, *options, *quiet], env, tmp_path / "worker.log")
    commlink = [sys.executable, "-m", "commlink", "-v", "watch", str(config)]
    app = ["--app", "push_worker_app:tasks", "--tick", "1"]
    watch = Process([*commlink, *app], env, tmp_path / "watch.log")
    store = SqlStore(celery_env["COMMLINK_IT_DB"])
    try:
        # the watch saves the channels, and wakes each once its watch is in place
        wait_for(
            lambda: all(_last_success(store, cid) for cid in accounts),
            40,
            "the first sync of both channels",
        )
        assert store.count_associations("push-a") == 1
        # Dovecot reports the first opening of a folder (its index is created
        # then) as a change: wait until those wake-ups have been synced
        before_a = _settled(store, list(accounts))
        started = time.monotonic()
        accounts["push-b"].add("Archive", sample_message(2))
        wait_for(lambda: store.count_associations("push-b") == 1, 10, "push-b's new mail")
        waited_b = time.monotonic() - started
        assert _last_success(store, "push-a") == before_a  # only the changed channel ran
        started = time.monotonic()
        accounts["push-a"].add("Sent", sample_message(3))
        wait_for(lambda: store.count_associations("push-a") == 2, 10, "push-a's new mail")
        waited_a = time.monotonic() - started
        states = store.channel_states()
        assert {states[cid].status for cid in accounts} == {ChannelStatus.ACTIVE}
    finally:
        code = watch.stop()
        worker.stop()
        store.close()
    print(f"delivery to stored through Celery: push-b {waited_b:.2f}s, push-a {waited_a:.2f}s")
    assert code == 0, (tmp_path / "watch.log").read_text()
    assert "watching push-a" in (tmp_path / "watch.log").read_text()
    assert max(waited_a, waited_b) < 5.0
