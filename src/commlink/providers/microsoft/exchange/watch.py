"""EWS streaming notifications as wake-ups (``watch`` and ``watch_scopes``).

One streaming subscription covers any number of folders (mail folders or
calendars), read over a connection of its own with ``GetStreamingEvents``;
each notification that carries item or folder events yields the folders it
names. When a stream's time is up the next one is opened; when the
subscription is gone (it expires after the server's timeout without a
reader) or the connection fails, the iterator ends and the caller falls
back to polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Sequence
from types import TracebackType
from typing import Any

from ....errors import AuthError, ProviderError, TransientError
from .account import ExchangeConnection
from .errors import Caller

__all__ = ["FolderStreaming", "StreamingWatch"]

log = logging.getLogger("commlink.exchange")

_EVENTS = ("CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent")
_FOLDER_FIELDS = ("parent_folder_id", "old_parent_folder_id", "folder_id", "old_folder_id")


class FolderStreaming:
    """A context manager whose iterator yields the id of each watched folder
    that changed (``""`` for an event naming no watched folder).

    ``minutes`` is each GetStreamingEvents connection's length (EWS allows
    1 to 30); the iterator regains control at least that often. With
    ``quiet_refusal`` a subscription the server refuses (other than for
    credentials or a passing failure) gives an empty iterator instead of
    an error, so the caller keeps polling.
    """

    def __init__(
        self,
        connection: ExchangeConnection,
        folder_ids: Sequence[str],
        *,
        minutes: int = 30,
        quiet_refusal: bool = False,
    ) -> None:
        self.connection = connection.fork()
        self.folder_ids = tuple(dict.fromkeys(folder_ids))
        self.minutes = min(max(int(minutes), 1), 30)
        self.quiet_refusal = quiet_refusal
        self.subscription: str | None = None
        self._stream: Iterator[str] | None = None
        self._cancelled = threading.Event()

    def __enter__(self) -> Iterator[str]:
        from exchangelib.properties import FolderId
        from exchangelib.services import SubscribeToStreaming

        def subscribe() -> list[Any]:
            service = SubscribeToStreaming(account=self.connection.account)
            folders = [FolderId(id=f) for f in self.folder_ids]
            return list(service.call(folders=folders, event_types=_EVENTS))

        try:
            found = Caller(max_retries=0)("Subscribe", subscribe)
            if not found or isinstance(found[0], BaseException):
                raise ProviderError(f"could not subscribe to {len(self.folder_ids)} folder(s)")
        except ProviderError as exc:
            self.connection.close()
            if not self.quiet_refusal or not _refusal(exc):
                raise
            log.info("streaming notifications refused (%s); polling instead", exc)
            self._stream = iter(())
            return self._stream
        self.subscription = str(found[0])
        self._stream = self._events()
        return self._stream

    def cancel(self) -> None:
        """Ask the iterator to end (it does at its next notification or stream)."""
        self._cancelled.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from exchangelib.services import Unsubscribe

        if isinstance(self._stream, Generator):
            try:
                self._stream.close()  # gives the open stream's session back
            except ValueError:  # still being read by another thread: it ends on its own
                log.debug("streaming watch left while being read")
        self._stream = None
        if self.subscription is not None:
            try:
                Unsubscribe(account=self.connection.account).get(subscription_id=self.subscription)
            except Exception as failure:  # best effort: it expires on its own
                log.info("unsubscribing %s failed: %r", self.subscription, failure)
            self.subscription = None
            self.connection.close()

    def _events(self) -> Iterator[str]:
        from exchangelib.services import GetStreamingEvents

        watched = frozenset(self.folder_ids)
        while self.subscription is not None and not self._cancelled.is_set():
            try:
                service = GetStreamingEvents(account=self.connection.account)
                for notification in service.call(
                    subscription_ids=[self.subscription], connection_timeout=self.minutes
                ):
                    yield from _changed_folders(notification, watched)
                    if self._cancelled.is_set():
                        return
            except Exception as exc:  # expired subscription, lost connection
                log.info("streaming notifications ended: %r", exc)
                return


def _changed_folders(notification: Any, watched: frozenset[str]) -> list[str]:
    """The watched folders a notification's events name, in order; ``[""]``
    when it has events but names none of them."""
    events = [e for e in getattr(notification, "events", None) or [] if _counts(e)]
    found: dict[str, None] = {}
    for event in events:
        for field in _FOLDER_FIELDS:
            value = getattr(event, field, None)
            folder_id = getattr(value, "id", None)
            if folder_id in watched:
                found[str(folder_id)] = None
    if events and not found:
        return [""]
    return list(found)


def _refusal(exc: ProviderError) -> bool:
    """Whether the server answered the subscription with an EWS error (it
    will not stream for this mailbox), rather than failing on the way or
    refusing the credentials."""
    from exchangelib.errors import ResponseMessageError

    if isinstance(exc, AuthError):
        return False
    if isinstance(exc, TransientError):
        return isinstance(exc.__cause__, ResponseMessageError)
    return True


def _counts(event: Any) -> bool:
    return type(event).__name__ != "StatusEvent"


class StreamingWatch:
    """One folder's streaming notifications (``ExchangeMailProvider.watch``):
    the iterator yields once for each notification about the folder."""

    def __init__(self, connection: ExchangeConnection, folder_id: str, *, minutes: int = 30):
        self.folder_id = folder_id
        self.streaming = FolderStreaming(connection, [folder_id], minutes=minutes)

    def __enter__(self) -> Iterator[None]:
        events = self.streaming.__enter__()
        return (None for _ in events)

    def cancel(self) -> None:
        self.streaming.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.streaming.__exit__(exc_type, exc, tb)
