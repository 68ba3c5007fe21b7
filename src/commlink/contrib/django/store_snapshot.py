"""Host events of ``DjangoStore``'s rarer writes: blocklist deletions, a
lowered visibility and erasure.

These writes run deep in the privacy code; instead of threading an event
log through it, the store takes a ``Snapshot`` of the copies the write may
touch (a channel's, or those naming an erased address) before it, and
``changes_since`` compares them after it, inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import attrs
from django.db import connections

from ...events import EVENT_DELETED, EVENT_UPDATED, MESSAGE_DELETED, MESSAGE_UPDATED, HostEvent
from ...records import Target
from ...stores.outbox import EventLog, add_message_event, targets_of
from . import models as m
from .store_events import event_targets, message_targets, stored_fingerprints
from .store_rows import chunked, is_postgres
from .store_write import ERASURE_LOCK

__all__ = ["Snapshot", "changes_since", "snapshot"]

_CopyKey = tuple[str, int]  # (channel id, message pk)


@attrs.define
class Snapshot:
    """The copies a write may change, as they were before it."""

    copies: dict[_CopyKey, tuple[str, str, str]]  # -> (Message-ID, thread, digest)
    events: dict[int, tuple[str, str, Any, tuple[Any, ...]]]  # -> (channel, uid, rid, print)
    message_targets: dict[_CopyKey, set[Target]]
    event_targets: dict[int, set[Target]]


def _copies(using: str, pairs: Collection[tuple[str, int]]) -> dict[_CopyKey, Any]:
    """The stored copies among ``(channel id, message pk)`` pairs."""
    found: dict[_CopyKey, Any] = {}
    by_channel: dict[str, list[int]] = {}
    for ch, pk in pairs:
        by_channel.setdefault(ch, []).append(pk)
    for ch, pks in sorted(by_channel.items()):
        for part in chunked(sorted(set(pks))):
            rows = m.MessageCopy.objects.using(using).filter(channel_id=ch, message_pk__in=part)
            digests = dict(rows.values_list("message_pk", "content_hash"))
            logical = m.Message.objects.using(using).filter(id__in=sorted(digests))
            for pk, mid, thread in logical.values_list("id", "message_id", "thread_id"):
                found[(ch, pk)] = (mid, thread, digests[pk])
    return found


def _events(using: str, pks: Collection[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for part in chunked(sorted(pks)):
        rows = m.Event.objects.using(using).filter(id__in=part)
        found_rows = list(rows.values_list("id", "channel_id", "uid", "recurrence_id"))
        prints = stored_fingerprints(using, [r[0] for r in found_rows])
        found.update((pk, (ch, uid, rid, prints[pk])) for pk, ch, uid, rid in found_rows)
    return found


def snapshot(using: str, *, channel_id: str | None = None, key: str | None = None) -> Snapshot:
    """The copies of ``channel_id``, or those with a participant or attendee
    whose address key is ``key``, with their targets.

    On PostgreSQL no commit runs from here to the end of the transaction
    (it holds ``ERASURE_LOCK`` exclusively, as an erasure does), so nothing
    the write removes can have arrived after the snapshot."""
    if is_postgres(using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ERASURE_LOCK])
    if channel_id is not None:
        held = m.MessageCopy.objects.using(using).filter(channel_id=channel_id)
        pairs = [(channel_id, pk) for pk in held.values_list("message_pk", flat=True)]
        event_pks = m.Event.objects.using(using).filter(channel_id=channel_id)
        found_events = _events(using, list(event_pks.values_list("id", flat=True)))
    else:
        people = m.Participant.objects.using(using).filter(key=key)
        pairs = [(ch, pk) for pk, ch in people.values_list("message_pk", "channel_id").distinct()]
        named = m.Attendee.objects.using(using).filter(key=key)
        found_events = _events(using, set(named.values_list("event_pk", flat=True)))
    copies = _copies(using, pairs)
    targets: dict[_CopyKey, set[Target]] = {}
    for ch in sorted({ch for ch, _ in copies}):
        pks = [pk for c, pk in copies if c == ch]
        targets.update(((ch, pk), t) for pk, t in message_targets(using, ch, pks).items())
    return Snapshot(copies, found_events, targets, event_targets(using, found_events))


def changes_since(using: str, before: Snapshot, at: datetime) -> list[HostEvent]:
    """Events for the snapshot's copies that a write since deleted or changed."""
    log = EventLog(at)
    now_copies = _copies(using, before.copies)
    changed = {k for k, v in now_copies.items() if v[2] != before.copies[k][2]}
    after_targets: dict[_CopyKey, set[Target]] = {}
    for ch in sorted({ch for ch, _ in changed}):
        linked = message_targets(using, ch, [pk for c, pk in changed if c == ch])
        after_targets.update(((ch, pk), t) for pk, t in linked.items())
    for key in sorted(before.copies):
        mid, thread, _digest = before.copies[key]
        if key not in now_copies:
            add_message_event(
                log, MESSAGE_DELETED, key[0], before.message_targets.get(key), mid, thread
            )
        elif key in changed:
            add_message_event(log, MESSAGE_UPDATED, key[0], after_targets.get(key), mid, thread)
    now_events = _events(using, before.events)
    updated = {pk for pk, v in now_events.items() if v[3] != before.events[pk][3]}
    updated_targets = event_targets(using, updated)
    for pk in sorted(before.events):
        channel_id, uid, rid, _print = before.events[pk]
        if pk in now_events and pk not in updated:
            continue
        kind, named = (
            (EVENT_DELETED, before.event_targets.get(pk, set()))
            if pk not in now_events
            else (EVENT_UPDATED, updated_targets.get(pk, set()))
        )
        found, cut = targets_of(named)
        log.add(kind, channel_id, uid=uid, recurrence_id=rid, targets=found, targets_truncated=cut)
    return log.events
