"""``ExchangeCalendarProvider``: Exchange Server calendars through EWS.

Scopes are calendar folders: the default calendar and the calendars below
it. Listings and changes work as for mail (``SyncFolderItems``: singles and
recurring masters, never expanded occurrences); items are read with
``GetItem`` and mapped by ``exchange_events.map_calendar_item``. Provider
ids are EWS ItemIds; a series and its overrides share the master's id.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ....closing import Closing
from ....model import Folder, FolderKind
from ....ports import ChangeSet, FetchedEvent, IdPage, Scope
from .account import ExchangeConnection, connect
from .errors import Caller, item_error
from .events import CALENDAR_FIELDS, map_calendar_item
from .sync import FolderSync
from .watch import FolderStreaming

__all__ = ["ExchangeCalendarProvider"]


class ExchangeCalendarProvider(Closing):
    """A ``CalendarProvider`` for the calendars of an Exchange mailbox.

    With ``streaming`` (the default) ``watch_scopes`` holds EWS streaming
    notifications for the calendars, as the mail provider does for folders.
    """

    def __init__(
        self,
        connection: ExchangeConnection,
        *,
        page_size: int = 500,
        fetch_batch: int = 100,
        max_retries: int = 3,
        max_wait: float = 30.0,
        caller: Caller | None = None,
        streaming: bool = True,
        streaming_minutes: int = 30,
    ) -> None:
        self.connection = connection
        self.caller = caller or Caller(max_retries=max_retries, max_wait=max_wait)
        self.sync = FolderSync(connection, self.caller, page_size)
        self.fetch_batch = max(1, fetch_batch)
        self.streaming = streaming
        self.streaming_minutes = streaming_minutes

    @classmethod
    def from_settings(cls, email: str, **settings: Any) -> ExchangeCalendarProvider:
        """As ``ExchangeMailProvider.from_settings``."""
        own = {k: settings.pop(k) for k in list(settings) if k in _OWN_OPTIONS}
        return cls(connect(email, **settings), **own)

    @property
    def requests_sent(self) -> int:
        return self.connection.requests_sent

    def calendars(self) -> Sequence[Folder]:
        """The default calendar (one GetFolder) and the calendars below it
        (one FindFolder, deep)."""
        found = self.sync.distinguished(["calendar"])
        default = found.get("calendar")
        if default is None:
            return []
        result = [FolderSync.as_folder(default, FolderKind.CALENDAR, None)]
        for folder in self.sync.descendants(default):
            if str(folder.folder_class or "").startswith("IPF.Appointment"):
                result.append(FolderSync.as_folder(folder, FolderKind.CALENDAR, None))
        return result

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return [Scope(c.id, c) for c in calendars]

    def snapshot(self, scope: Scope) -> str:
        return self.sync.snapshot(scope)

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        return self.sync.list_page(scope, page)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        return self.sync.changes(scope, cursor)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        from exchangelib.items import CalendarItem

        with warnings.catch_warnings():
            # exchangelib warns about time zone ids it cannot map; the event
            # then carries no zone name
            warnings.simplefilter("ignore")
            found = list(self.sync.get_items(ids, CALENDAR_FIELDS, CalendarItem, self.fetch_batch))
        for item_id, item in found:
            if isinstance(item, BaseException):
                yield FetchedEvent(item_id, error=item_error(item))
                continue
            if type(item).__name__ != "CalendarItem":
                yield FetchedEvent(item_id, error=f"not a calendar item: {type(item).__name__}")
                continue
            try:
                events = map_calendar_item(item, item_id, scope.id)
            except (ValueError, TypeError, AttributeError) as exc:
                yield FetchedEvent(item_id, error=f"unreadable calendar item: {exc}"[:500])
                continue
            yield FetchedEvent(item_id, tuple(events))

    def watch_scopes(self, scopes: Sequence[Scope]) -> AbstractContextManager[Iterator[str]] | None:
        """Streaming notifications for these calendars (a connection of their
        own), yielding the calendar that changed; ``None`` unless ``streaming``."""
        if not self.streaming or not scopes:
            return None
        return FolderStreaming(
            self.connection,
            [s.id for s in scopes],
            minutes=self.streaming_minutes,
            quiet_refusal=True,
        )

    def close(self) -> None:
        self.connection.close()


_OWN_OPTIONS = frozenset(
    {
        "page_size",
        "fetch_batch",
        "max_retries",
        "max_wait",
        "caller",
        "streaming",
        "streaming_minutes",
    }
)
