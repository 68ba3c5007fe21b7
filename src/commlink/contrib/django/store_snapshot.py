"""Host events of ``DjangoStore``'s rarer writes: blocklist deletions, a
lowered visibility and erasure. The store takes a ``Snapshot`` of the copies
the write may touch before it, and ``changes_since`` compares them after it,
inside the same transaction (see ``commlink.stores.snapshot_events``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import partial

from django.db import connections

from ...events import HostEvent
from ...stores.snapshot_events import CopyKey, CopyState, EventState, Snapshot, snapshot_changes
from . import models as m
from .store_events import event_targets, message_targets, stored_fingerprints
from .store_rows import chunked, is_postgres
from .store_write import ERASURE_LOCK

__all__ = ["Snapshot", "changes_since", "snapshot"]


def _copies(using: str, pairs: Collection[CopyKey]) -> dict[CopyKey, CopyState]:
    """The stored copies among ``(channel id, message pk)`` pairs."""
    found: dict[CopyKey, CopyState] = {}
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


def _events(using: str, pks: Collection[int]) -> dict[int, EventState]:
    found: dict[int, EventState] = {}
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
    return Snapshot.of(
        copies, found_events, partial(message_targets, using), partial(event_targets, using)
    )


def changes_since(using: str, before: Snapshot, at: datetime) -> list[HostEvent]:
    """Events for the snapshot's copies that a write since deleted or changed."""
    return snapshot_changes(
        before,
        _copies(using, before.copies),
        _events(using, before.events),
        partial(message_targets, using),
        partial(event_targets, using),
        at,
    )
