"""Running a local server process for tests: a free port, the process with
its output in a log file, waiting until it is ready, and stopping it.

The servers of ``commlink.testing`` (Dovecot, Cyrus, Radicale, Xandikos)
are built on these; each says for itself when it is ready and what a
failed start means.
"""

from __future__ import annotations

import contextlib
import enum
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from ..closing import Stopping

__all__ = [
    "LocalServer",
    "Startup",
    "accepts",
    "chown_tree",
    "free_port",
    "launch",
    "raise_unless_started",
    "service_owner",
    "stop_process",
    "wait_ready",
]

S = TypeVar("S", bound="LocalServer")

#: How long a stopping server has to exit before it is killed, in seconds.
_STOP_SECONDS = 10
#: The pause between readiness checks, in seconds.
_POLL_SECONDS = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    own_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` without input, its output and errors appended to
    ``log_path``; with ``own_session`` in a process group of its own."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=own_session,
        )


def accepts(host: str, port: int, *, timeout: float, greeting: bytes = b"") -> bool:
    """Whether ``host:port`` takes a connection (and, with ``greeting``, the
    server's first bytes start with it)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return not greeting or sock.recv(64).startswith(greeting)
    except OSError:
        return False


class Startup(enum.Enum):
    """How waiting for a server to start ended."""

    READY = "ready"
    EXITED = "exited"
    TIMED_OUT = "timed out"


def wait_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float
) -> Startup:
    """Ask ``ready()`` until it says yes, the process exits or ``timeout``
    seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return Startup.EXITED
        if ready():
            return Startup.READY
        time.sleep(_POLL_SECONDS)
    return Startup.TIMED_OUT


def stop_process(process: subprocess.Popen[bytes] | None, *, group: bool = False) -> None:
    """Terminate ``process`` (killed when it does not exit in time); with
    ``group``, then kill what is left of its process group (services it
    started and did not take down with it)."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_SECONDS)
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def service_owner() -> tuple[int, int, str]:
    """``(uid, gid, user name)`` a server's files belong to: ``nobody`` when
    running as root (servers refuse to own mail as root), else the current user."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid, entry.pw_name
    return os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Hand ``path`` and all below it to ``uid:gid`` (only root may; a no-op otherwise)."""
    if os.geteuid() != 0:
        return
    os.chown(path, uid, gid)
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), uid, gid)


def raise_unless_started(
    started: Startup, name: str, log_path: Path, timeout: float, stop: Callable[[], None]
) -> None:
    """Raise ``RuntimeError`` pointing at the log unless ``name`` started;
    ``stop()`` it first when it did not start in time."""
    if started is Startup.EXITED:
        raise RuntimeError(f"{name} exited; see {log_path}")
    if started is Startup.TIMED_OUT:
        stop()
        raise RuntimeError(f"{name} did not start within {timeout}s; see {log_path}")


class LocalServer(Stopping):
    """A test server run as a process of its own; used as a context manager,
    ``start()`` on entry, ``stop()`` on exit."""

    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> object:
        """Start the server (subclasses override)."""
        raise NotImplementedError

    def __enter__(self: S) -> S:
        self.start()
        return self

    def _run(
        self,
        command: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        timeout: float,
        *,
        env: Mapping[str, str] | None = None,
        own_session: bool = False,
    ) -> Startup:
        """Start the server's process (see ``launch``) and wait until ``ready()``."""
        self._process = launch(command, log_path, env=env, own_session=own_session)
        return wait_ready(self._process, ready, timeout)

    def _stop_process(self, *, group: bool = False) -> None:
        """Stop the server's process, if any (see ``stop_process``)."""
        process, self._process = self._process, None
        stop_process(process, group=group)
