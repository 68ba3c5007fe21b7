"""A private Xandikos CalDAV server for tests (needs the ``xandikos`` package).

Xandikos has no password checking of its own over plain HTTP: its
multi-user mode takes the user from an ``X-Remote-User`` header set by an
authenticating reverse proxy. ``XandikosServer`` runs exactly that on
127.0.0.1: ``python -m xandikos multi-user`` on a private port, trusting the
header from loopback only, and in front of it a small proxy (a thread of
the calling process) that checks HTTP Basic credentials against its users,
answers a wrong password with 401 and forwards an anonymous request
without a user (Xandikos then answers as for an anonymous user, with an
``unauthenticated`` principal rather than a 401)::

    with XandikosServer(tmp_path) as server:
        account = server.add_account("bob", "pw")
        account.make_calendar("work", "Work")
        provider = CalDavProvider(account.url, username="bob", password="pw")

Each user's calendar home is ``/<user>/calendars/``, created on first use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .dav_account import DavAccount
from .local_http import HttpAnswer, LocalHttpServer
from .server_process import LocalServer, accepts, free_port, raise_unless_started

__all__ = ["XandikosAccount", "XandikosServer", "free_port", "xandikos_missing"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "host",
        "authorization",
        "x-remote-user",
        "accept-encoding",
        "te",
        "upgrade",
    }
)


def xandikos_missing() -> str | None:
    """Why a ``XandikosServer`` cannot start here, or ``None`` when it can."""
    try:
        import xandikos  # noqa: F401
    except ImportError:
        return "xandikos is not installed (pip install xandikos, or the test extra)"
    return None


class _AuthProxy(LocalHttpServer):
    """Checks Basic credentials and forwards to Xandikos with ``X-Remote-User``."""

    def __init__(self, backend: int, users: Mapping[str, str]) -> None:
        self.backend = backend
        self.users = users

    def _user(self, headers: Mapping[str, str]) -> str | None:
        """The authenticated user, ``""`` for none, ``None`` for refused credentials."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if not scheme:
            return ""
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return username if self.users.get(username) == password else None

    def answer_http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        user = self._user(headers)
        if user is None:
            challenge = {"WWW-Authenticate": 'Basic realm="xandikos"'}
            return 401, challenge, b"wrong user name or password\n"
        forwarded = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        if user:
            forwarded["X-Remote-User"] = user
        conn = http.client.HTTPConnection("127.0.0.1", self.backend, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            return 502, {}, b"xandikos is not answering\n"
        finally:
            conn.close()
        kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
        return response.status, kept, data


class XandikosServer(LocalServer):
    """One Xandikos process for any number of users, behind an authenticating proxy."""

    def __init__(self, root: str | os.PathLike[str], *, port: int | None = None) -> None:
        missing = xandikos_missing()
        if missing is not None:
            raise RuntimeError(missing)
        self.root = Path(root)
        self.backend_port = port or free_port()
        self.data = self.root / "collections"
        self.log_path = self.root / "xandikos.log"
        self.users: dict[str, str] = {}
        self._proxy = _AuthProxy(self.backend_port, self.users)

    @property
    def port(self) -> int:
        """The port clients talk to (the authenticating proxy)."""
        return self._proxy.port

    @property
    def url(self) -> str:
        return self._proxy.root_url

    def add_account(self, username: str, password: str) -> XandikosAccount:
        """A user with an empty calendar home."""
        self.users[username] = password
        return XandikosAccount(self.port, username, password)

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> XandikosServer:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "xandikos",
            "multi-user",
            "-d",
            str(self.data),
            "-l",
            "127.0.0.1",
            "-p",
            str(self.backend_port),
            "--trust-x-remote-user-from",
            "127.0.0.1",
            "--no-detect-systemd",
            "--state-dir",
            str(self.root / "state"),
        ]
        ready = functools.partial(accepts, "127.0.0.1", self.backend_port, timeout=0.2)
        started = self._run(args, self.log_path, ready, timeout)
        raise_unless_started(started, "xandikos", self.log_path, timeout, self.stop)
        self._proxy.start()
        return self

    def stop(self) -> None:
        self._proxy.stop()
        self._stop_process()


class XandikosAccount(DavAccount):
    """One user of a ``XandikosServer``; calendars live under ``/<user>/calendars/``."""

    def __init__(self, port: int, username: str, password: str) -> None:
        super().__init__(
            f"http://127.0.0.1:{port}", username, password, home=f"/{username}/calendars/"
        )
        self.port = port
