"""Shared records and trust: which channel's copy a viewer sees.

Records are shared by keys anyone can put in a message: one logical message
per Message-ID, one meeting per iCalendar UID (and recurrence id). Dedup
stays for counting and threading, but every channel holding a record keeps
its own copy of the content, so a copy arriving through one channel never
changes what another channel's owner sees of theirs, and never lifts what a
viewer may see beyond what the channels allow.

What a viewer sees of a record comes from ONE copy they are entitled to:

1. their own channel's copy when they own a channel holding the record
   (the lowest channel id among several), shown in full;
2. events only: else the copy of a channel whose owner (or an alias)
   organises the meeting in that copy;
3. else the copy of the channel with the most open visibility
   (``FULL`` > ``SUBJECT`` > ``METADATA``), shown at that visibility;

ties broken by the lowest channel id. A meeting is chosen per UID (the
series with its overrides come from one channel's copy).

Both reference stores call these pure functions; a host store can too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import attrs

from ..model import Channel, Direction, Event, Visibility
from ..policy.filters import rules_for
from ..records import EventSummary, MessageView, Page, ThreadSummary, Viewer, Window
from .common import (
    MAX_SUMMARY_MESSAGES,
    EventKey,
    StoredMessage,
    ThreadTotals,
    event_summary,
    message_token,
    message_view,
    select_occurrences,
    summarise_thread,
    thread_token,
)

__all__ = [
    "Holder",
    "Seen",
    "choose",
    "holder_of",
    "meeting_summaries",
    "message_views",
    "organizer_key",
    "seen_messages",
    "summary_messages",
    "thread_page_seen",
    "timeline_page",
]

K = TypeVar("K", int, str)


@attrs.frozen(slots=True)
class Holder:
    """A channel holding a copy: its id, its owner and its visibility."""

    channel_id: str
    user_id: str
    visibility: Visibility


def holder_of(channel: Channel) -> Holder:
    return Holder(channel.id, channel.user_id, channel.settings.visibility)


def choose(
    viewer: Viewer, holders: Iterable[Holder], organisers: Collection[str] = ()
) -> tuple[Holder, Visibility] | None:
    """The holder whose copy ``viewer`` sees, with the visibility it is shown
    at; ``None`` without holders. ``organisers`` are the ids of channels
    whose owner organises the meeting (events only)."""
    best: Holder | None = None
    best_rank: tuple[int, int, int, str] | None = None
    for holder in holders:
        if holder.user_id == viewer.user_id:
            rank = (0, 0, 0, holder.channel_id)
        else:
            organiser = 0 if holder.channel_id in organisers else 1
            rank = (1, organiser, -holder.visibility.rank, holder.channel_id)
        if best_rank is None or rank < best_rank:
            best, best_rank = holder, rank
    if best is None:
        return None
    owned = best.user_id == viewer.user_id
    return best, Visibility.FULL if owned else best.visibility


@attrs.frozen(slots=True)
class Seen:
    """What a viewer sees of one logical message: the chosen copy, the
    visibility it is shown at and the channel it comes from."""

    message: StoredMessage
    visibility: Visibility
    channel_id: str


def seen_messages(viewer: Viewer, copies: Iterable[tuple[Holder, StoredMessage]]) -> list[Seen]:
    """One chosen copy per logical message among ``copies`` (every copy of
    some messages, with the channel holding each), oldest first as the
    viewer sees them (by the chosen copy's date, then Message-ID)."""
    by_message: dict[str, dict[str, tuple[Holder, StoredMessage]]] = {}
    for holder, message in copies:
        by_message.setdefault(message.message_id, {})[holder.channel_id] = (holder, message)
    seen: list[Seen] = []
    for held in by_message.values():
        found = choose(viewer, (holder for holder, _ in held.values()))
        if found is not None:
            holder, visibility = found
            seen.append(Seen(held[holder.channel_id][1], visibility, holder.channel_id))
    seen.sort(key=lambda s: (s.message.date, s.message.message_id))
    return seen


def summary_messages(
    copies: Iterable[tuple[str, K, datetime]], most: int = MAX_SUMMARY_MESSAGES
) -> tuple[set[K], dict[str, ThreadTotals]]:
    """The messages a timeline reads to summarise threads, and the totals of
    the threads it summarises from some of them.

    ``copies`` holds ``(thread id, message key, date)`` for every copy of the
    threads' messages. A thread of at most ``most`` messages is read whole;
    of a longer one, the newest ``most`` (by their latest copy, then key).
    """
    latest: dict[str, dict[K, datetime]] = {}
    first: dict[str, datetime] = {}
    for thread_id, key, date in copies:
        dates = latest.setdefault(thread_id, {})
        if key not in dates or date > dates[key]:
            dates[key] = date
        if thread_id not in first or date < first[thread_id]:
            first[thread_id] = date
    keys: set[K] = set()
    totals: dict[str, ThreadTotals] = {}
    for thread_id, dates in latest.items():
        if len(dates) <= most:
            keys.update(dates)
            continue
        newest = sorted(dates.items(), key=lambda item: (item[1], item[0]), reverse=True)
        keys.update(key for key, _ in newest[:most])
        totals[thread_id] = ThreadTotals(len(dates), first[thread_id])
    return keys, totals


#: A thread page's keyset bound: the last ``(date, Message-ID)`` read.
Bound = tuple[datetime, str]


def thread_page_seen(
    viewer: Viewer,
    after: Bound | None,
    limit: int,
    keys: Callable[[Bound | None, int], Sequence[tuple[int, str, datetime]]],
    content: Callable[[Sequence[tuple[int, str]]], Iterable[tuple[Holder, StoredMessage]]],
) -> tuple[list[Seen], str | None]:
    """What ``viewer`` sees of one page of a thread, oldest first, and the
    token of the next page (``None`` on the last), read by keyset over the
    thread's copies' ``(date, Message-ID)``.

    ``keys(bound, n)`` gives up to ``n`` ``(message pk, Message-ID, date)``
    of the thread's copies after ``bound`` (all, for ``None``) in that
    order; ``content(messages)`` every copy of those ``(pk, Message-ID)``.
    The order is that of the copies each viewer is shown, so copies are read
    in key order, in growing batches, until ``limit + 1`` chosen messages
    come before every copy not read yet (a message not read yet has every
    copy after the last one read, so its chosen copy sorts after them too).
    Copies of one message almost always share their date: one batch.
    """
    chosen: dict[str, Seen] = {}
    loaded: set[int] = set()
    bound = after
    batch = limit + 1
    while True:
        rows = keys(bound, batch)
        fresh = {pk: mid for pk, mid, _at in rows if pk not in loaded}
        loaded.update(fresh)
        if fresh:
            for seen in seen_messages(viewer, content(sorted(fresh.items()))):
                if after is None or (seen.message.date, seen.message.message_id) > after:
                    chosen[seen.message.message_id] = seen
        if len(rows) < batch:
            break
        last = (rows[-1][2], rows[-1][1])
        before = sum(1 for s in chosen.values() if (s.message.date, s.message.message_id) <= last)
        if before > limit:
            break
        bound = last
        batch *= 2
    ordered = sorted(chosen.values(), key=lambda s: (s.message.date, s.message.message_id))
    shown = ordered[:limit]
    token = None
    if len(ordered) > limit:
        token = message_token(shown[-1].message.date, shown[-1].message.message_id)
    return shown, token


def timeline_page(
    viewer: Viewer,
    order: Sequence[tuple[datetime, str]],
    limit: int,
    copies: Mapping[str, Iterable[tuple[Holder, StoredMessage]]],
    totals: Mapping[str, ThreadTotals] | None = None,
) -> Page[ThreadSummary]:
    """A timeline page as ``viewer`` sees it.

    ``order`` holds up to ``limit + 1`` ``(last_at, thread id)`` rows, newest
    first; ``copies`` every copy of the first ``limit`` threads' messages
    (only the newest of a thread with ``totals``: see ``summary_messages``),
    by thread. A thread the viewer sees nothing of is left out of the page.
    """
    chosen = order[:limit]
    long_threads = totals or {}
    items = []
    for _, thread_id in chosen:
        seen = seen_messages(viewer, copies.get(thread_id, ()))
        if seen:
            messages_seen = [s.message for s in seen]
            items.append(
                summarise_thread(
                    thread_id,
                    messages_seen,
                    [s.visibility for s in seen],
                    long_threads.get(thread_id),
                )
            )
    token = thread_token(*chosen[-1]) if len(order) > limit else None
    return Page(items=tuple(items), next=token)


def message_views(
    seen: Iterable[Seen], directions: Mapping[tuple[str, str], Direction]
) -> tuple[MessageView, ...]:
    """The views of chosen copies; ``directions`` holds the direction of a
    message in a channel by ``(Message-ID, channel id)`` (incoming when missing)."""
    return tuple(
        message_view(
            s.message,
            directions.get((s.message.message_id, s.channel_id), Direction.INCOMING),
            s.visibility,
        )
        for s in seen
    )


def organizer_key(event: Event) -> str:
    """The address key of the event's organizer ('' when none is valid)."""
    if event.organizer is None or not event.organizer.address.valid:
        return ""
    return event.organizer.address.key


def meeting_summaries(
    viewer: Viewer,
    channels: Mapping[str, Channel],
    held: Iterable[tuple[str, str, str]],
    events: Mapping[tuple[str, EventKey], Event],
    linked: Collection[EventKey],
    window: Window,
) -> list[EventSummary]:
    """The occurrences in ``window`` of linked meetings as ``viewer`` sees them.

    ``held`` lists ``(uid, channel_id, organizer key)`` for EVERY stored
    event of the linked meetings' uids; ``events`` maps ``(channel_id,
    (uid, recurrence_id))`` to stored events, at least those that can
    occur in the window; ``linked`` holds the keys with a linked attendee in
    any copy. One channel's copy is chosen per uid (see ``choose``).
    """
    holders: dict[str, set[str]] = {}
    organisers: dict[str, set[str]] = {}
    for uid, channel_id, organizer in held:
        channel = channels.get(channel_id)
        if channel is None:
            continue
        holders.setdefault(uid, set()).add(channel_id)
        if organizer and organizer in rules_for(channel.settings).own:
            organisers.setdefault(uid, set()).add(channel_id)
    picked: dict[str, tuple[str, Visibility]] = {}
    for uid, channel_ids in holders.items():
        found = choose(
            viewer, (holder_of(channels[c]) for c in channel_ids), organisers.get(uid, ())
        )
        if found is not None:
            picked[uid] = (found[0].channel_id, found[1])
    chosen: dict[tuple[str, datetime | None], Event] = {}
    for (channel_id, key), event in events.items():
        pick = picked.get(key[0])
        if pick is not None and pick[0] == channel_id:
            chosen[key] = event
    return [
        event_summary(occurrence, picked[occurrence.uid][1])
        for occurrence, _source in select_occurrences(chosen, linked, window)
    ]
