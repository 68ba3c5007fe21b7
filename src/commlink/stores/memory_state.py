"""The state of ``MemoryStore`` and its read side (pure functions of a state).

Content is kept per channel (see ``stores.copies``): one logical message per
Message-ID holds only its thread; each channel holding it keeps its own
copy (date, subject, snippet, body, attachments, participants, references,
warnings), and each channel its own copy of every event. A copy goes with
its channel's last association; a logical message with its last copy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

import attrs

from ..model import Attachment, Channel, Direction, Event, Participant, Visibility
from ..policy.visibility import minimise_event
from ..records import (
    ChannelState,
    EventSummary,
    Link,
    MessageRecord,
    Page,
    PageRequest,
    Skip,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from .common import (
    EventKey,
    StoredMessage,
    message_view,
    page_events,
    page_messages,
    resolve_threads,
    stored_warnings,
    summarise_thread,
    thread_after,
    thread_token,
    validate_page,
)
from .copies import (
    Holder,
    Seen,
    holder_of,
    meeting_summaries,
    organizer_key,
    seen_messages,
    summary_messages,
)

__all__ = [
    "AssocKey",
    "EventAssoc",
    "MessageAssoc",
    "MessageCopy",
    "State",
    "collect",
    "copy_of",
    "events_page",
    "forget_unstored_links",
    "linked_keys",
    "minimise_channel",
    "minimise_copy",
    "remove_matching",
    "stored_addresses",
    "thread",
    "thread_links",
    "threads_by_message_ids",
    "timeline",
]

AssocKey = tuple[str, str, str]  # (channel_id, scope_id, provider_id)
CopyKey = tuple[str, str]  # (message_id, channel_id)
EventCopyKey = tuple[str, EventKey]  # (channel_id, (uid, recurrence_id))


@attrs.frozen(slots=True)
class MessageCopy:
    """A channel's copy of a logical message."""

    date: datetime
    subject: str = ""
    snippet: str = ""
    body: str | None = None
    attachments: tuple[Attachment, ...] = ()
    participants: tuple[Participant, ...] = ()
    refs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    html: str | None = None

    def stored(self, message_id: str, thread_id: str) -> StoredMessage:
        return StoredMessage(
            message_id=message_id,
            thread_id=thread_id,
            date=self.date,
            subject=self.subject,
            snippet=self.snippet,
            body=self.body,
            attachments=self.attachments,
            participants=self.participants,
            warnings=self.warnings,
            html=self.html,
        )


def copy_of(record: MessageRecord, previous: MessageCopy | None) -> MessageCopy:
    """The channel's copy after committing ``record`` over its ``previous`` one."""
    msg = record.message
    body, html = msg.body, msg.html
    if body is None and previous is not None:
        # a metadata-only fetch never erases the channel's body
        body, html = previous.body, previous.html
    return MessageCopy(
        date=msg.date,
        subject=msg.subject,
        snippet=msg.snippet,
        body=body,
        html=html,
        attachments=msg.attachments,
        participants=msg.participants,
        refs=(*msg.in_reply_to, *msg.references, *record.thread_keys),
        warnings=stored_warnings(msg.warnings),
    )


@attrs.frozen(slots=True)
class MessageAssoc:
    message_id: str
    generation: int
    folders: tuple[str, ...]
    direction: Direction


@attrs.frozen(slots=True)
class EventAssoc:
    keys: tuple[EventKey, ...]
    generation: int


@attrs.define(slots=True)
class State:
    channels: dict[str, Channel] = attrs.Factory(dict)
    states: dict[str, ChannelState] = attrs.Factory(dict)
    leases: dict[str, tuple[str, datetime]] = attrs.Factory(dict)
    #: Message-ID -> thread id (the logical message)
    threads: dict[str, str] = attrs.Factory(dict)
    copies: dict[CopyKey, MessageCopy] = attrs.Factory(dict)
    message_assocs: dict[AssocKey, MessageAssoc] = attrs.Factory(dict)
    events: dict[EventCopyKey, Event] = attrs.Factory(dict)
    event_assocs: dict[AssocKey, EventAssoc] = attrs.Factory(dict)
    links: dict[str, frozenset[Link]] = attrs.Factory(dict)
    cursors: dict[tuple[str, str], str] = attrs.Factory(dict)
    skips: dict[tuple[str, str], Skip] = attrs.Factory(dict)
    #: erased address key -> when (tombstones)
    erased: dict[str, datetime] = attrs.Factory(dict)

    def copy(self) -> State:
        return State(
            channels=dict(self.channels),
            states=dict(self.states),
            leases=dict(self.leases),
            threads=dict(self.threads),
            copies=dict(self.copies),
            message_assocs=dict(self.message_assocs),
            events=dict(self.events),
            event_assocs=dict(self.event_assocs),
            links=dict(self.links),
            cursors=dict(self.cursors),
            skips=dict(self.skips),
            erased=dict(self.erased),
        )


