"""Webhook push for Celery: ``commlink watch`` with a ``[push]`` table serves
the push app and keeps the Graph subscriptions (validated by the strict
local Graph server through the app); a notification queues
``sync_channel`` on the local Redis and a real worker stores the new
message in PostgreSQL. No beat runs: only push brings mail in."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from celery_support import HERE, wait_for

from commlink.stores.sql import SqlStore
from commlink.testing.microsoft import GraphServer
from commlink.testing.provider_conformance import BASE, OWNER

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]


def _mail(n: int) -> bytes:
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Hook {n}\r\n"
        f"Date: {format_datetime(BASE)}\r\nMessage-ID: <hook-{n}@celery.test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello {n}\r\n"
    ).encode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[Path]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_watch_serves_push_and_a_worker_stores_the_notified_message(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    with GraphServer(user=OWNER) as graph:
        config = tmp_path / "commlink.toml"
        config.write_text(
            f'[store]\nurl = "{celery_env["COMMLINK_IT_DB"]}"\n\n'
            f'[push]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n\n'
            f'[[channels]]\nid = "m365"\nuser = "u-owner"\nprovider = "graph"\n'
            f'owner = "{OWNER}"\norg_domains = ["home.example"]\n'
            f'[channels.options]\ntoken = "{graph.token}"\nbase_url = "{graph.base_url}"\n'
            f'user = "{OWNER}"\n'
        )
        graph.mail.add_message(_mail(1), "inbox")
        path = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {
            **os.environ,
            **celery_env,
            "COMMLINK_IT_CONFIG": str(config),
            "PYTHONPATH": os.pathsep.join(path),
        }
        queue = celery_env["COMMLINK_IT_QUEUE"]
        worker = [sys.executable, "-m", "celery", "-A", "push_worker_app", "worker", "-Q", queue]
        worker += ["--pool=solo", "-n", f"hooks-{queue}@%h", "--loglevel=WARNING"]
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        watch = [sys.executable, "-m", "commlink", "watch", str(config)]
        watch += ["--app", "push_worker_app:tasks", "--tick", "1"]
        store = SqlStore(celery_env["COMMLINK_IT_DB"])
        with (
            _process(worker, env, tmp_path / "worker.log"),
            _process(watch, env, tmp_path / "watch.log") as watch_log,
        ):
            try:
                # a new subscription wakes its channel: the first sync comes without beat
                wait_for(lambda: store.count_associations("m365") == 1, 40, "the first sync")
                assert graph.push.validations
                assert all(ok for _, ok in graph.push.validations)
                started = time.monotonic()
                graph.mail.add_message(_mail(2), "inbox")
                wait_for(lambda: store.count_associations("m365") == 2, 10, "the new mail")
                waited = time.monotonic() - started
            finally:
                store.close()
        output = watch_log.read_text()
    assert f"push endpoints on http://127.0.0.1:{port}" in output
    assert graph.token not in output
    print(f"graph mail through commlink watch + worker: added -> stored in {waited:.2f}s")
    assert waited < 5
