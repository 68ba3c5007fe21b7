"""What every reference store shares: batch validation, visibility in the
read path, thread summaries, keyset page tokens and blocklist entries.

All functions here are pure; the stores only fetch rows and call them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timezone

import attrs

from ..addresses import normalise_entry
from ..calendar.recurrence import expand_all
from ..errors import InvalidInput
from ..model import Attachment, Direction, Event, Participant, Visibility
from ..records import (
    EventSummary,
    MessageRecord,
    MessageView,
    Page,
    PageRequest,
    SyncBatch,
    ThreadSummary,
    Viewer,
    Window,
)

__all__ = [
    "FIRST_PAGE",
    "MAX_STORED_WARNINGS",
    "MAX_SUMMARY_PARTICIPANTS",
    "MAX_SUMMARY_MESSAGES",
    "MAX_WARNING_CHARS",
    "EventKey",
    "StoredMessage",
    "ThreadTotals",
    "effective_visibility",
    "entry_matcher",
    "event_summary",
    "is_aware",
    "merged_records",
    "message_after",
    "message_token",
    "message_view",
    "page_messages",
    "page_events",
    "parse_entries",
    "require_aware",
    "resolve_threads",
    "select_occurrences",
    "shown_warnings",
    "stored_warnings",
    "summarise_thread",
    "thread_after",
    "thread_token",
    "validate_batch",
    "validate_links",
    "validate_page",
]

#: The default page request (a module constant: defaults must not be calls).
FIRST_PAGE = PageRequest()


@attrs.frozen(slots=True)
class StoredMessage:
    """A message as the read path needs it: one channel's copy of its content
    (see ``stores.copies``) with the logical message's id and thread."""

    message_id: str
    thread_id: str
    date: datetime
    subject: str = ""
    snippet: str = ""
    body: str | None = None
    attachments: tuple[Attachment, ...] = ()
    participants: tuple[Participant, ...] = ()
    warnings: tuple[str, ...] = ()
    html: str | None = None


#: At most this many warnings are stored with a copy of a message ...
MAX_STORED_WARNINGS = 20
#: ... each cut to this many characters (a warning may echo outsider text).
MAX_WARNING_CHARS = 200


def stored_warnings(warnings: Iterable[str]) -> tuple[str, ...]:
    """What a store keeps of a message's warnings: the first
    ``MAX_STORED_WARNINGS`` distinct ones, each cut to ``MAX_WARNING_CHARS``
    characters (in their order; empty ones dropped)."""
    kept: dict[str, None] = {}
    for warning in warnings:
        text = warning[:MAX_WARNING_CHARS]
        if text:
            kept[text] = None
            if len(kept) == MAX_STORED_WARNINGS:
                break
    return tuple(kept)


def shown_warnings(warnings: Sequence[str], visibility: Visibility) -> tuple[str, ...]:
    """The warnings of a copy as a viewer sees them: all of them at ``FULL``
    (who may read the body may read anything a warning echoes), else only
    each code, the part before its first ``:`` (``too-large:123`` is shown
    as ``too-large``)."""
    if visibility is Visibility.FULL:
        return tuple(warnings)
    return tuple(dict.fromkeys(w.partition(":")[0] for w in warnings))


DAWN = datetime.min.replace(tzinfo=timezone.utc)


def event_version(event: Event) -> tuple[int, datetime]:
    """How recent a copy of an event is: its SEQUENCE, then its last update.

    A channel may carry several copies of one event (a calendar entry and
    invitations); a store keeps the most recent one per channel, whichever
    order they are committed in.
    """
    return event.sequence, event.updated or DAWN


def is_aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


def require_aware(moment: datetime | None, what: str) -> None:
    """Raise ``InvalidInput`` for a naive datetime."""
    if moment is not None and not is_aware(moment):
        raise InvalidInput(f"{what} must be timezone-aware, got {moment!r}")


def _require(value: str, what: str) -> None:
    if not value:
        raise InvalidInput(f"{what} must not be empty")


_EVENT_MOMENTS = ("start", "end", "recurrence_id", "updated")


def _aware_or_none(moment: datetime | None) -> bool:
    return moment is None or is_aware(moment)


