"""Host events of the SQL store's rarer writes: blocklist deletions, a
lowered visibility and erasure. The store takes a ``Snapshot`` of the copies
the write may touch before it, and ``changes_since`` compares them after it,
inside the same transaction (see ``stores.snapshot_events``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import HostEvent
from .snapshot_events import CopyKey, CopyState, EventState, Snapshot, snapshot_changes
from .sql_bulk import is_postgres
from .sql_outbox import event_targets, message_targets, stored_fingerprints
from .sql_schema import among, attendees, chunks, events, message_copies, messages, participants
from .sql_write import ERASURE_LOCK

__all__ = ["Snapshot", "changes_since", "snapshot"]


def _copies(conn: Connection, where: Iterable[sa.ColumnElement[bool]]) -> dict[CopyKey, CopyState]:
    c, m = message_copies, messages
    query = (
        sa.select(c.c.channel_id, c.c.message_pk, m.c.message_id, m.c.thread_id, c.c.content_hash)
        .join(m, m.c.pk == c.c.message_pk)
        .where(*where)
    )
    return {
        (str(ch), int(pk)): (str(mid), str(t), str(h)) for ch, pk, mid, t, h in conn.execute(query)
    }


def _events(conn: Connection, where: Iterable[sa.ColumnElement[bool]]) -> dict[int, EventState]:
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
    return Snapshot.of(
        copies, found_events, partial(message_targets, conn), partial(event_targets, conn)
    )


def changes_since(conn: Connection, before: Snapshot, at: datetime) -> list[HostEvent]:
    """Events for the snapshot's copies that a write since deleted or changed."""
    now_copies: dict[CopyKey, CopyState] = {}
    for ch in sorted({ch for ch, _ in before.copies}):
        pks = sorted(pk for c, pk in before.copies if c == ch)
        for part in chunks(pks):
            where = [
                message_copies.c.channel_id == ch,
                among(conn, message_copies.c.message_pk, part),
            ]
            now_copies.update(_copies(conn, where))
    now_events: dict[int, EventState] = {}
    for part in chunks(sorted(before.events)):
        now_events.update(_events(conn, [among(conn, events.c.pk, part)]))
    return snapshot_changes(
        before,
        now_copies,
        now_events,
        partial(message_targets, conn),
        partial(event_targets, conn),
        at,
    )
