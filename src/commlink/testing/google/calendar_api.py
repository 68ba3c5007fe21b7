"""The Google Calendar side of the local Google API server.

Series exceptions are stored as their own events with ``recurringEventId``
and ``originalStartTime``, as Calendar returns them with
``singleEvents=false``. Deleting an event turns it into a cancelled stub,
which sync-token listings report. With ``channels`` set, ``events.watch``
opens notification channels and every change tells them (see
``channels``).
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from .channels import WatchChannels
from .errors import ApiError

__all__ = ["CalendarBackend"]

JSON = dict[str, Any]


@attrs.define
class _Calendar:
    id: str
    owner: str
    summary: str
    primary: bool
    time_zone: str
    events: dict[str, JSON] = attrs.field(factory=dict)
    seqs: dict[str, int] = attrs.field(factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CalendarBackend:
    """Calendars by id, with a Python API to seed and mutate them."""

    def __init__(self, lock: threading.RLock, channels: WatchChannels | None = None) -> None:
        self._lock = lock
        self.channels = channels
        self._calendars: dict[str, _Calendar] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._epoch = 1

    # -- Python API -----------------------------------------------------------

    def add_calendar(
        self,
        user: str,
        calendar_id: str,
        summary: str = "",
        *,
        primary: bool = False,
        time_zone: str = "UTC",
    ) -> str:
        with self._lock:
            self._calendars[calendar_id] = _Calendar(
                calendar_id, user, summary or calendar_id, primary, time_zone
            )
            return calendar_id

    def add_event(self, calendar_id: str, resource: Mapping[str, Any]) -> str:
        """Store an event resource (Calendar JSON); returns its id. ``id``,
        ``iCalUID``, ``status``, ``sequence`` and timestamps are filled in."""
        with self._lock:
            calendar = self._calendar(calendar_id)
            event = copy.deepcopy(dict(resource))
            event_id = str(event.get("id") or f"evt{next(self._ids):06d}")
            event.update(id=event_id, kind="calendar#event")
            event.setdefault("iCalUID", f"{event_id}@google.com")
            event.setdefault("status", "confirmed")
            event.setdefault("sequence", 0)
            event.setdefault("created", _now())
            self._touch(calendar, event)
            return event_id

    def add_exception(
        self, calendar_id: str, master_id: str, original_start: str, changes: Mapping[str, Any]
    ) -> str:
        """Override one instance of a series; ``original_start`` is its
        RFC 3339 start. Returns the instance id."""
        with self._lock:
            master = self._calendar(calendar_id).events[master_id]
            stamp = original_start.replace("-", "").replace(":", "")[:15] + "Z"
            event = {
                k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "id")
            }
            event.update(
                id=f"{master_id}_{stamp}",
                recurringEventId=master_id,
                originalStartTime={"dateTime": original_start},
            )
            event.update(copy.deepcopy(dict(changes)))
            return self.add_event(calendar_id, event)

    def update_event(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            calendar = self._calendar(calendar_id)
            event = calendar.events[event_id]
            event.update(copy.deepcopy(dict(changes)))
            event["sequence"] = int(event.get("sequence", 0)) + 1
            self._touch(calendar, event)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete (or cancel) an event: it becomes a cancelled stub."""
        with self._lock:
            calendar = self._calendar(calendar_id)
            old = calendar.events[event_id]
            stub: JSON = {"kind": "calendar#event", "id": event_id, "status": "cancelled"}
            for key in ("recurringEventId", "originalStartTime", "iCalUID"):
                if key in old:
                    stub[key] = old[key]
            self._touch(calendar, stub)

    def find_event(self, calendar_id: str, uid: str) -> str:
        """The id of the series master or single event with this iCalUID."""
        with self._lock:
            for event in self._calendar(calendar_id).events.values():
                if event.get("iCalUID") == uid and "recurringEventId" not in event:
                    return str(event["id"])
            raise KeyError(uid)

    def invalidate_sync_tokens(self) -> None:
        """Every sync token issued so far now answers 410."""
        with self._lock:
            self._epoch += 1

    # -- the API --------------------------------------------------------------

    def handle(
        self,
        user: str,
        method: str,
        parts: Sequence[str],
        query: Mapping[str, list[str]],
        body: Mapping[str, Any] | None = None,
    ) -> tuple[str, JSON | None]:
        """Answer one call; ``parts`` is the path after ``calendar/v3/``
        (``None`` as the JSON: 204 No Content)."""
        with self._lock:
            if method == "POST" and self.channels is not None:
                if list(parts) == ["channels", "stop"]:
                    self.channels.stop(user, body or {})
                    return "calendar.channels.stop", None
                if len(parts) == 4 and parts[0] == "calendars" and parts[2:] == ["events", "watch"]:
                    calendar = self._calendar(parts[1], user)
                    return "calendar.events.watch", self.channels.open(
                        user, calendar.id, body or {}
                    )
            if method == "GET" and list(parts) == ["users", "me", "calendarList"]:
                items = [
                    {
                        "kind": "calendar#calendarListEntry",
                        "id": c.id,
                        "summary": c.summary,
                        "timeZone": c.time_zone,
                        "accessRole": "owner",
                        **({"primary": True} if c.primary else {}),
                    }
                    for c in self._calendars.values()
                    if c.owner == user
                ]
                return "calendar.calendarList.list", {
                    "kind": "calendar#calendarList",
                    "items": items,
                }
            if method == "GET" and len(parts) >= 3 and parts[0] == "calendars":
                calendar = self._calendar(parts[1], user)
                if list(parts[2:]) == ["events"]:
                    return "calendar.events.list", self._list(calendar, query)
                if len(parts) == 4 and parts[2] == "events":
                    event = calendar.events.get(parts[3])
                    if event is None:
                        raise ApiError(404, "notFound", "Not Found")
                    return "calendar.events.get", copy.deepcopy(event)
        raise ApiError(404, "notFound", f"no such method: {method} {'/'.join(parts)}")

    def _list(self, calendar: _Calendar, query: Mapping[str, list[str]]) -> JSON:
        token = _one(query, "syncToken")
        uid = _one(query, "iCalUID")
        show_deleted = _one(query, "showDeleted") == "true"
        single = _one(query, "singleEvents") == "true"
        size = min(max(int(_one(query, "maxResults") or 250), 1), 2500)
        offset = int(_one(query, "pageToken") or 0)
        since = -1
        if token is not None:
            epoch, _, mark = token.partition(":")
            if epoch != str(self._epoch) or not mark.isdigit():
                raise ApiError(
                    410,
                    "fullSyncRequired",
                    "Sync token is no longer valid, a full sync is required.",
                )
            since = int(mark)
        items = []
        for event_id, seq in sorted(calendar.seqs.items(), key=lambda kv: kv[1]):
            event = calendar.events[event_id]
            if seq <= since or (uid is not None and event.get("iCalUID") != uid):
                continue
            cancelled = event.get("status") == "cancelled"
            visible = show_deleted or ("recurringEventId" in event and not single)
            if cancelled and token is None and not visible:
                continue
            items.append(copy.deepcopy(event))
        page = items[offset : offset + size]
        body: JSON = {
            "kind": "calendar#events",
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
            "items": page,
        }
        if offset + size < len(items):
            body["nextPageToken"] = str(offset + size)
        elif uid is None:
            body["nextSyncToken"] = f"{self._epoch}:{max(calendar.seqs.values(), default=0)}"
        return body

    def _calendar(self, calendar_id: str, user: str | None = None) -> _Calendar:
        if calendar_id == "primary" and user is not None:
            for calendar in self._calendars.values():
                if calendar.owner == user and calendar.primary:
                    return calendar
        found = self._calendars.get(calendar_id)
        if found is None or (user is not None and found.owner != user):
            raise ApiError(404, "notFound", "Not Found")
        return found

    def _touch(self, calendar: _Calendar, event: JSON) -> None:
        event["updated"] = _now()
        event["etag"] = f'"{next(self._seq)}"'
        calendar.events[str(event["id"])] = event
        calendar.seqs[str(event["id"])] = int(event["etag"].strip('"'))
        if self.channels is not None:
            self.channels.changed(calendar.id)


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
