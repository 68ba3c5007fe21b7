"""IMAP NOTIFY (RFC 5465): one connection watches many folders.

The connection selects no folder and asks, with
``NOTIFY SET (mailboxes (<folders>) (MessageNew MessageExpunge))``, to be
told about new and expunged messages in the watched folders; then it IDLEs
(notifications arrive during IDLE like any other untagged response). For
a folder that is not selected the server reports a change with an
unsolicited ``STATUS <mailbox> (...)`` response, which names the folder.

A server that refuses the command (``NO``, e.g. ``[BADEVENT]``) raises
``NotifyRefused``; one that later gives up (``OK [NOTIFICATIONOVERFLOW]``,
RFC 5465 section 5.8) ends the iterator, so the caller watches again.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from ...errors import ProviderError
from .connection import ImapSettings
from .idle import RENEW_AFTER, IdleGroup, IdleSession

__all__ = ["FolderWatch", "NotifyRefused", "NotifyWatch", "notify_command"]

log = logging.getLogger("commlink.imap")

_OVERFLOW = b"[NOTIFICATIONOVERFLOW]"


class NotifyRefused(ProviderError):
    """The server would not take the NOTIFY command."""


def _quoted(folder: str) -> str | None:
    """A folder name as an IMAP quoted string (modified UTF-7); ``None`` for
    a name a quoted string cannot carry (CR, LF, NUL)."""
    from imapclient import imap_utf7

    encoded: str = imap_utf7.encode(folder).decode("ascii")
    if any(c in encoded for c in "\r\n\0"):
        return None
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def notify_command(folders: Sequence[str], *, flags: bool = False) -> str:
    """The ``NOTIFY SET`` argument that watches ``folders``: new and expunged
    messages (RFC 5465 allows neither without the other), and flag changes
    when ``flags`` is set. Names a quoted string cannot carry are left out."""
    names = [q for q in (_quoted(f) for f in folders) if q is not None]
    if not names:
        raise ProviderError("no folder to watch")
    events = "MessageNew MessageExpunge" + (" FlagChange" if flags else "")
    return f"(mailboxes ({' '.join(names)}) ({events}))"


class NotifyWatch(IdleSession):
    """A context manager whose iterator yields the name of each watched
    folder that changed (once per batch of notifications)."""

    def __init__(
        self,
        settings: ImapSettings,
        folders: Sequence[str],
        *,
        flags: bool = False,
        poll: float = 60.0,
        renew: float = RENEW_AFTER,
    ) -> None:
        super().__init__(settings, poll=poll, renew=renew)
        self.folders = tuple(dict.fromkeys(folders))
        self.flags = flags
        self._watched = frozenset(self.folders)

    def _prepare(self) -> None:
        client = self.conn.open()
        argument = notify_command(self.folders, flags=self.flags)
        # imaplib refuses commands it does not know in a state it does not list
        imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))
        try:
            typ, data = client._imap.xatom("NOTIFY", "SET", argument)
        except Exception as exc:  # BAD, or the connection went
            self.conn.drop()
            raise NotifyRefused(f"NOTIFY failed: {exc}") from exc
        if typ != "OK":
            self.conn.close()
            raise NotifyRefused(f"NOTIFY refused: {_text(data)}")

    def _changed(self, responses: Sequence[Any]) -> list[str] | None:
        changed: dict[str, None] = {}
        for response in responses:
            if not isinstance(response, tuple) or not response:
                continue
            kind = response[0]
            if kind == b"OK" and len(response) > 1 and _OVERFLOW in bytes(response[1]).upper():
                log.info("NOTIFY overflow: the server stopped notifications")
                return None
            if kind != b"STATUS":
                continue
            folder = _mailbox(response[1] if len(response) > 1 else None)
            changed[folder if folder in self._watched else ""] = None
        return list(changed)

    def __enter__(self) -> Iterator[str]:
        self._prepare()
        return self._folders()

    def _folders(self) -> Iterator[str]:
        for changed in self._changes():
            yield from changed

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()


def _mailbox(value: Any) -> str:
    """A STATUS response's mailbox name, decoded; ``""`` when unreadable."""
    from imapclient import imap_utf7

    if isinstance(value, int):  # a folder named "2024" parses as a number
        return str(value)
    if not isinstance(value, bytes):
        return ""
    try:
        return str(imap_utf7.decode(value))
    except Exception:
        return ""


def _text(data: Any) -> str:
    parts = data if isinstance(data, (list, tuple)) else [data]
    return " ".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts)


class FolderWatch:
    """What ``ImapProvider.watch_scopes`` returns: NOTIFY on one connection
    when ``notify`` is set, else (or when the server refuses it) IDLE on one
    connection per folder for the first ``max_idle`` folders."""

    def __init__(
        self,
        settings: ImapSettings,
        folders: Sequence[str],
        *,
        notify: bool,
        flags: bool = False,
        max_idle: int = 5,
        poll: float = 60.0,
    ) -> None:
        self.settings = settings
        self.folders = tuple(folders)
        self.notify = notify
        self.flags = flags
        self.max_idle = max(1, max_idle)
        self.poll = poll
        self.active: NotifyWatch | IdleGroup | None = None

    def __enter__(self) -> Iterator[str]:
        if self.notify:
            watch = NotifyWatch(self.settings, self.folders, flags=self.flags, poll=self.poll)
            try:
                events = watch.__enter__()
            except NotifyRefused as exc:
                log.info("%s; IDLE on each folder instead", exc)
            else:
                self.active = watch
                return events
        watched = self.folders[: self.max_idle]
        if len(self.folders) > len(watched):
            log.info(
                "IDLE on %d of %d folders (max_idle_connections); the others are polled",
                len(watched),
                len(self.folders),
            )
        group = IdleGroup(self.settings, watched, poll=self.poll)
        events = group.__enter__()
        self.active = group
        return events

    def cancel(self) -> None:
        """End the iterator from another thread."""
        if self.active is not None:
            self.active.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        active, self.active = self.active, None
        if active is not None:
            active.__exit__(exc_type, exc, tb)