def validate_batch(batch: SyncBatch) -> None:
    """Check a batch before anything is written (the channel is checked by the store)."""
    _require(batch.channel_id, "channel_id")
    _require(batch.scope_id, "scope_id")
    record_ids: set[str] = set()
    # (the messages are formatted only for a record that fails: a batch holds hundreds)
    for record in batch.messages:
        msg = record.message
        _require(msg.provider_id, "message provider_id")
        if not (msg.message_id and record.thread_id and _aware_or_none(msg.date)):
            _require(msg.message_id, f"message_id of {msg.provider_id!r}")
            _require(record.thread_id, f"thread_id of {msg.provider_id!r}")
            require_aware(msg.date, f"date of {msg.provider_id!r}")
        if msg.provider_id in record_ids:
            raise InvalidInput(f"provider id {msg.provider_id!r} appears twice in the batch")
        record_ids.add(msg.provider_id)
    event_ids: set[str] = set()
    event_keys: set[tuple[str, str, datetime | None]] = set()
    for event_record in batch.events:
        event = event_record.event
        _require(event.provider_id, "event provider_id")
        if not event.uid:
            _require(event.uid, f"uid of event {event.provider_id!r}")
        moments = (event.start, event.end, event.recurrence_id, event.updated)
        if not all(_aware_or_none(m) for m in moments):
            for moment, what in zip(moments, _EVENT_MOMENTS, strict=True):
                require_aware(moment, f"{what} of event {event.provider_id!r}")
        key = (event.provider_id, event.uid, event.recurrence_id)
        if key in event_keys or event.provider_id in record_ids:
            raise InvalidInput(f"provider id {event.provider_id!r} appears twice in the batch")
        event_keys.add(key)
        event_ids.add(event.provider_id)
    record_ids |= event_ids
    for skip in batch.skipped:
        _require(skip.provider_id, "skip provider_id")
        if not _aware_or_none(skip.date):
            require_aware(skip.date, f"date of skip {skip.provider_id!r}")
        if skip.provider_id in record_ids:
            raise InvalidInput(f"provider id {skip.provider_id!r} appears twice in the batch")
        record_ids.add(skip.provider_id)
    for links in batch.links:
        validate_links(links.key, [link.id for link in links.links])
    for provider_id in (*batch.deleted, *batch.seen):
        _require(provider_id, "deleted/seen provider id")
    for old, new in batch.thread_merges:
        _require(old, "merged thread id")
        _require(new, "merged thread id")


def validate_links(key: str, target_ids: Iterable[str]) -> None:
    _require(key, "address key")
    for target_id in target_ids:
        _require(target_id, f"link target of {key!r}")


def validate_page(page: PageRequest) -> None:
    if page.limit < 1:
        raise InvalidInput(f"page limit must be positive, got {page.limit}")


def effective_visibility(viewer: Viewer, channels: Iterable[tuple[str, Visibility]]) -> Visibility:
    """FULL for the owner of any associated channel, else the most open setting.

    The reference stores no longer use it: what a viewer sees of a shared
    record comes from one copy, chosen by ``stores.copies.choose``.

    ``channels`` holds ``(user_id, visibility)`` of the channels a message or
    event is associated with.
    """
    best = Visibility.METADATA
    for user_id, visibility in channels:
        if user_id == viewer.user_id:
            return Visibility.FULL
        if visibility.rank > best.rank:
            best = visibility
    return best


def _safe_html(html: str | None) -> str | None:
    # the sanitiser (nh3, selectolax) loads only when someone reads HTML
    from ..mime.html import safe_html

    return safe_html(html)


def message_view(
    message: StoredMessage, direction: Direction, visibility: Visibility
) -> MessageView:
    shows_subject = visibility.rank >= Visibility.SUBJECT.rank
    full = visibility is Visibility.FULL
    return MessageView(
        message_id=message.message_id,
        date=message.date,
        direction=direction,
        participants=message.participants,
        visibility=visibility,
        subject=message.subject if shows_subject else None,
        body=message.body if full else None,
        html=_safe_html(message.html) if full and message.html else None,
        attachments=message.attachments if full else (),
        warnings=shown_warnings(message.warnings, visibility),
    )


