"""``commlink sync --watch`` with a ``[push]`` table, in a process of its own,
against the strict local Graph server: the command serves the push app,
its keeper subscribes the channel (Graph validates both URLs through the
app), and a new message is notified, woken and stored within seconds,
with an hour's polling interval."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from push_app_support import OWNER, raw_mail, wait_for

from commlink.stores.sql import SqlStore
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(path: Path, server: GraphServer, port: int) -> str:
    database = f"sqlite:///{path.parent / 'commlink.db'}"
    path.write_text(
        f"""
[store]
url = "{database}"

[push]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[[channels]]
id = "m365"
user = "u-owner"
provider = "graph"
owner = "{OWNER}"
org_domains = ["home.example"]

[channels.options]
token = "{server.token}"
base_url = "{server.base_url}"
user = "{OWNER}"
"""
    )
    return database


@pytest.fixture
def graph_server() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as running:
        yield running


@contextlib.contextmanager
def _command(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "commlink", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sync_watch_serves_push_and_stores_a_notified_message(
    graph_server: GraphServer, tmp_path: Path
) -> None:
    port = _free_port()
    config = tmp_path / "commlink.toml"
    database = _config(config, graph_server, port)
    log = tmp_path / "sync.log"
    graph_server.mail.add_message(raw_mail(1), "inbox")
    with _command(["sync", str(config), "--watch", "--interval", "3600"], log) as proc:
        assert wait_for(lambda: bool(graph_server.push.validations), 20), log.read_text()
        store = SqlStore(database)
        try:
            assert wait_for(lambda: store.count_associations("m365") == 1, 15), log.read_text()
            subscribed = graph_server.subscriptions
            assert subscribed  # one per selected folder
            assert all(ok for _, ok in graph_server.push.validations)
            urls = {s["notificationUrl"] for s in subscribed.values()}
            assert urls == {f"http://127.0.0.1:{port}/push/graph"}
            lifecycle = {s["lifecycleNotificationUrl"] for s in subscribed.values()}
            assert lifecycle == {f"http://127.0.0.1:{port}/push/graph/lifecycle"}
            kept = store.subscription_store().subscriptions(channel_id="m365")
            assert {s.id for s in kept} == set(subscribed)

            started = time.monotonic()
            graph_server.mail.add_message(raw_mail(2), "inbox")
            assert wait_for(lambda: store.count_associations("m365") == 2, 5), log.read_text()
            waited = time.monotonic() - started
        finally:
            store.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, log.read_text()
    output = log.read_text()
    assert f"push endpoints on http://127.0.0.1:{port}" in output
    assert graph_server.token not in output
    print(f"graph mail through commlink sync --watch: added -> stored in {waited:.2f}s")


def test_a_taken_listen_address_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "commlink.toml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[push]\nlisten = "127.0.0.1:{port}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "commlink", "sync", str(config), "--watch"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert f"push.listen: cannot listen on 127.0.0.1:{port}" in done.stderr
