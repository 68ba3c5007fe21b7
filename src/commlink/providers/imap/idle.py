"""IMAP IDLE (RFC 2177) wake-ups on a connection of their own.

``IdleSession`` holds one connection in IDLE, renews it before servers end
it, and turns each batch of untagged responses into the folders that
changed. ``IdleWatch`` watches one selected folder (``watch(scope)``);
``notify.NotifyWatch`` watches many through NOTIFY on the same loop.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from ...errors import ProviderError
from .connection import ImapConnection, ImapSettings

__all__ = ["RENEW_AFTER", "IdleGroup", "IdleSession", "IdleWatch"]

log = logging.getLogger("commlink.imap")

#: Servers may end an IDLE after 30 minutes; re-issue it well before.
RENEW_AFTER = 25 * 60.0
_WAKING = frozenset({b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED", b"RECENT"})


class IdleSession:
    """One connection in IDLE whose iterator yields the folders each batch
    of responses says changed.

    Subclasses set the connection up (``_prepare``) and read responses
    (``_changed``). The iterator ends when the connection drops or the
    server says goodbye. ``poll`` bounds each wait on the socket; ``cancel()``
    (from another thread) ends a blocked iterator at once.
    """

    def __init__(
        self, settings: ImapSettings, *, poll: float = 60.0, renew: float = RENEW_AFTER
    ) -> None:
        self.conn = ImapConnection(settings)
        self.poll = poll
        self.renew = renew
        self._idling = False
        self._cancelled = False

    # -- for subclasses --------------------------------------------------------

    def _prepare(self) -> None:
        """Open the connection and ask for what the IDLE should report."""
        raise NotImplementedError

    def _changed(self, responses: Sequence[Any]) -> list[str] | None:
        """The folders these responses say changed; ``None`` ends the watch."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------

    def cancel(self) -> None:
        """End the iterator from another thread (the socket is shut down)."""
        self._cancelled = True
        client = self.conn.client
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.socket().shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        client = self.conn.client
        if client is not None and self._idling:
            try:
                client.idle_done()
            except Exception:
                self.conn.drop()
        self._idling = False
        self.conn.close()

    def _changes(self) -> Iterator[list[str]]:
        client = self.conn.client
        if client is None:
            return
        try:
            started = self._start(client)
            while not self._cancelled:
                if time.monotonic() - started >= self.renew:
                    self._stop(client)
                    started = self._start(client)
                wait = min(self.poll, self.renew)
                asked = time.monotonic()
                responses = client.idle_check(timeout=wait)
                if any(_ends(r) for r in responses):
                    break
                if not responses and time.monotonic() - asked < wait / 2:
                    # readable yet no line: imapclient swallowed an EOF
                    log.info("IDLE ended: connection closed")
                    break
                changed = self._changed(responses)
                if changed is None:
                    break
                if changed:
                    yield changed
        except (OSError, EOFError, ProviderError) as exc:
            log.info("IDLE ended: %s", exc)
        except Exception as exc:  # imaplib's abort/error: the connection is gone
            log.info("IDLE ended: %r", exc)
        self._idling = False
        self.conn.drop()

    def _start(self, client: Any) -> float:
        client.idle()
        self._idling = True
        return time.monotonic()

    def _stop(self, client: Any) -> None:
        client.idle_done()
        self._idling = False


class IdleWatch(IdleSession):
    """A context manager whose iterator yields each time one folder changes
    (the folder is opened read-only, so nothing is marked seen)."""

    def __init__(
        self, settings: ImapSettings, folder: str, *, poll: float = 60.0, renew: float = RENEW_AFTER
    ) -> None:
        super().__init__(settings, poll=poll, renew=renew)
        self.folder = folder

    def _prepare(self) -> None:
        self.conn.examine(self.folder)

    def _changed(self, responses: Sequence[Any]) -> list[str] | None:
        return [self.folder] if any(_wakes(r) for r in responses) else []

    def __enter__(self) -> Iterator[None]:
        self._prepare()
        return (None for _ in self._changes())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()


class IdleGroup:
    """IDLE on one connection per folder, merged: the iterator yields the
    folder that changed and ends as soon as any connection is lost (the
    caller watches again, and catches up with a sync).

    For servers without NOTIFY; each connection counts against the
    server's per-user limit (Dovecot: ``mail_max_userip_connections``,
    10 by default), so keep the group small.
    """

    def __init__(
        self,
        settings: ImapSettings,
        folders: Sequence[str],
        *,
        poll: float = 60.0,
        renew: float = RENEW_AFTER,
    ) -> None:
        self.watches = [IdleWatch(settings, f, poll=poll, renew=renew) for f in folders]
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Iterator[str]:
        try:
            for watch in self.watches:
                watch._prepare()
        except BaseException:
            for watch in self.watches:
                watch._close()
            raise
        for watch in self.watches:
            thread = threading.Thread(
                target=self._pump, args=(watch,), name=f"idle-{watch.folder}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self._merged()

    def _pump(self, watch: IdleWatch) -> None:
        try:
            for changed in watch._changes():
                for folder in changed:
                    self._queue.put(folder)
        finally:
            self._queue.put(None)

    def _merged(self) -> Iterator[str]:
        while True:
            folder = self._queue.get()
            if folder is None:
                return
            yield folder

    def cancel(self) -> None:
        """End the iterator from another thread."""
        for watch in self.watches:
            watch.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
        for thread in self._threads:
            thread.join(timeout=5)
        for watch in self.watches:
            watch._close()


def _wakes(response: Any) -> bool:
    return isinstance(response, tuple) and any(
        isinstance(part, bytes) and part.upper() in _WAKING for part in response[1:2]
    )


def _ends(response: Any) -> bool:
    return isinstance(response, tuple) and bool(response) and response[0] == b"BYE"