#: A timeline summarises a longer thread from its newest messages only, so a
#: page costs the same however long its threads grow (notification threads,
#: or an outsider's flood, reach tens of thousands of messages).
MAX_SUMMARY_MESSAGES = 100

#: A timeline summary lists at most this many participants, read from the
#: first this many of each message (From first): an outsider's mail to
#: hundreds of addresses would otherwise fill every page it is on.
MAX_SUMMARY_PARTICIPANTS = 100


@attrs.frozen(slots=True)
class ThreadTotals:
    """What a long thread's summary takes from all its messages: how many
    there are and the earliest date of any copy."""

    count: int
    first_at: datetime


def summarise_thread(
    thread_id: str,
    messages: Sequence[StoredMessage],
    visibility: Sequence[Visibility],
    totals: ThreadTotals | None = None,
) -> ThreadSummary:
    """A thread's summary from its messages (oldest first) and their
    visibility: all of them, or, given the thread's ``totals``, its newest
    ones (``MAX_SUMMARY_MESSAGES``)."""
    seen: set[tuple[str, str]] = set()
    participants: list[Participant] = []
    for message in messages:
        for participant in message.participants[:MAX_SUMMARY_PARTICIPANTS]:
            ident = (participant.address.key or participant.address.raw, participant.role.value)
            if ident not in seen and len(participants) < MAX_SUMMARY_PARTICIPANTS:
                seen.add(ident)
                participants.append(participant)
    subject: str | None = None
    snippet: str | None = None
    for message, vis in zip(reversed(messages), reversed(visibility), strict=True):
        if subject is None and vis.rank >= Visibility.SUBJECT.rank:
            subject = message.subject
        if snippet is None and vis is Visibility.FULL:
            snippet = message.snippet
    return ThreadSummary(
        thread_id=thread_id,
        participants=tuple(participants),
        first_at=messages[0].date if totals is None else min(totals.first_at, messages[0].date),
        last_at=messages[-1].date,
        message_count=len(messages) if totals is None else totals.count,
        visibility=max(visibility, key=lambda v: v.rank),
        subject=subject,
        snippet=snippet,
    )


