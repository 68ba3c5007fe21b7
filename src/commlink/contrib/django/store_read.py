"""The read path of ``DjangoStore``: timelines, threads and events with
visibility applied, in a constant number of queries per call.

What a viewer sees of each message or meeting comes from one channel's copy
(see ``commlink.stores.copies``): every copy of the records concerned is
read with its channel's owner and visibility, and the choice is made by the
same pure functions the reference stores use.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Collate

from ...model import Channel, Direction, Participant, Visibility
from ...records import (
    EventSummary,
    MessageSource,
    MessageView,
    Page,
    PageRequest,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from ...stores.common import (
    MAX_SUMMARY_MESSAGES,
    MAX_SUMMARY_PARTICIPANTS,
    EventKey,
    StoredMessage,
    ThreadTotals,
    message_after,
    page_events,
    resolve_threads,
    thread_after,
    validate_page,
)
from ...stores.copies import (
    Bound,
    Holder,
    Seen,
    meeting_summaries,
    message_views,
    seen_messages,
    thread_page_seen,
    timeline_page,
)
from ...stores.sources import chosen_source
from ...stores.sql_rows import (
    attachments_from_json,
    channel_from_row,
    event_from_rows,
    participant_from_row,
    stored_message,
)
from . import models as m
from .store_rows import as_row, chunked, is_postgres

__all__ = [
    "event_page",
    "known_ids",
    "message_source",
    "thread",
    "thread_links",
    "threads_by_message_ids",
    "timeline",
]

_COPY_FIELDS = ("message_pk", "channel_id", "sent_at", "subject", "snippet", "attachments")
_PARTICIPANT_FIELDS = ("message_pk", "channel_id", "role", "key", "email", "name", "valid", "raw")


def known_ids(using: str, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(sorted(set(ids))):
        for model in (m.MessageAssoc, m.EventAssoc):
            rows = model.objects.using(using).filter(
                channel_id=channel_id, scope_id=scope_id, provider_id__in=part
            )
            found.update(rows.values_list("provider_id", flat=True))
    return found


def threads_by_message_ids(using: str, ids: Collection[str]) -> dict[str, str]:
    own: dict[str, str] = {}
    referencing: list[tuple[str, datetime, str, str]] = []
    for part in chunked(sorted(set(ids))):
        rows = m.Message.objects.using(using).filter(message_id__in=part)
        own.update(rows.values_list("message_id", "thread_id"))
        # every copy's references, each with its copy's date
        refs = list(
            m.MessageRef.objects.using(using)
            .filter(ref_id__in=part)
            .values_list("ref_id", "message_pk", "channel_id")
        )
        pks = sorted({pk for _, pk, _ in refs})
        logical: dict[int, tuple[str, str]] = {}
        dates: dict[tuple[int, str], datetime] = {}
        for pk_part in chunked(pks):
            found = m.Message.objects.using(using).filter(id__in=pk_part)
            logical.update(
                (pk, (mid, tid))
                for pk, mid, tid in found.values_list("id", "message_id", "thread_id")
            )
            copies = m.MessageCopy.objects.using(using).filter(message_pk__in=pk_part)
            dates.update(
                ((pk, ch), at)
                for pk, ch, at in copies.values_list("message_pk", "channel_id", "sent_at")
            )
        referencing.extend(
            (ref, dates[(pk, ch)], *logical[pk])
            for ref, pk, ch in refs
            if (pk, ch) in dates and pk in logical
        )
    return resolve_threads(own, referencing)


def thread_links(using: str, channel_id: str, ids: Collection[str]) -> ThreadLinks:
    stored: dict[str, str] = {}
    held: set[str] = set()
    own: list[tuple[str, datetime, str, str]] = []
    elsewhere: set[str] = set()
    for part in chunked(sorted(set(ids))):
        rows = list(
            m.Message.objects.using(using)
            .filter(message_id__in=part)
            .values_list("id", "message_id", "thread_id")
        )
        stored.update((mid, tid) for _, mid, tid in rows)
        holding = m.MessageCopy.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=[pk for pk, _, _ in rows]
        )
        held_pks = set(holding.values_list("message_pk", flat=True))
        held.update(mid for pk, mid, _ in rows if pk in held_pks)
        own.extend(_oldest_referencing(using, part, channel_id))
        others = m.MessageRef.objects.using(using).filter(ref_id__in=part)
        others = others.exclude(channel_id=channel_id).values_list("ref_id", flat=True)
        elsewhere.update(others.distinct())
    return ThreadLinks(
        stored=stored,
        held=frozenset(held),
        referenced=resolve_threads({}, own),
        elsewhere=frozenset(elsewhere),
    )


# (id, date) pairs matched in one query: SQLite nests an OR list as deep as it is long
_PAIRS = 100


def _oldest_referencing(
    using: str, ids: Sequence[str], channel_id: str
) -> list[tuple[str, datetime, str, str]]:
    """``(referenced id, date, Message-ID, thread id)`` of the channel's
    copies at the earliest date among those referencing each of ``ids``
    (``resolve_threads`` breaks ties). Grouped in the database: an id that
    thousands of copies reference (a long thread's root) costs a row or two."""
    at = Subquery(
        m.MessageCopy.objects.filter(
            message_pk=OuterRef("message_pk"), channel_id=OuterRef("channel_id")
        ).values("sent_at")[:1]
    )
    mine = (
        m.MessageRef.objects.using(using)
        .filter(ref_id__in=ids, channel_id=channel_id)
        .annotate(at=at)
    )
    firsts = list(mine.values("ref_id").annotate(first=Min("at")).values_list("ref_id", "first"))
    found: list[tuple[str, int, datetime]] = []
    for pairs in chunked(firsts, _PAIRS):
        match = Q()
        for ref, first in pairs:
            match |= Q(ref_id=ref, at=first)
        found.extend(mine.filter(match).values_list("ref_id", "message_pk", "at"))
    logical: dict[int, tuple[str, str]] = {}
    for pks in chunked(sorted({pk for _, pk, _ in found})):
        rows = m.Message.objects.using(using).filter(id__in=pks)
        logical.update(
            (pk, (mid, tid)) for pk, mid, tid in rows.values_list("id", "message_id", "thread_id")
        )
    return [(ref, date, *logical[pk]) for ref, pk, date in found if pk in logical]


def _of(model: type[m.Channel], key: str, column: str) -> Subquery:
    """A column of the row of ``model`` whose id is the outer row's ``key``."""
    return Subquery(model.objects.filter(id=OuterRef(key)).values(column)[:1])


def _logical(using: str, thread_ids: Sequence[str]) -> dict[int, tuple[str, str]]:
    """``pk -> (Message-ID, thread id)`` of the threads' messages."""
    logical: dict[int, tuple[str, str]] = {}
    for part in chunked(thread_ids):
        rows = m.Message.objects.using(using).filter(thread_id__in=part)
        logical.update(
            (pk, (mid, tid)) for pk, mid, tid in rows.values_list("id", "message_id", "thread_id")
        )
    return logical


def _copies(
    using: str,
    thread_ids: Sequence[str],
    bodies: bool,
    logical: dict[int, tuple[str, str]] | None = None,
    people: int | None = None,
) -> dict[str, list[tuple[Holder, StoredMessage]]]:
    """Every copy of the threads' messages (or of the messages ``logical``
    names) with its participants (its first ``people`` when given), and its
    body, HTML and warnings when ``bodies``, and the channel holding it, by
    thread: three queries for up to ``CHUNK`` threads and messages."""
    fields = (*_COPY_FIELDS, "body", "html", "warnings") if bodies else _COPY_FIELDS
    copies: list[dict[str, Any]] = []
    found_people: dict[tuple[int, str], list[Participant]] = {}
    if logical is None:
        logical = _logical(using, thread_ids)
    # explicit key lists: a semi-join over the whole table may be planned as a scan of it
    for pks in chunked(sorted(logical)):
        copies.extend(
            m.MessageCopy.objects.using(using)
            .filter(message_pk__in=pks)
            .annotate(
                user_id=_of(m.Channel, "channel_id", "user_id"),
                visibility=_of(m.Channel, "channel_id", "visibility"),
            )
            .values(*fields, "user_id", "visibility")
        )
        found = m.Participant.objects.using(using).filter(message_pk__in=pks)
        if people is not None:
            found = found.filter(pos__lt=people)
        rows = found.order_by("message_pk", "channel_id", "pos").values(*_PARTICIPANT_FIELDS)
        for row in rows:
            found_people.setdefault((row["message_pk"], row["channel_id"]), []).append(
                participant_from_row(as_row(row))
            )
    threads: dict[str, list[tuple[Holder, StoredMessage]]] = {}
    for copy in copies:
        if copy["user_id"] is None:
            continue  # its channel went meanwhile
        holder = Holder(copy["channel_id"], copy["user_id"], Visibility(copy["visibility"]))
        copy["message_id"], copy["thread_id"] = logical[copy["message_pk"]]
        stored = stored_message(
            as_row(copy), found_people.get((copy["message_pk"], copy["channel_id"]), [])
        )
        threads.setdefault(copy["thread_id"], []).append((holder, stored))
    return threads


def timeline(using: str, target: Target, viewer: Viewer, page: PageRequest) -> Page[ThreadSummary]:
    validate_page(page)
    # one index range of the target's threads, newest first (see ThreadTarget)
    query = m.ThreadTarget.objects.using(using).filter(kind=target.kind.value, target_id=target.id)
    if page.after is not None:
        after_at, after_id = thread_after(page.after)
        # the redundant bound is an index condition: the scan starts at the
        # page instead of filtering its way down from the newest thread
        query = query.filter(last_at__lte=after_at).filter(
            Q(last_at__lt=after_at) | Q(last_at=after_at, thread_id__lt=after_id)
        )
    order = list(
        query.order_by("-last_at", "-thread_id").values_list("last_at", "thread_id")[
            : page.limit + 1
        ]
    )
    thread_ids = [tid for _, tid in order[: page.limit]]
    totals = _long_threads(using, thread_ids)
    short = [t for t in thread_ids if t not in totals]
    copies = _copies(using, short, bodies=False, people=MAX_SUMMARY_PARTICIPANTS)
    for thread_id in totals:
        newest = _newest(using, thread_id)
        copies.update(
            _copies(using, (), bodies=False, logical=newest, people=MAX_SUMMARY_PARTICIPANTS)
        )
    return timeline_page(viewer, order, page.limit, copies, totals)


def _long_threads(using: str, thread_ids: Sequence[str]) -> dict[str, ThreadTotals]:
    """The totals of the threads over ``MAX_SUMMARY_MESSAGES`` messages (a
    message is stored while it has a copy, so its thread's index counts)."""
    counts: dict[str, int] = {}
    for part in chunked(thread_ids):
        rows = (
            m.Message.objects.using(using)
            .filter(thread_id__in=part)
            .values("thread_id")
            .annotate(n=Count("id"))
            .values_list("thread_id", "n")
        )
        counts.update((tid, n) for tid, n in rows if n > MAX_SUMMARY_MESSAGES)
    found: dict[str, ThreadTotals] = {}
    for thread_id, count in counts.items():
        first = (
            m.MessageCopy.objects.using(using)
            .filter(message_pk__in=m.Message.objects.filter(thread_id=thread_id).values("id"))
            .aggregate(first=Min("sent_at"))["first"]
        )
        found[thread_id] = ThreadTotals(count, first)
    return found


def _newest(using: str, thread_id: str) -> dict[int, tuple[str, str]]:
    """The thread's newest ``MAX_SUMMARY_MESSAGES`` messages (by their latest
    copy, then Message-ID; as ``copies.summary_messages``), as ``_logical``."""
    message_id: Any = Subquery(
        m.Message.objects.using(using).filter(id=OuterRef("message_pk")).values("message_id")[:1]
    )
    if is_postgres(using):
        message_id = Collate(message_id, "C")
    rows = (
        m.MessageCopy.objects.using(using)
        .filter(message_pk__in=m.Message.objects.filter(thread_id=thread_id).values("id"))
        .values("message_pk")
        .annotate(last=Max("sent_at"), mid=message_id)
        .order_by("-last", "-mid")
        .values_list("message_pk", "mid")[:MAX_SUMMARY_MESSAGES]
    )
    return {pk: (mid, thread_id) for pk, mid in rows}


def thread(
    using: str, thread_id: str, viewer: Viewer, page: PageRequest | None = None
) -> ThreadView | None:
    """The thread as ``viewer`` sees it; a page of it with ``page``."""
    if page is not None:
        return _thread_page(using, thread_id, viewer, page)
    seen = seen_messages(viewer, _copies(using, [thread_id], bodies=True).get(thread_id, ()))
    if not seen:
        return None
    return ThreadView(thread_id=thread_id, messages=_views(using, seen))


def _thread_page(
    using: str, thread_id: str, viewer: Viewer, page: PageRequest
) -> ThreadView | None:
    """One page of a thread, read by keyset over its copies' ``(sent_at,
    Message-ID)`` as the SQL store does (see ``copies.thread_page_seen``)."""
    validate_page(page)
    message_id: Any = Subquery(
        m.Message.objects.using(using).filter(id=OuterRef("message_pk")).values("message_id")[:1]
    )
    if is_postgres(using):
        message_id = Collate(message_id, "C")  # code-point order, as Python compares
    query = (
        m.MessageCopy.objects.using(using)
        .filter(message_pk__in=m.Message.objects.filter(thread_id=thread_id).values("id"))
        .annotate(mid=message_id)
        .order_by("sent_at", "mid")
    )

    def keys(bound: Bound | None, count: int) -> Sequence[tuple[int, str, datetime]]:
        step = query
        if bound is not None:
            step = step.filter(Q(sent_at__gt=bound[0]) | Q(sent_at=bound[0], mid__gt=bound[1]))
        return list(step.values_list("message_pk", "mid", "sent_at")[:count])

    def content(found: Sequence[tuple[int, str]]) -> list[tuple[Holder, StoredMessage]]:
        logical = {pk: (mid, thread_id) for pk, mid in found}
        return _copies(using, (), bodies=True, logical=logical).get(thread_id, [])

    after = message_after(page.after) if page.after is not None else None
    shown, token = thread_page_seen(viewer, after, page.limit, keys, content)
    if not shown and not m.Message.objects.using(using).filter(thread_id=thread_id).exists():
        return None
    return ThreadView(thread_id=thread_id, messages=_views(using, shown), next=token)


def _views(using: str, seen: Sequence[Seen]) -> tuple[MessageView, ...]:
    """The views of chosen copies, each with its channel's direction (its
    first association)."""
    ids = [s.message.message_id for s in seen]
    directions: dict[tuple[str, str], Direction] = {}
    for part in chunked(ids):
        logical = m.Message.objects.using(using).filter(message_id__in=part)
        message_ids = dict(logical.values_list("id", "message_id"))
        rows = (
            m.MessageAssoc.objects.using(using)
            .filter(message_pk__in=sorted(message_ids))
            .order_by("channel_id", "scope_id", "provider_id")
            .values_list("message_pk", "channel_id", "direction")
        )
        for pk, channel_id, direction in rows:
            directions.setdefault((message_ids[pk], channel_id), Direction(direction))
    return message_views(seen, directions)


def event_page(
    using: str, target: Target, viewer: Viewer, window: Window, page: PageRequest
) -> Page[EventSummary]:
    validate_page(page)
    links = m.AddressLink.objects.using(using).filter(kind=target.kind.value, target_id=target.id)
    linked_pks: set[int] = set()
    for part in chunked(sorted(links.values_list("key", flat=True))):
        holders = m.Attendee.objects.using(using).filter(valid=True, key__in=part)
        linked_pks.update(holders.values_list("event_pk", flat=True))
    events = m.Event.objects.using(using)
    # keys linked through any channel's copy
    linked: set[EventKey] = set()
    for pk_part in chunked(sorted(linked_pks)):
        linked.update(events.filter(id__in=pk_part).values_list("uid", "recurrence_id"))
    if not linked:
        return page_events((), page)
    uids = sorted({uid for uid, _ in linked})
    # every copy of the linked meetings, with its organizer: who holds what
    copies: list[tuple[int, str, str]] = []
    organizers: dict[int, str] = {}
    for part in chunked(uids):
        found = list(events.filter(uid__in=part).values_list("id", "uid", "channel_id"))
        copies.extend(found)
        organizer_rows = m.Attendee.objects.using(using).filter(
            event_pk__in=[pk for pk, _, _ in found], pos=-1, valid=True
        )
        organizers.update(organizer_rows.values_list("event_pk", "key"))
    held = [(uid, channel_id, organizers.get(pk, "")) for pk, uid, channel_id in copies]
    channels: dict[str, Channel] = {
        row["id"]: channel_from_row(as_row(row))
        for row in m.Channel.objects.using(using)
        .filter(id__in=sorted({c for _, c, _ in held}))
        .values()
    }
    relevant = ~Q(recurrence="[]") | Q(recurrence_id__isnull=False)
    relevant |= Q(starts_at__lt=window.end, ends_at__gt=window.start)
    rows: list[dict[str, Any]] = []
    attendees: dict[int, list[dict[str, Any]]] = {}
    for part in chunked(uids):
        chosen = list(events.filter(relevant, uid__in=part).values())
        rows.extend(chosen)
        people = (
            m.Attendee.objects.using(using)
            .filter(event_pk__in=[row["id"] for row in chosen])
            .order_by("event_pk", "pos")
            .values()
        )
        for person in people:
            attendees.setdefault(person["event_pk"], []).append(person)
    loaded = {}
    for row in rows:
        event = event_from_rows(as_row(row), [as_row(a) for a in attendees.get(row["id"], [])])
        loaded[(row["channel_id"], (event.uid, event.recurrence_id))] = event
    summaries = meeting_summaries(viewer, channels, held, loaded, linked, window)
    return page_events(summaries, page)


def message_source(
    using: str, thread_id: str, message_id: str, viewer: Viewer
) -> MessageSource | None:
    """Where ``viewer`` may fetch the message's attachments from: the copy
    they are shown, when shown in ``FULL`` (``stores.sources.chosen_source``)."""
    found = m.Message.objects.using(using).filter(message_id=message_id, thread_id=thread_id)
    pk = found.values_list("id", flat=True).first()
    if pk is None:
        return None
    copies = (
        m.MessageCopy.objects.using(using)
        .filter(message_pk=pk)
        .annotate(
            user_id=_of(m.Channel, "channel_id", "user_id"),
            visibility=_of(m.Channel, "channel_id", "visibility"),
        )
        .values_list("channel_id", "attachments", "user_id", "visibility")
    )
    assocs = m.MessageAssoc.objects.using(using).filter(message_pk=pk)
    locations = list(assocs.values_list("channel_id", "scope_id", "provider_id"))
    return chosen_source(
        viewer,
        message_id,
        (
            (Holder(c, user, Visibility(vis)), attachments_from_json(text))
            for c, text, user, vis in copies
            if user is not None
        ),
        locations,
    )