def collect(state: State) -> None:
    """Drop copies whose channel lost its last association with them, logical
    messages left without a copy, and events left without an association."""
    live = {(a.message_id, k[0]) for k, a in state.message_assocs.items()}
    for key in [k for k in state.copies if k not in live]:
        del state.copies[key]
    held = {mid for mid, _channel in state.copies}
    for mid in [m for m in state.threads if m not in held]:
        del state.threads[mid]
    live_events = {(k[0], key) for k, a in state.event_assocs.items() for key in a.keys}
    for event_key in [k for k in state.events if k not in live_events]:
        del state.events[event_key]


def remove_matching(
    state: State, channel_id: str | None, matches: Callable[[str], bool]
) -> tuple[int, int]:
    """Delete the associations (of one channel, or of all) whose channel's
    copy of the message, or of one of the calendar object's events, has a
    participant whose key ``matches``; returns how many message and event
    associations went. The caller collects."""
    hit_messages = {
        (mid, ch)
        for (mid, ch), copy in state.copies.items()
        if channel_id in (None, ch) and any(matches(p.address.key) for p in copy.participants)
    }
    hit_events = {
        (ch, key)
        for (ch, key), e in state.events.items()
        if channel_id in (None, ch) and any(matches(a.key) for a in e.addresses())
    }
    removed = [k for k, a in state.message_assocs.items() if (a.message_id, k[0]) in hit_messages]
    for k in removed:
        del state.message_assocs[k]
    removed_events = [
        k
        for k, ea in state.event_assocs.items()
        if any((k[0], key) in hit_events for key in ea.keys)
    ]
    for k in removed_events:
        del state.event_assocs[k]
    return len(removed), len(removed_events)


def minimise_channel(state: State, channel_id: str, visibility: Visibility) -> None:
    """Minimise a channel's stored copies to ``visibility`` (its copies of
    messages as ``minimise_message`` stores them, of events as ``minimise_event``)."""
    for key, copy in list(state.copies.items()):
        if key[1] == channel_id:
            stored = minimise_copy(copy, visibility)
            if stored is not copy:
                state.copies[key] = stored
    for event_key, event in list(state.events.items()):
        if event_key[0] == channel_id:
            state.events[event_key] = minimise_event(event, visibility)


def minimise_copy(copy: MessageCopy, visibility: Visibility) -> MessageCopy:
    """A stored copy as ``minimise_message`` would have stored it (a copy
    holds no calendar parts)."""
    if visibility is not Visibility.METADATA or (
        copy.body is None and copy.html is None and not copy.snippet
    ):
        return copy
    return attrs.evolve(copy, body=None, html=None, snippet="")


def forget_unstored_links(state: State, before: Collection[str]) -> None:
    """Drop the links of the address keys among ``before`` (stored before an
    operation) that no stored copy holds any more."""
    gone = set(before) - stored_addresses(state)
    for key in gone:
        state.links.pop(key, None)


def threads_by_message_ids(state: State, message_ids: Collection[str]) -> dict[str, str]:
    wanted = set(message_ids)
    own = {m: state.threads[m] for m in wanted if m in state.threads}
    referencing = [
        (ref, copy.date, mid, state.threads[mid])
        for (mid, _channel), copy in state.copies.items()
        for ref in copy.refs
        if ref in wanted
    ]
    return resolve_threads(own, referencing)


def thread_links(state: State, channel_id: str, message_ids: Collection[str]) -> ThreadLinks:
    wanted = set(message_ids)
    stored = {m: state.threads[m] for m in wanted if m in state.threads}
    own: list[tuple[str, datetime, str, str]] = []
    elsewhere: set[str] = set()
    for (mid, channel), copy in state.copies.items():
        for ref in wanted.intersection(copy.refs):
            if channel == channel_id:
                own.append((ref, copy.date, mid, state.threads[mid]))
            else:
                elsewhere.add(ref)
    return ThreadLinks(
        stored=stored,
        held=frozenset(m for m in stored if (m, channel_id) in state.copies),
        referenced=resolve_threads({}, own),
        elsewhere=frozenset(elsewhere),
    )


