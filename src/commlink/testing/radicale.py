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

import functools
import os
import sys
from pathlib import Path

from .dav_account import DavAccount
from .server_process import LocalServer, accepts, free_port, raise_unless_started

__all__ = ["RadicaleAccount", "RadicaleServer", "free_port"]


class RadicaleServer(LocalServer):
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
        ready = functools.partial(accepts, "127.0.0.1", self.port, timeout=0.2)
        started = self._run(args, self.log_path, ready, timeout)
        raise_unless_started(started, "radicale", self.log_path, timeout, self.stop)
        return self

    def stop(self) -> None:
        self._stop_process()


class RadicaleAccount(DavAccount):
    """One user of a ``RadicaleServer``; calendars live under ``/<user>/``."""

    def __init__(self, port: int, username: str, password: str) -> None:
        super().__init__(f"http://127.0.0.1:{port}", username, password, home=f"/{username}/")
        self.port = port
