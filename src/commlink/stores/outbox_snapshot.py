"""Host events of the SQL store's rarer writes: blocklist deletions, a
lowered visibility and erasure.

These writes run deep in the privacy code; instead of threading an event
log through it, the store takes a ``Snapshot`` of the copies the write may
touch (a channel's, or those naming an erased address) before it, and
``changes_since`` compares them after it, inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import (
    EVENT_DELETED,
    EVENT_UPDATED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    HostEvent,
)
from ..records import Target
from .outbox import EventLog, add_message_event, targets_of
from .sql_bulk import is_postgres
from .sql_outbox import event_targets, message_targets, stored_fingerprints
from .sql_schema import among, attendees, chunks, events, message_copies, messages, participants
from .sql_write import ERASURE_LOCK

__all__ = ["Snapshot", "changes_since", "snapshot"]

_CopyKey = tuple[str, int]  # (channel id, message pk)


@attrs.define
class Snapshot:
    """The copies a write may change, as they were before it."""

    copies: dict[_CopyKey, tuple[str, str, str]]  # -> (Message-ID, thread, digest)
    events: dict[int, tuple[str, str, Any, tuple[Any, ...]]]  # -> (channel, uid, rid, print)
    message_targets: dict[_CopyKey, set[Target]]
    event_targets: dict[int, set[Target]]


def _copies(conn: Connection, where: Iterable[sa.ColumnElement[bool]]) -> dict[_CopyKey, Any]:
    c, m = message_copies, messages
    query = (
        sa.select(c.c.channel_id, c.c.message_pk, m.c.message_id, m.c.thread_id, c.c.content_hash)
        .join(m, m.c.pk == c.c.message_pk)
        .where(*where)
    )
    return {
        (str(ch), int(pk)): (str(mid), str(t), str(h)) for ch, pk, mid, t, h in conn.execute(query)
    }


def _events(conn: Connection, where: Iterable[sa.ColumnElement[bool]]) -> dict[int, Any]:
    query = sa.select(events.c.pk, events.c.channel_id, events.c.uid, events.c.recurrence_id)
    rows = conn.execute(query.where(*where)).all()
    prints = stored_fingerprints(conn, [int(r[0]) for r in rows])
    return {int(pk): (str(ch), str(uid), rid, prints[int(pk)]) for pk, ch, uid, rid in rows}


def snapshot(
    conn: Connection, *, channel_id: str | None = None, key: str | None = None
) -> Snapshot:
    """The copies of ``channel_id``, or those with a participant or attendee
    whose address key is ``key``, with their targets.

    On PostgreSQL no commit runs from here to the end of the transaction
    (it holds ``ERASURE_LOCK`` exclusively, as an erasure does), so nothing
    the write removes can have arrived after the snapshot."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ERASURE_LOCK})")
    if channel_id is not None:
        copies = _copies(conn, [message_copies.c.channel_id == channel_id])
        found_events = _events(conn, [events.c.channel_id == channel_id])
    else:
        p = participants
        holders = sa.select(p.c.message_pk, p.c.channel_id).where(p.c.key == key)
        copies = _copies(
            conn,
            [sa.tuple_(message_copies.c.message_pk, message_copies.c.channel_id).in_(holders)],
        )
        named = sa.select(attendees.c.event_pk).where(attendees.c.key == key)
        found_events = _events(conn, [events.c.pk.in_(named)])
    targets: dict[_CopyKey, set[Target]] = {}
    for ch in sorted({ch for ch, _ in copies}):
        pks = [pk for c, pk in copies if c == ch]
        targets.update(((ch, pk), t) for pk, t in message_targets(conn, ch, pks).items())
    return Snapshot(copies, found_events, targets, event_targets(conn, found_events))


def changes_since(conn: Connection, before: Snapshot, at: datetime) -> list[HostEvent]:
    """Events for the snapshot's copies that a write since deleted or changed."""
    log = EventLog(at)
    now_copies: dict[_CopyKey, Any] = {}
    for ch in sorted({ch for ch, _ in before.copies}):
        pks = sorted(pk for c, pk in before.copies if c == ch)
        for part in chunks(pks):
            where = [
                message_copies.c.channel_id == ch,
                among(conn, message_copies.c.message_pk, part),
            ]
            now_copies.update(_copies(conn, where))
    changed = {k for k, v in now_copies.items() if v[2] != before.copies[k][2]}
    after_targets: dict[_CopyKey, set[Target]] = {}
    for ch in sorted({ch for ch, _ in changed}):
        linked = message_targets(conn, ch, [pk for c, pk in changed if c == ch])
        after_targets.update(((ch, pk), t) for pk, t in linked.items())
    for key in sorted(before.copies):
        mid, thread, _digest = before.copies[key]
        if key not in now_copies:
            add_message_event(
                log, MESSAGE_DELETED, key[0], before.message_targets.get(key), mid, thread
            )
        elif key in changed:
            add_message_event(log, MESSAGE_UPDATED, key[0], after_targets.get(key), mid, thread)
    now_events: dict[int, Any] = {}
    for part in chunks(sorted(before.events)):
        now_events.update(_events(conn, [among(conn, events.c.pk, part)]))
    updated = {pk for pk, v in now_events.items() if v[3] != before.events[pk][3]}
    updated_targets = event_targets(conn, updated)
    for pk in sorted(before.events):
        channel_id, uid, rid, _print = before.events[pk]
        if pk not in now_events:
            found, cut = targets_of(before.event_targets.get(pk, ()))
            log.add(
                EVENT_DELETED,
                channel_id,
                uid=uid,
                recurrence_id=rid,
                targets=found,
                targets_truncated=cut,
            )
        elif pk in updated:
            found, cut = targets_of(updated_targets.get(pk, ()))
            log.add(
                EVENT_UPDATED,
                channel_id,
                uid=uid,
                recurrence_id=rid,
                targets=found,
                targets_truncated=cut,
            )
    return log.events
