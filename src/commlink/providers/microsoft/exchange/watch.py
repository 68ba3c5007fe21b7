"""EWS streaming notifications as wake-ups (``ExchangeMailProvider.watch``).

A streaming subscription to one folder, read over a connection of its own
with ``GetStreamingEvents``; each notification that carries item events
yields once. When a stream's time is up the next one is opened; when the
subscription is gone (it expires after the server's timeout without a
reader) or the connection fails, the iterator ends and the caller falls
back to polling.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any

from ....errors import ProviderError
from .account import ExchangeConnection
from .errors import Caller

__all__ = ["StreamingWatch"]

log = logging.getLogger("commlink.exchange")

_EVENTS = ("CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent")


class StreamingWatch:
    """A context manager whose iterator yields when the folder changes.

    ``minutes`` is each GetStreamingEvents connection's length (EWS allows
    1 to 30); the iterator regains control at least that often.
    """

    def __init__(self, connection: ExchangeConnection, folder_id: str, *, minutes: int = 30):
        self.connection = connection.fork()
        self.folder_id = folder_id
        self.minutes = min(max(int(minutes), 1), 30)
        self.subscription: str | None = None
        self._stream: Iterator[None] | None = None

    def __enter__(self) -> Iterator[None]:
        from exchangelib.properties import FolderId
        from exchangelib.services import SubscribeToStreaming

        def subscribe() -> list[Any]:
            service = SubscribeToStreaming(account=self.connection.account)
            return list(service.call(folders=[FolderId(id=self.folder_id)], event_types=_EVENTS))

        try:
            found = Caller(max_retries=0)("Subscribe", subscribe)
        except ProviderError:
            self.connection.close()
            raise
        if not found or isinstance(found[0], BaseException):
            self.connection.close()
            raise ProviderError(f"could not subscribe to {self.folder_id}: {found}")
        self.subscription = str(found[0])
        self._stream = self._events()
        return self._stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from exchangelib.services import Unsubscribe

        if isinstance(self._stream, Generator):
            self._stream.close()  # gives the open stream's session back
        self._stream = None
        if self.subscription is not None:
            try:
                Unsubscribe(account=self.connection.account).get(subscription_id=self.subscription)
            except Exception as failure:  # best effort: it expires on its own
                log.info("unsubscribing %s failed: %r", self.subscription, failure)
            self.subscription = None
        self.connection.close()

    def _events(self) -> Iterator[None]:
        from exchangelib.services import GetStreamingEvents

        while self.subscription is not None:
            try:
                service = GetStreamingEvents(account=self.connection.account)
                for notification in service.call(
                    subscription_ids=[self.subscription], connection_timeout=self.minutes
                ):
                    events = getattr(notification, "events", None) or []
                    if any(type(e).__name__ != "StatusEvent" for e in events):
                        yield None
            except Exception as exc:  # expired subscription, lost connection
                log.info("streaming notifications for %s ended: %r", self.folder_id, exc)
                return
