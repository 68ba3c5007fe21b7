"""A private Radicale CalDAV server for tests (needs the ``radicale`` package).

``RadicaleServer`` starts ``python -m radicale`` on a free port of
127.0.0.1 with its storage and log under a folder of your choice, one
htpasswd user (plain password), and stops it again::

    with RadicaleServer(tmp_path) as server:
        account = server.add_account("bob", "pw")  # or server.account
        account.make_calendar("work", "Work")
        account.put("work", "a.ics", ics_text)
        provider = CalDavProvider(account.url, username="bob", password="pw")

Objects are written with plain HTTP (``urllib``, see ``DavAccount``), so
tests that use it do not depend on the client under test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .dav_account import DavAccount

__all__ = ["RadicaleAccount", "RadicaleServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RadicaleServer:
    """One Radicale process serving ``username``'s calendars."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        username: str = "alice",
        password: str = "secret",
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.root = Path(root)
        self.username = username
        self.password = password
        self.port = port or free_port()
        self.extra_args = extra_args
        self.storage = self.root / "collections"
        self.log_path = self.root / "radicale.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._users = self.root / "users"

    @property
    def account(self) -> RadicaleAccount:
        """The user the server was started with."""
        return RadicaleAccount(self.port, self.username, self.password)

    def add_account(self, username: str, password: str) -> RadicaleAccount:
        """Another user (the htpasswd file is read on every login)."""
        with self._users.open("a") as out:
            out.write(f"{username}:{password}\n")
        return RadicaleAccount(self.port, username, password)

    @property
    def url(self) -> str:
        """The server root; the client discovers the user's calendars from it."""
        return f"http://127.0.0.1:{self.port}/"

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 15.0) -> RadicaleServer:
        self.root.mkdir(parents=True, exist_ok=True)
        users = self._users
        users.write_text(f"{self.username}:{self.password}\n")
        args = [
            sys.executable,
            "-m",
            "radicale",
            "--server-hosts",
            f"127.0.0.1:{self.port}",
            "--storage-filesystem-folder",
            str(self.storage),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(users),
            "--auth-htpasswd-encryption",
            "plain",
            "--auth-delay",
            "0",
            "--logging-level",
            "warning",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"radicale exited; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"radicale did not start within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> RadicaleServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RadicaleAccount(DavAccount):
    """One user of a ``RadicaleServer``; calendars live under ``/<user>/``."""

    def __init__(self, port: int, username: str, password: str) -> None:
        super().__init__(f"http://127.0.0.1:{port}", username, password, home=f"/{username}/")
        self.port = port