def stored_addresses(state: State) -> set[str]:
    found = {
        p.address.key for copy in state.copies.values() for p in copy.participants if p.address.key
    }
    found.update(a.key for e in state.events.values() for a in e.addresses() if a.key)
    return found


def linked_keys(state: State, target: Target) -> set[str]:
    link = Link(kind=target.kind, id=target.id)
    return {key for key, links in state.links.items() if link in links}


def _seen(
    state: State,
    viewer: Viewer,
    thread_ids: Collection[str],
    message_ids: Collection[str] | None = None,
) -> dict[str, list[Seen]]:
    """What ``viewer`` sees of each message of the threads (of those among
    ``message_ids`` when given; see ``copies``)."""
    copies: dict[str, list[tuple[Holder, StoredMessage]]] = {}
    for (mid, channel_id), copy in state.copies.items():
        thread_id = state.threads[mid]
        channel = state.channels.get(channel_id)
        if message_ids is not None and mid not in message_ids:
            continue
        if thread_id in thread_ids and channel is not None:
            copies.setdefault(thread_id, []).append(
                (holder_of(channel), copy.stored(mid, thread_id))
            )
    return {tid: seen_messages(viewer, found) for tid, found in copies.items()}


def timeline(
    state: State, target: Target, viewer: Viewer, page: PageRequest
) -> Page[ThreadSummary]:
    validate_page(page)
    keys = linked_keys(state, target)
    # a thread is on the timeline when any copy's participants link to it
    linked = {
        state.threads[mid]
        for (mid, _channel), copy in state.copies.items()
        if any(p.address.valid and p.address.key in keys for p in copy.participants)
    }
    last: dict[str, datetime] = {}
    for (mid, _channel), copy in state.copies.items():
        thread_id = state.threads[mid]
        if thread_id in linked and (thread_id not in last or copy.date > last[thread_id]):
            last[thread_id] = copy.date
    order = sorted(((at, tid) for tid, at in last.items()), reverse=True)
    if page.after is not None:
        after = thread_after(page.after)
        order = [row for row in order if row < after]
    chosen = order[: page.limit]
    wanted = {tid for _, tid in chosen}
    read, totals = summary_messages(
        (state.threads[mid], mid, copy.date)
        for (mid, channel_id), copy in state.copies.items()
        if state.threads[mid] in wanted and channel_id in state.channels
    )
    seen = _seen(state, viewer, wanted, read)
    items = []
    for _last, tid in chosen:
        found = seen.get(tid)
        if found:
            messages, visibility = [s.message for s in found], [s.visibility for s in found]
            items.append(summarise_thread(tid, messages, visibility, totals.get(tid)))
    token = thread_token(*chosen[-1]) if len(order) > page.limit else None
    return Page(items=tuple(items), next=token)


def thread(
    state: State, thread_id: str, viewer: Viewer, page: PageRequest | None = None
) -> ThreadView | None:
    if page is not None:
        validate_page(page)
    seen = _seen(state, viewer, {thread_id}).get(thread_id)
    if not seen:
        return None
    directions: dict[tuple[str, str], Direction] = {}
    for key in sorted(state.message_assocs):
        assoc = state.message_assocs[key]
        directions.setdefault((assoc.message_id, key[0]), assoc.direction)
    views = [
        message_view(
            s.message,
            directions.get((s.message.message_id, s.channel_id), Direction.INCOMING),
            s.visibility,
        )
        for s in seen
    ]
    shown, token = page_messages(views, page)
    return ThreadView(thread_id=thread_id, messages=shown, next=token)


def events_page(
    state: State, target: Target, viewer: Viewer, window: Window, page: PageRequest
) -> Page[EventSummary]:
    validate_page(page)
    keys = linked_keys(state, target)
    # keys linked through any channel's copy
    linked = {
        key
        for (_channel, key), e in state.events.items()
        if any(a.valid and a.key in keys for a in e.addresses())
    }
    uids = {uid for uid, _ in linked}
    series = {k: e for k, e in state.events.items() if k[1][0] in uids}
    held = [(key[0], channel_id, organizer_key(e)) for (channel_id, key), e in series.items()]
    summaries = meeting_summaries(viewer, state.channels, held, series, linked, window)
    return page_events(summaries, page)