def event_summary(event: Event, visibility: Visibility) -> EventSummary:
    shows_title = visibility.rank >= Visibility.SUBJECT.rank
    full = visibility is Visibility.FULL
    return EventSummary(
        uid=event.uid,
        start=event.start,
        end=event.end,
        all_day=event.all_day,
        status=event.status,
        visibility=visibility,
        organizer=event.organizer,
        attendees=event.attendees,
        recurrence_id=event.recurrence_id,
        title=event.title if shows_title else None,
        description=event.description if full else None,
        location=event.location if full else None,
        conference_url=event.conference_url if full else None,
    )


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _encode(parts: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def _decode(token: str, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"not a page token: {token!r}") from exc
    if (
        not isinstance(parts, list)
        or len(parts) != size
        or not all(isinstance(p, str) for p in parts)
    ):
        raise InvalidInput(f"not a page token: {token!r}")
    return parts


def _parse_time(text: str, token: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"not a page token: {token!r}") from exc
    if not is_aware(moment):
        raise InvalidInput(f"not a page token: {token!r}")
    return moment


def thread_token(last_at: datetime, thread_id: str) -> str:
    """The opaque keyset token after a timeline row."""
    return _encode([_utc(last_at), thread_id])


def thread_after(token: str) -> tuple[datetime, str]:
    """Decode a timeline token into ``(last_at, thread_id)``."""
    last_at, thread_id = _decode(token, 2)
    return _parse_time(last_at, token), thread_id


def message_token(date: datetime, message_id: str) -> str:
    """The opaque keyset token after a message of a thread view."""
    return _encode([_utc(date), message_id])


def message_after(token: str) -> tuple[datetime, str]:
    """Decode a thread view token into ``(date, message_id)``."""
    date, message_id = _decode(token, 2)
    return _parse_time(date, token), message_id


def page_messages(
    views: Sequence[MessageView], page: PageRequest | None
) -> tuple[tuple[MessageView, ...], str | None]:
    """One page of a thread's message views (oldest first, by date then
    Message-ID) and the token after it; every view and ``None`` without a page.

    For a store that reads a whole thread anyway (the reference SQL store
    reads one page in SQL instead).
    """
    if page is None:
        return tuple(views), None
    validate_page(page)
    start = 0
    if page.after is not None:
        after = message_after(page.after)
        start = len(views)
        for i, view in enumerate(views):
            if (view.date, view.message_id) > after:
                start = i
                break
    items = tuple(views[start : start + page.limit])
    more = start + page.limit < len(views)
    token = message_token(items[-1].date, items[-1].message_id) if more and items else None
    return items, token


def _event_key(summary: EventSummary) -> tuple[datetime, str, datetime]:
    return (summary.start, summary.uid, summary.recurrence_id or summary.start)


def page_events(summaries: Iterable[EventSummary], page: PageRequest) -> Page[EventSummary]:
    """Sort occurrences by start and cut one keyset page out of them."""
    validate_page(page)
    ordered = sorted(summaries, key=_event_key)
    if page.after is not None:
        start, uid, rid = _decode(page.after, 3)
        after = (_parse_time(start, page.after), uid, _parse_time(rid, page.after))
        ordered = [s for s in ordered if _event_key(s) > after]
    items = ordered[: page.limit]
    more = len(ordered) > page.limit
    last = items[-1] if items else None
    token = None
    if more and last is not None:
        token = _encode([_utc(last.start), last.uid, _utc(last.recurrence_id or last.start)])
    return Page(items=tuple(items), next=token)


def parse_entries(entries: Collection[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Split blocklist entries into exact address keys and ``@domain`` domains,
    normalised like address keys (invalid entries match nothing)."""
    keys: set[str] = set()
    domains: set[str] = set()
    for entry in entries:
        text = normalise_entry(entry)
        if text.startswith("@"):
            domains.add(text[1:])
        elif text:
            keys.add(text)
    return frozenset(keys), frozenset(domains)


def entry_matcher(entries: Collection[str]) -> Callable[[str], bool]:
    """A predicate on address keys: exact entries, or a domain and its subdomains."""
    keys, domains = parse_entries(entries)

    def matches(key: str) -> bool:
        if not key:
            return False
        if key in keys:
            return True
        domain = key.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in domains)

    return matches


def resolve_threads(
    own: Mapping[str, str], referencing: Iterable[tuple[str, datetime, str, str]]
) -> dict[str, str]:
    """Thread ids for Message-IDs: a stored message's own thread wins; otherwise
    the thread of the oldest stored message referencing the id.

    ``referencing`` holds ``(referenced_id, date, message_id, thread_id)``.
    """
    found = dict(own)
    for ref_id, _date, _mid, thread_id in sorted(referencing, key=lambda r: (r[1], r[2])):
        found.setdefault(ref_id, thread_id)
    return found


EventKey = tuple[str, "datetime | None"]


def select_occurrences(
    events: Mapping[EventKey, Event], linked: Collection[EventKey], window: Window
) -> list[tuple[Event, EventKey]]:
    """Occurrences in ``window`` of the series that have a linked event, each
    with the key of the stored event it comes from (master or override).

    ``events`` must hold every stored event of the linked events' uids.
    """
    by_uid: dict[str, list[Event]] = {}
    for (uid, _rid), event in events.items():
        by_uid.setdefault(uid, []).append(event)
    linked_set = set(linked)
    uids = sorted({uid for uid, _rid in linked_set})
    expanded = expand_all({uid: by_uid.get(uid, []) for uid in uids}, window)
    found: list[tuple[Event, EventKey]] = []
    for uid in uids:
        for occurrence in expanded[uid]:
            key: EventKey = (uid, occurrence.recurrence_id)
            if key not in events:
                key = (uid, None)
            if key in linked_set:
                found.append((occurrence, key))
    return found


def merged_records(records: Iterable[MessageRecord]) -> dict[str, MessageRecord]:
    """One record per Message-ID: the last wins, but a known body is never lost."""
    merged: dict[str, MessageRecord] = {}
    for record in records:
        previous = merged.get(record.message.message_id)
        if previous is not None and record.message.body is None:
            kept = previous.message
            message = attrs.evolve(record.message, body=kept.body, html=kept.html)
            record = attrs.evolve(record, message=message)
        merged[record.message.message_id] = record
    return merged
