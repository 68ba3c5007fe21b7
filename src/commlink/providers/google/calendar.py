"""Google Calendar through the Calendar REST API (google-api-python-client).

Each selected calendar is a scope. A series master and its exceptions
(instances with ``recurringEventId``) share one provider id, the master's
id, so a ``FetchedEvent`` carries the series with its overrides. A full
listing is read once per scope (``singleEvents=false``, ``showDeleted``)
up to its ``nextSyncToken``, which is the cursor; changes come from
``events.list(syncToken=...)`` and an expired token (410) raises
``CursorExpired``. Events not in hand are fetched in batch requests.

Push: the provider is a ``PushSource`` with one resource per calendar.
``subscribe`` opens a notification channel (``events.watch``) to
``push_url`` with a fresh id and a random token kept as the
subscription's secret; channels cannot be extended, so renewing opens a
new one and stops the old (``channels.stop``). ``CalendarPushEndpoint``
(``commlink.providers.google.push``) receives the messages.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import attrs

from ...addresses import parse_address
from ...calendar.links import find_meeting_link, https_url
from ...calendar.storable import cap_text
from ...calendar.zones import iana_zone
from ...closing import Closing
from ...credentials import Secret
from ...errors import ConfigError, NotFound, ProviderError
from ...mime.text import html_to_text
from ...model import Attendee, Event, EventStatus, Folder, FolderKind, ResponseStatus
from ...ports import ChangeSet, FetchedEvent, IdPage, Scope
from ...records import PushSubscription
from .client import Call, GoogleClient, QuotaBucket, build_service, check_endpoint

__all__ = ["GoogleCalendarProvider", "map_event"]

READONLY_SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
JSON = Mapping[str, Any]
PROVIDER = "google-calendar"

log = logging.getLogger("commlink.providers.google.calendar")

_STATUS = {
    "needsAction": ResponseStatus.NEEDS_ACTION,
    "accepted": ResponseStatus.ACCEPTED,
    "declined": ResponseStatus.DECLINED,
    "tentative": ResponseStatus.TENTATIVE,
}
_EVENT_STATUS = {
    "confirmed": EventStatus.CONFIRMED,
    "tentative": EventStatus.TENTATIVE,
    "cancelled": EventStatus.CANCELLED,
}
_UTC = timezone.utc
# What a metadata-only channel reads of an event (Google's partial response):
# no description, location, conference data or attachments leave Google.
_METADATA_ITEM = (
    "id,iCalUID,status,summary,start,end,originalStartTime,recurringEventId,"
    "recurrence,organizer,attendees,sequence,updated"
)
_METADATA_FIELDS = {"fields": f"items({_METADATA_ITEM}),nextPageToken,nextSyncToken,timeZone"}
_INHERITED = ("summary", "description", "location", "organizer", "attendees", "iCalUID")


@attrs.define
class _Listing:
    """What is known of a calendar: items by group (master) id."""

    groups: dict[str, dict[str, JSON]] = attrs.field(factory=dict)
    complete: set[str] = attrs.field(factory=set)
    time_zone: str = ""


def _group_id(item: JSON) -> str:
    return str(item.get("recurringEventId") or item["id"])


def _is_master_gone(item: JSON) -> bool:
    return item.get("status") == "cancelled" and not item.get("recurringEventId")


class GoogleCalendarProvider(Closing):
    """The calendars of a Google account; ``credentials`` are google-auth
    credentials. ``api_endpoint`` replaces Calendar's service path, so point
    it at ``BASE/calendar/v3/`` for another server. ``push_url`` is the
    host's https endpoint for channel messages; ``channel_ttl`` asks for a
    channel lifetime (``params.ttl``; Google's default otherwise).
    ``metadata_only`` (for ``METADATA`` channels) asks Google for the fields
    such a channel keeps only: descriptions, locations and conference data
    are never downloaded."""

    def __init__(
        self,
        credentials: Any,
        *,
        api_endpoint: str | None = None,
        quota_units_per_minute: int | None = None,
        http: Any = None,
        page_size: int = 500,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        push_url: str | None = None,
        channel_ttl: timedelta | None = None,
        metadata_only: bool = False,
    ) -> None:
        self._fields = _METADATA_FIELDS if metadata_only else {}
        if push_url:
            check_endpoint(push_url, "push_url")
        self.push_url = push_url
        self.channel_ttl = channel_ttl
        self.page_size = max(1, page_size)
        self.service = build_service("calendar", "v3", credentials, api_endpoint, http)
        parts = urlsplit(api_endpoint or "https://www.googleapis.com/calendar/v3/")
        self.bucket = QuotaBucket(quota_units_per_minute, sleep=sleep)
        self.client = GoogleClient(
            f"{parts.scheme}://{parts.netloc}/batch/calendar/v3",
            self.bucket,
            max_retries=max_retries,
            base_delay=base_delay,
            max_wait=max_wait,
            sleep=sleep,
        )
        self._listings: dict[str, _Listing] = {}

    @classmethod
    def from_service_account(
        cls, info: Mapping[str, Any], subject: str, **kwargs: Any
    ) -> GoogleCalendarProvider:
        """A provider for ``subject``'s calendars through a service account
        with domain-wide delegation."""
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info), scopes=[READONLY_SCOPE], subject=subject
        )
        return cls(credentials, **kwargs)

    # -- CalendarProvider -----------------------------------------------------

    def calendars(self) -> Sequence[Folder]:
        """Every calendar in the user's list (selection is the host's)."""
        found: list[Folder] = []
        page: str | None = None
        while True:
            request = self.service.calendarList().list(pageToken=page, maxResults=250)
            result = self.client.execute(request, 1)
            for item in result.get("items", []):
                name = str(item.get("summaryOverride") or item.get("summary") or item["id"])
                found.append(Folder(str(item["id"]), name, FolderKind.CALENDAR))
            page = result.get("nextPageToken")
            if not page:
                return found

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return [Scope(c.id, c) for c in calendars if c.kind is FolderKind.CALENDAR]

    def snapshot(self, scope: Scope) -> str:
        """Reads the whole calendar up to its ``nextSyncToken``."""
        listing = _Listing()
        token = ""
        for result in self._pages(scope.id, showDeleted=True, singleEvents=False, **self._fields):
            listing.time_zone = str(result.get("timeZone") or listing.time_zone)
            for item in result.get("items", []):
                if not _is_master_gone(item):
                    listing.groups.setdefault(_group_id(item), {})[str(item["id"])] = item
            token = str(result.get("nextSyncToken") or token)
        listing.complete = set(listing.groups)
        self._listings[scope.id] = listing
        return token

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Group ids in order; ``page`` is the last id of the previous page."""
        listing = self._listings.get(scope.id)
        if listing is None or len(listing.complete) != len(listing.groups):
            self.snapshot(scope)
            listing = self._listings[scope.id]
        keys = sorted(listing.groups)
        if page:
            keys = [k for k in keys if k > page]
        chunk = tuple(keys[: self.page_size])
        return IdPage(chunk, chunk[-1] if len(keys) > self.page_size else None)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """Changes since a sync token; 410 raises ``CursorExpired``."""
        listing = self._listings.setdefault(scope.id, _Listing())
        upserted: dict[str, None] = {}
        deleted: dict[str, None] = {}
        token = cursor
        for result in self._pages(scope.id, syncToken=cursor, showDeleted=True, **self._fields):
            listing.time_zone = str(result.get("timeZone") or listing.time_zone)
            for item in result.get("items", []):
                group = _group_id(item)
                if _is_master_gone(item):
                    listing.groups.pop(group, None)
                    listing.complete.discard(group)
                    upserted.pop(group, None)
                    deleted[group] = None
                    continue
                known = group in listing.groups
                listing.groups.setdefault(group, {})[str(item["id"])] = item
                if not known and not item.get("recurringEventId"):
                    listing.complete.add(group)  # a new master: nothing else to it yet
                deleted.pop(group, None)
                upserted[group] = None
            token = str(result.get("nextSyncToken") or token)
        return ChangeSet(tuple(upserted), tuple(deleted), token)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        """Series with their overrides, from what listing and changes read;
        anything else is read with batched ``events.get`` / ``iCalUID`` calls."""
        listing = self._listings.setdefault(scope.id, _Listing())
        wanted = list(dict.fromkeys(ids))
        missing = [i for i in wanted if i not in listing.complete]
        gone = self._complete(scope.id, listing, missing)
        for group in wanted:
            if group in gone:
                yield FetchedEvent(group)
                continue
            items = listing.groups.get(group, {})
            yield _fetched(group, list(items.values()), scope.id, listing.time_zone)

    def close(self) -> None:
        close = getattr(self.service, "close", None)
        if close is not None:
            close()

    # -- PushSource -----------------------------------------------------------

    def push_resources(self, scopes: Sequence[Scope]) -> Sequence[str]:
        """One resource per calendar: its id."""
        return [s.id for s in scopes]

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        """Open a channel on a calendar's events; when renewing, the old
        channel is stopped once the new one exists (no gap)."""
        if not self.push_url:
            raise ConfigError("Calendar push needs the host's push_url", field="push_url")
        token = secrets.token_urlsafe(32)
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": "web_hook",
            "address": self.push_url,
            "token": token,
        }
        if self.channel_ttl is not None:
            body["params"] = {"ttl": str(max(1, int(self.channel_ttl.total_seconds())))}
        request = self.service.events().watch(calendarId=resource, body=body)
        found = self.client.execute(request, 1)
        expires = _millis(found.get("expiration"))
        if expires is None or not found.get("resourceId"):
            raise ProviderError("Calendar answered a watch without expiration or resourceId")
        made = PushSubscription(
            id=str(found.get("id") or body["id"]),
            channel_id=channel_id,
            provider=PROVIDER,
            resource=resource,
            expires_at=expires,
            secret=Secret(token),
            data={"resourceId": str(found["resourceId"]), "calendarId": resource},
        )
        if current is not None and current.id != made.id:
            try:
                self.unsubscribe(current)
            except ProviderError as exc:  # it expires by itself; its messages get 404
                log.warning("could not stop channel %s: %s", current.id, type(exc).__name__)
        return made

    def unsubscribe(self, subscription: PushSubscription) -> None:
        """Stop the channel (``channels.stop``); one already gone is fine."""
        self.stop_channel(subscription.id, subscription.data.get("resourceId", ""))

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """Stop a channel by its id and resource id (404 tolerated)."""
        request = self.service.channels().stop(body={"id": channel_id, "resourceId": resource_id})
        with suppress(NotFound):
            self.client.execute(request, 1)

    # -- helpers --------------------------------------------------------------

    def _pages(self, calendar_id: str, **params: Any) -> Iterator[JSON]:
        page: str | None = None
        while True:
            request = self.service.events().list(
                calendarId=calendar_id, maxResults=2500, pageToken=page, **params
            )
            result: JSON = self.client.execute(request, 1)
            yield result
            page = result.get("nextPageToken")
            if not page:
                return

    def _complete(self, calendar_id: str, listing: _Listing, groups: Sequence[str]) -> set[str]:
        """Read the groups not fully in hand; returns those that are gone."""
        gone: set[str] = set()
        events = self.service.events()
        unknown = [g for g in groups if not listing.groups.get(g)]
        one = {"fields": _METADATA_ITEM} if self._fields else {}
        calls = [Call(g, events.get(calendarId=calendar_id, eventId=g, **one), 1) for g in unknown]
        for key, result in self.client.batch(calls):
            group = str(key)
            if isinstance(result, NotFound):
                gone.add(group)
            elif isinstance(result, ProviderError):
                raise result
            elif _is_master_gone(result):
                gone.add(group)
            else:
                listing.groups[group] = {str(result["id"]): result}
        uids: dict[str, str] = {}
        for group in groups:
            items = listing.groups.get(group, {})
            uid = next((str(i["iCalUID"]) for i in items.values() if i.get("iCalUID")), "")
            master = items.get(group, {})
            if group in gone or not uid:
                continue
            if master and not master.get("recurrence"):
                listing.complete.add(group)  # a single event has no overrides
            else:
                uids[group] = uid
        calls = [
            Call(
                g,
                events.list(calendarId=calendar_id, iCalUID=u, showDeleted=True, **self._fields),
                1,
            )
            for g, u in uids.items()
        ]
        for key, result in self.client.batch(calls):
            if isinstance(result, ProviderError):
                raise result
            group = str(key)
            for item in result.get("items", []):
                if _group_id(item) == group:
                    listing.groups.setdefault(group, {})[str(item["id"])] = item
            listing.complete.add(group)
        return gone


