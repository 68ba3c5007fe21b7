"""Helpers for the Celery worker tests: worker processes, waiting on conditions,
whether a local broker listens."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def listening(port: int) -> bool:
    """Whether a server accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Workers:
    """Celery worker processes started with a run's environment."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        queue = self.env["COMMLINK_IT_QUEUE"]
        command = [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker"]
        command += ["--pool=prefork", f"--concurrency={concurrency}", "-Q", queue]
        command += ["-n", f"{name}-{queue}@%h", "--loglevel=INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        proc = subprocess.Popen(
            command,
            cwd=HERE,
            env=self._environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: main process and pool children
        )
        out.close()
        self.procs[name] = proc
        return proc

    def _environment(self) -> dict[str, str]:
        """The environment now (a test may have set more) with the run's settings."""
        path = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join(path)}

    def pids(self, name: str) -> set[int]:
        """The worker's processes (its process group)."""
        group = self.procs[name].pid
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:  # pgrp
                found.add(int(entry.name))
        return found

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.killpg(self.procs[name].pid, sig)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """Warm shutdown (SIGTERM) of every worker; SIGKILL what outlives 15 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # children of a killed main process
                os.killpg(proc.pid, signal.SIGKILL)


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    step: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout``
    seconds, and with what ``explain`` says of the state then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            found = f"\n{explain()}" if explain is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{found}")
        time.sleep(step)
