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

from ....model import Folder, FolderKind
from ....ports import FetchedEvent, Scope
from .errors import item_error
from .events import CALENDAR_FIELDS, map_calendar_item
from .folder_provider import ExchangeFolderProvider
from .sync import FolderSync

__all__ = ["ExchangeCalendarProvider"]


class ExchangeCalendarProvider(ExchangeFolderProvider):
    """A ``CalendarProvider`` for the calendars of an Exchange mailbox (the
    options are those of ``ExchangeFolderProvider``).

    With ``streaming`` (the default) ``watch_scopes`` holds EWS streaming
    notifications for the calendars, as the mail provider does for folders.
    """

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
