"""``DavAccount``: one user of a CalDAV test server (Radicale, Xandikos,
Cyrus), with plain-HTTP helpers to change their calendars.

Objects are written with ``urllib``, so tests that use it do not depend on
the client under test.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from urllib.parse import quote

__all__ = ["DavAccount"]


class DavAccount:
    """A user whose calendars live under ``home`` on the server at ``base``
    (``http://127.0.0.1:PORT``); ``url`` is where a client starts discovery."""

    def __init__(
        self,
        base: str,
        username: str,
        password: str,
        *,
        home: str,
        root: str = "/",
        send_credentials: bool = True,
    ) -> None:
        self.base = base.rstrip("/")
        self.username = username
        self.password = password
        self._home = home
        self._root = root
        self.send_credentials = send_credentials

    @property
    def url(self) -> str:
        """The server's CalDAV root; the client discovers the user's calendars from it."""
        return self.base + self._root

    def home(self) -> str:
        """The path of the user's calendar home."""
        return self._home

    def calendar_path(self, calendar: str) -> str:
        """The path (and calendar id) of one of the user's calendars."""
        return f"{self._home}{quote(calendar)}/"

    def headers(self) -> dict[str, str]:
        """What each request carries to act as the user."""
        if not self.send_credentials:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request as the user; returns status and body (never raises on 4xx/5xx)."""
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=data or None,
            method=method,
            headers={**self.headers(), **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), bytes(exc.read())

    def _check(self, result: tuple[int, bytes], what: str) -> int:
        status, body = result
        if status >= 300:
            raise RuntimeError(f"{what} failed: {status} {body[:200]!r}")
        return status

    def make_calendar(self, calendar: str, name: str = "") -> str:
        """Create a calendar; returns its path."""
        path = self.calendar_path(calendar)
        display = f"<D:displayname>{name}</D:displayname>" if name else ""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop>{display}</D:prop></D:set></C:mkcalendar>"
        )
        self._check(
            self.request("MKCALENDAR", path, body, {"Content-Type": "application/xml"}),
            f"MKCALENDAR {path}",
        )
        return path

    def delete_calendar(self, calendar: str) -> None:
        path = self.calendar_path(calendar)
        self._check(self.request("DELETE", path), f"DELETE {path}")

    def put(self, calendar: str, name: str, ics: bytes | str) -> str:
        """Create or replace an object; returns its path."""
        path = self.calendar_path(calendar) + quote(name)
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        self._check(self.request("PUT", path, ics, headers), f"PUT {path}")
        return path

    def delete(self, calendar: str, name: str) -> None:
        path = self.calendar_path(calendar) + quote(name)
        self._check(self.request("DELETE", path), f"DELETE {path}")
