"""IMAP IDLE (RFC 2177) wake-ups on a connection of their own."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from ...errors import ProviderError
from .connection import ImapConnection, ImapSettings

__all__ = ["IdleWatch"]

log = logging.getLogger("commlink.imap")

#: Servers may end an IDLE after 30 minutes; re-issue it well before.
RENEW_AFTER = 25 * 60.0
_WAKING = frozenset({b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED", b"RECENT"})


class IdleWatch:
    """A context manager whose iterator yields each time the folder changes.

    The iterator ends when the connection drops (the caller falls back to
    polling). ``poll`` bounds each wait, so a consumer regains control at
    least that often (it yields nothing then).
    """

    def __init__(
        self, settings: ImapSettings, folder: str, *, poll: float = 60.0, renew: float = RENEW_AFTER
    ) -> None:
        self.conn = ImapConnection(settings)
        self.folder = folder
        self.poll = poll
        self.renew = renew
        self._idling = False

    def __enter__(self) -> Iterator[None]:
        self.conn.examine(self.folder)
        return self._events()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = self.conn.client
        if client is not None and self._idling:
            try:
                client.idle_done()
            except Exception:
                self.conn.drop()
        self._idling = False
        self.conn.close()

    def _events(self) -> Iterator[None]:
        client = self.conn.client
        if client is None:
            return
        try:
            started = self._start(client)
            while True:
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
                    log.info("IDLE on %s ended: connection closed", self.folder)
                    break
                if any(_wakes(r) for r in responses):
                    yield None
        except (OSError, EOFError, ProviderError) as exc:
            log.info("IDLE on %s ended: %s", self.folder, exc)
        except Exception as exc:  # imaplib's abort/error: the connection is gone
            log.info("IDLE on %s ended: %r", self.folder, exc)
        self._idling = False
        self.conn.drop()

    def _start(self, client: Any) -> float:
        client.idle()
        self._idling = True
        return time.monotonic()

    def _stop(self, client: Any) -> None:
        client.idle_done()
        self._idling = False


def _wakes(response: Any) -> bool:
    return isinstance(response, tuple) and any(
        isinstance(part, bytes) and part.upper() in _WAKING for part in response[1:2]
    )


def _ends(response: Any) -> bool:
    return isinstance(response, tuple) and bool(response) and response[0] == b"BYE"
