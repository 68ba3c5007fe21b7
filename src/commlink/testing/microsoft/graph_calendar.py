"""The calendar side of the local Graph server: calendars, events and
``calendarView/delta`` over a window.

Events are stored as Graph ``event`` resources (single instances: series
are not expanded here). A cancelled meeting keeps its event with
``isCancelled``; deleting it reports ``@removed``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from .graph_delta import JSON, DeltaLog, GraphError, new_id, serve_delta

__all__ = ["CalendarBackend"]

_DEFAULT_PAGE = 10


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _instant(value: Any) -> datetime:
    """A Graph ``dateTimeTimeZone`` (or ISO text) as an aware UTC instant;
    the server keeps event times in UTC."""
    text = str(value.get("dateTime") if isinstance(value, Mapping) else value or "")
    text = text.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidRequest", f"bad time {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@attrs.define
class StoredCalendar:
    id: str
    name: str
    events: dict[str, JSON] = attrs.field(factory=dict)


class CalendarBackend:
    """The calendars of the server's mailbox."""

    def __init__(self, lock: threading.RLock, log: DeltaLog) -> None:
        self._lock = lock
        self.log = log
        self.calendars: dict[str, StoredCalendar] = {}
        self.default = self.add_calendar("Calendar")

    def add_calendar(self, name: str) -> str:
        with self._lock:
            calendar = StoredCalendar(new_id("AAMkAGcal"), name)
            self.calendars[calendar.id] = calendar
            return calendar.id

    def calendar(self, calendar_id: str) -> StoredCalendar:
        with self._lock:
            found = self.calendars.get(calendar_id)
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", f"no calendar {calendar_id}")
        return found

    def add_event(self, calendar_id: str, event: Mapping[str, Any]) -> str:
        """Store an event resource (``id``, ``iCalUId`` and the modification
        time are filled in); returns its id."""
        with self._lock:
            calendar = self.calendar(calendar_id)
            event_id = new_id("AAMkAGevt")
            stored: JSON = {
                "iCalUId": f"040000008200E00074C5B7101A82E008{event_id[-16:]}",
                "type": "singleInstance",
                "isCancelled": False,
                "isAllDay": False,
                **event,
                "id": event_id,
                "lastModifiedDateTime": _now(),
            }
            calendar.events[event_id] = stored
            self.log.changed(calendar.id, event_id, "created")
            return event_id

    def update_event(self, calendar_id: str, event_id: str, **props: Any) -> None:
        with self._lock:
            event = self._event(calendar_id, event_id)
            event.update(props)
            event["lastModifiedDateTime"] = _now()
            self.log.changed(calendar_id, event_id)

    def cancel_event(self, calendar_id: str, event_id: str) -> None:
        """The organizer cancelled the meeting: it stays, marked cancelled."""
        with self._lock:
            subject = str(self._event(calendar_id, event_id).get("subject") or "")
            self.update_event(
                calendar_id, event_id, isCancelled=True, subject=f"Canceled: {subject}"
            )

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self._lock:
            self._event(calendar_id, event_id)
            del self.calendars[calendar_id].events[event_id]
            self.log.removed(calendar_id, event_id, (event_id, event_id))

    def find_event(self, calendar_id: str, uid: str) -> str:
        with self._lock:
            for event_id, event in self.calendar(calendar_id).events.items():
                if event.get("iCalUId") == uid:
                    return event_id
        raise KeyError(uid)

    def get(self, event_id: str) -> JSON:
        with self._lock:
            for calendar in self.calendars.values():
                if event_id in calendar.events:
                    return dict(calendar.events[event_id])
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found.")

    def _event(self, calendar_id: str, event_id: str) -> JSON:
        event = self.calendar(calendar_id).events.get(event_id)
        if event is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found.")
        return event

    # -- answering ------------------------------------------------------------

    def list(self) -> list[JSON]:
        with self._lock:
            return [
                {"id": c.id, "name": c.name, "isDefaultCalendar": c.id == self.default}
                for c in self.calendars.values()
            ]

    def delta(
        self, calendar_id: str, query: Mapping[str, str], page_size: int | None, link_base: str
    ) -> JSON:
        calendar = self.calendar(calendar_id)
        state: JSON = {}
        if "$skiptoken" not in query and "$deltatoken" not in query:
            if not query.get("startDateTime") or not query.get("endDateTime"):
                raise GraphError(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string "
                    "parameters StartDateTime and EndDateTime.",
                )
            state = {
                "start": _instant(query["startDateTime"]).isoformat(),
                "end": _instant(query["endDateTime"]).isoformat(),
            }

        def inside(event: JSON, window: JSON) -> bool:
            start, end = _instant(event.get("start")), _instant(event.get("end"))
            return start < datetime.fromisoformat(window["end"]) and end >= datetime.fromisoformat(
                window["start"]
            )

        def initial() -> list[JSON]:
            with self._lock:
                return [dict(e) for e in calendar.events.values() if inside(e, state)]

        def incremental(position: int, window: JSON) -> list[JSON]:
            entries: list[JSON] = []
            for key, _ in self.log.since(calendar.id, position):
                with self._lock:
                    event = calendar.events.get(key)
                if event is not None and inside(event, window):
                    entries.append(dict(event))
                else:
                    entries.append({"id": key, "@removed": {"reason": "deleted"}})
            return entries

        return serve_delta(
            self.log,
            calendar.id,
            query,
            page_size or _DEFAULT_PAGE,
            link_base,
            initial,
            incremental,
            state,
        )