def _fetched(group: str, items: Sequence[JSON], calendar_id: str, zone: str) -> FetchedEvent:
    if not items:
        return FetchedEvent(group)
    events: list[Event] = []
    problems: list[str] = []
    master = next((i for i in items if str(i.get("id")) == group), None)
    for item in items:
        if master is not None and item is not master and item.get("status") == "cancelled":
            # Calendar sends a cancelled instance as a bare stub: it is the series' instance
            item = {**{k: master[k] for k in _INHERITED if k in master}, **item}
        try:
            events.append(map_event(item, group, calendar_id, zone))
        except ValueError as exc:
            problems.append(f"{item.get('id')}: {exc}")
    if not events:
        return FetchedEvent(group, error="; ".join(problems)[:500] or "no readable event")
    if problems:  # an unreadable override: keep the rest, say what was dropped
        notes = tuple(f"dropped-override:{p}"[:200] for p in problems)
        events = [attrs.evolve(e, warnings=e.warnings + notes) for e in events]
    events.sort(key=lambda e: (e.recurrence_id is not None, e.recurrence_id or e.start))
    return FetchedEvent(group, tuple(events))


# -- mapping -----------------------------------------------------------------


def _millis(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=_UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _parse_stamp(text: str) -> datetime:
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _moment(
    value: JSON | None, default_zone: str, warnings: list[str]
) -> tuple[datetime, bool, str]:
    """(UTC instant, all day, zone name) of a Calendar start/end/originalStartTime."""
    if not value:
        raise ValueError("no time")
    if value.get("date") and not value.get("dateTime"):
        day = date.fromisoformat(str(value["date"]))
        return datetime(day.year, day.month, day.day, tzinfo=_UTC), True, ""
    stamp = _parse_stamp(str(value.get("dateTime", "")))
    name = str(value.get("timeZone") or "")
    zone = iana_zone(name) if name else None
    if name and zone is None:
        warnings.append(f"unknown-timezone:{name}"[:100])
        name = ""
    if stamp.tzinfo is None:
        if zone is None and default_zone:
            zone = iana_zone(default_zone)
            name = default_zone if zone is not None else ""
        if zone is None:
            warnings.append("floating-time-as-utc")
        stamp = stamp.replace(tzinfo=zone or _UTC)
    return stamp.astimezone(_UTC), False, name


def _person(value: JSON, *, organizer: bool = False) -> Attendee:
    address = parse_address(str(value.get("email", "")), str(value.get("displayName", "")))
    status = _STATUS.get(str(value.get("responseStatus", "")), ResponseStatus.NEEDS_ACTION)
    if organizer and "responseStatus" not in value:
        status = ResponseStatus.ACCEPTED
    return Attendee(
        address,
        status=status,
        organizer=organizer or bool(value.get("organizer")),
        optional=bool(value.get("optional")),
    )


def _conference(item: JSON, description: str) -> str:
    """The video entry point, else the Meet link, else a meeting link in the
    location or description: only ``https:`` links (never ``javascript:``)."""
    data = item.get("conferenceData")
    points = data.get("entryPoints") if isinstance(data, Mapping) else None
    for point in points if isinstance(points, list) else []:
        if isinstance(point, Mapping) and point.get("entryPointType") == "video":
            found = https_url(point.get("uri"))
            if found:
                return found
    found = https_url(item.get("hangoutLink"))
    if found:
        return found
    return https_url(find_meeting_link([str(item.get("location") or ""), description]))


_MARKUP = re.compile(r"<[a-zA-Z/!]|&(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]+|#x[0-9a-fA-F]+);")


def _description(value: object) -> str:
    """Google sends descriptions as HTML (the web UI's editor) or plain text:
    markup becomes plain text (``html_to_text``), capped at
    ``MAX_DESCRIPTION_BYTES`` of UTF-8 as descriptions from iCalendar are."""
    text = str(value or "")
    if _MARKUP.search(text):
        text = html_to_text(text)
    return cap_text(text)[0]


def map_event(item: JSON, provider_id: str, calendar_id: str, default_zone: str = "") -> Event:
    """A Calendar API event resource as an ``Event``; raises ``ValueError``
    when it has no usable start. Repairs (unknown zones, an end before the
    start) are recorded in ``warnings``."""
    warnings: list[str] = []
    start_value = item.get("start")
    if not start_value and item.get("status") == "cancelled":
        start_value = item.get("originalStartTime")  # a cancelled instance's stub
    start, all_day, zone = _moment(start_value, default_zone, warnings)
    try:
        end = _moment(item.get("end") or start_value, default_zone, warnings)[0]
    except ValueError:
        end = start + (timedelta(days=1) if all_day else timedelta())
        warnings.append("missing-end")
    if end < start:
        warnings.append("end-before-start")
        end = start
    recurrence_id = None
    if item.get("recurringEventId") and item.get("originalStartTime"):
        recurrence_id = _moment(item.get("originalStartTime"), default_zone, warnings)[0]
    organizer = _person(item["organizer"], organizer=True) if item.get("organizer") else None
    attendees = tuple(
        _person(a)
        for a in item.get("attendees", []) or []
        if a.get("email") and not a.get("resource")
    )
    updated = None
    if item.get("updated"):
        try:
            updated = _parse_stamp(str(item["updated"]))
        except ValueError:
            warnings.append("invalid-updated")
    try:
        sequence = max(0, int(item.get("sequence") or 0))
    except (TypeError, ValueError):
        sequence = 0
        warnings.append("invalid-sequence")
    description = _description(item.get("description"))
    return Event(
        provider_id=provider_id,
        uid=str(item.get("iCalUID") or f"{provider_id}@google.com"),
        start=start,
        end=end,
        title=str(item.get("summary") or ""),
        description=description,
        location=str(item.get("location") or ""),
        all_day=all_day,
        timezone=zone,
        recurrence_id=recurrence_id,
        recurrence=tuple(str(r) for r in item.get("recurrence", []) or [] if r),
        status=_EVENT_STATUS.get(str(item.get("status")), EventStatus.CONFIRMED),
        organizer=organizer,
        attendees=attendees,
        conference_url=_conference(item, description),
        calendar_id=calendar_id,
        sequence=sequence,
        updated=updated,
        warnings=tuple(warnings),
    )
