"""Outlook calendars through Microsoft Graph v1.0.

Each calendar is a scope synced through ``calendarView/delta`` over a
window (by default a year back and a year ahead of the snapshot): the view
expands series, so every occurrence is its own event with its own id. The
round's ``@odata.deltaLink`` is the cursor; ``@removed`` entries are
deletions, a cancelled meeting (``isCancelled``) is removed too. Events
are mapped to ``commlink.model.Event`` from what the delta read; anything
not in hand is fetched in JSON batches.

Push: a ``PushSource`` with one subscription per selected calendar
(``me/calendars('{id}')/events``: ``me/events`` would cover the default
calendar only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from ....addresses import parse_address
from ....calendar.links import find_meeting_link, https_url
from ....calendar.zones import iana_zone
from ....errors import NotFound, ProviderError
from ....mime.text import html_to_text
from ....model import Attendee, Event, EventStatus, Folder, FolderKind, ResponseStatus
from ....ports import ChangeSet, FetchedEvent, IdPage, Scope
from .client import BatchItem, GraphClient
from .folder_provider import GraphFolderProvider, delta_changes
from .headers import parse_graph_time

__all__ = ["GraphCalendarProvider", "map_event"]

JSON = Mapping[str, Any]
_UTC = timezone.utc

_RESPONSES = {
    "accepted": ResponseStatus.ACCEPTED,
    "organizer": ResponseStatus.ACCEPTED,
    "tentativelyAccepted": ResponseStatus.TENTATIVE,
    "declined": ResponseStatus.DECLINED,
    "notResponded": ResponseStatus.NEEDS_ACTION,
    "none": ResponseStatus.NEEDS_ACTION,
}


def _utcnow() -> datetime:
    return datetime.now(_UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphCalendarProvider(GraphFolderProvider):
    """The calendars of a mailbox through Graph.

    ``past`` and ``future`` set the synced window around the time of the
    snapshot; ``clock`` gives that time. ``push_url`` and
    ``push_lifecycle_url`` are where Graph sends change and lifecycle
    notifications (none: the calendars are not watched).
    """

    PUSH_PROVIDER = "graph-calendar"
    PUSH_FOLDERS = "calendars"
    PUSH_ITEMS = "events"

    def __init__(
        self,
        client: GraphClient,
        *,
        user: str = "me",
        past: timedelta = timedelta(days=365),
        future: timedelta = timedelta(days=365),
        page_size: int = 500,
        clock: Callable[[], datetime] = _utcnow,
        push_url: str | None = None,
        push_lifecycle_url: str | None = None,
        metadata_only: bool = False,
    ) -> None:
        super().__init__(client, user, page_size, push_url, push_lifecycle_url, clock)
        self.metadata_only = metadata_only
        self.past = past
        self.future = future
        self.clock = clock

    # -- CalendarProvider -----------------------------------------------------

    def calendars(self) -> Sequence[Folder]:
        params = {"$select": "id,name", "$top": "250"}
        return [
            Folder(str(item["id"]), str(item.get("name") or item["id"]), FolderKind.CALENDAR)
            for page in self.client.pages(f"{self._root}/calendars", params)
            for item in page.get("value", [])
        ]

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return [Scope(c.id, c) for c in calendars if c.kind is FolderKind.CALENDAR]

    def snapshot(self, scope: Scope) -> str:
        """Reads the calendar view's delta round over the window."""
        now = self.clock()
        params = {
            "startDateTime": _stamp(now - self.past),
            "endDateTime": _stamp(now + self.future),
        }
        path = f"{self._root}/calendars/{quote(scope.id, safe='')}/calendarView/delta"
        items: dict[str, JSON] = {}
        link = ""
        for page in self.client.pages(path, params, self._prefer):
            for item in page.get("value", []):
                if "@removed" in item:
                    items.pop(str(item.get("id")), None)
                else:
                    items[str(item["id"])] = item
            link = str(page.get("@odata.deltaLink") or link)
        link = self._round_link(scope, link)
        self._items[scope.id] = items
        return link

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Event ids in order; ``page`` is the last id of the previous page."""
        if scope.id not in self._items:
            self.snapshot(scope)
        keys = sorted(self._items[scope.id])
        if page:
            keys = [k for k in keys if k > page]
        chunk = tuple(keys[: self.page_size])
        return IdPage(chunk, chunk[-1] if len(keys) > self.page_size else None)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """One page of changes since a delta (or next) link."""
        found = self._delta_page(cursor)
        return delta_changes(found, self._items.setdefault(scope.id, {}))

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        """Events from what the delta read; others in batches of 20."""
        items = self._items.setdefault(scope.id, {})
        wanted = list(dict.fromkeys(ids))
        missing = [i for i in wanted if i not in items]
        select = f"?$select={_METADATA_SELECT}" if self.metadata_only else ""
        calls = [BatchItem(i, f"{self._root}/events/{quote(i, safe='')}{select}") for i in missing]
        gone: set[str] = set()
        failed: dict[str, str] = {}
        for key, result in self.client.batch(calls):
            if isinstance(result, NotFound):
                gone.add(str(key))
            elif isinstance(result, ProviderError):
                failed[str(key)] = f"could not fetch: {result}"[:500]
            else:
                items[str(key)] = result.json
        for item_id in wanted:
            if item_id in failed:
                yield FetchedEvent(item_id, error=failed[item_id])
            elif item_id in gone or item_id not in items:
                yield FetchedEvent(item_id)
            else:
                try:
                    event = map_event(items[item_id], item_id, scope.id)
                except ValueError as exc:
                    yield FetchedEvent(item_id, error=f"unreadable event: {exc}"[:500])
                else:
                    yield FetchedEvent(item_id, (event,))


# -- mapping -----------------------------------------------------------------

# What a metadata-only channel asks for when it reads one event. The delta
# of a calendar view takes no $select, so events listed there arrive whole
# and are minimised before they are stored.
_METADATA_SELECT = (
    "id,iCalUId,subject,start,end,isAllDay,isCancelled,organizer,attendees,type,"
    "originalStartTimeZone,lastModifiedDateTime"
)


def _moment(value: object, all_day: bool, warnings: list[str]) -> tuple[datetime, str]:
    """(UTC instant, zone name) of a Graph ``dateTimeTimeZone``."""
    if not isinstance(value, Mapping) or not value.get("dateTime"):
        raise ValueError("no time")
    stamp = parse_graph_time(value.get("dateTime"))
    if stamp is None:
        raise ValueError(f"unreadable time {str(value.get('dateTime'))[:40]!r}")
    name = str(value.get("timeZone") or "")
    zone = iana_zone(name) if name else None
    if name and zone is None:
        warnings.append(f"unknown-timezone:{name}"[:100])
    if all_day:
        return datetime(stamp.year, stamp.month, stamp.day, tzinfo=_UTC), ""
    if stamp.tzinfo is None:
        if zone is None:
            warnings.append("floating-time-as-utc")
        stamp = stamp.replace(tzinfo=zone or _UTC)
    return stamp.astimezone(_UTC), zone.key if zone is not None else ""


def _attendee(value: JSON, *, organizer: bool = False) -> Attendee | None:
    email = value.get("emailAddress")
    email = email if isinstance(email, Mapping) else {}
    address_text = str(email.get("address") or "").strip()
    if not address_text:
        return None
    status_value = value.get("status")
    response = str(status_value.get("response") or "") if isinstance(status_value, Mapping) else ""
    status = _RESPONSES.get(response, ResponseStatus.NEEDS_ACTION)
    if organizer:
        status = ResponseStatus.ACCEPTED
    return Attendee(
        parse_address(address_text, str(email.get("name") or "")),
        status=status,
        organizer=organizer,
        optional=str(value.get("type") or "") == "optional",
    )


def _text_body(item: JSON) -> str:
    body = item.get("body")
    if not isinstance(body, Mapping):
        return str(item.get("bodyPreview") or "")
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "").lower() == "html":
        return html_to_text(content).strip()
    return content.strip()


def _conference(item: JSON, location: str, description: str) -> str:
    """The online meeting's join URL, else a meeting link in the location or
    description: only ``https:`` links (never ``javascript:``)."""
    meeting = item.get("onlineMeeting")
    if isinstance(meeting, Mapping):
        found = https_url(meeting.get("joinUrl"))
        if found:
            return found
    found = https_url(item.get("onlineMeetingUrl"))
    if found:
        return found
    return https_url(find_meeting_link([location, description]))


def map_event(item: JSON, provider_id: str, calendar_id: str) -> Event:
    """A Graph ``event`` resource as an ``Event``; raises ``ValueError``
    without a usable start. Repairs and dropped attendees (no address)
    are recorded in ``warnings``."""
    warnings: list[str] = []
    all_day = bool(item.get("isAllDay"))
    start, zone = _moment(item.get("start"), all_day, warnings)
    try:
        end = _moment(item.get("end"), all_day, warnings)[0]
    except ValueError:
        end = start + (timedelta(days=1) if all_day else timedelta())
        warnings.append("missing-end")
    if end < start:
        warnings.append("end-before-start")
        end = start
    original = iana_zone(str(item.get("originalStartTimeZone") or ""))
    if original is not None and not all_day:
        zone = original.key  # the organizer's zone, as an IANA name
    organizer_value = item.get("organizer")
    organizer = (
        _attendee(organizer_value, organizer=True) if isinstance(organizer_value, Mapping) else None
    )
    attendees: list[Attendee] = []
    for value in item.get("attendees", []) or []:
        if not isinstance(value, Mapping) or str(value.get("type") or "") == "resource":
            continue
        attendee = _attendee(value)
        if attendee is None:
            email = value.get("emailAddress")
            name = str(email.get("name") or "") if isinstance(email, Mapping) else ""
            warnings.append(f"attendee-without-address:{name}"[:100])
        else:
            attendees.append(attendee)
    location_value = item.get("location")
    location = (
        str(location_value.get("displayName") or "") if isinstance(location_value, Mapping) else ""
    )
    description = _text_body(item)
    updated = parse_graph_time(item.get("lastModifiedDateTime"))
    if updated is not None and updated.tzinfo is None:
        updated = updated.replace(tzinfo=_UTC)
    return Event(
        provider_id=provider_id,
        uid=str(item.get("iCalUId") or f"{provider_id}@graph.microsoft.com"),
        start=start,
        end=end,
        title=str(item.get("subject") or ""),
        description=description,
        location=location,
        all_day=all_day,
        timezone=zone,
        status=EventStatus.CANCELLED if item.get("isCancelled") else EventStatus.CONFIRMED,
        organizer=organizer,
        attendees=tuple(attendees),
        conference_url=_conference(item, location, description),
        calendar_id=calendar_id,
        updated=updated,
        warnings=tuple(warnings),
    )
