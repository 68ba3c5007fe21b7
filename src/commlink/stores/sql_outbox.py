"""Host events of ``SqlStore``: computed inside the write's transaction and,
with ``SqlStore(outbox=True)``, written to ``commlink_outbox`` in it.

Ids follow commit order: on PostgreSQL a transaction takes an advisory lock
before it numbers its events and holds it until it commits, so no event
with a lower id can become visible after one with a higher id (a sequence
alone would let a slow transaction commit a lower id late, and a reader
past it would never see it). SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import (
    HostEvent,
    TransactionalSink,
)
from ..records import Target, TargetKind
from .outbox import ChangeCollector, event_fingerprint
from .sql_bulk import is_postgres
from .sql_rows import event_from_rows
from .sql_schema import (
    address_links,
    among,
    attendees,
    chunks,
    event_assocs,
    events,
    insert_for,
    message_assocs,
    message_copies,
    messages,
    outbox,
    outbox_consumers,
    participants,
)

__all__ = [
    "OUTBOX_LOCK",
    "CommitEvents",
    "SqlOutbox",
    "event_targets",
    "message_targets",
    "stored_fingerprints",
    "write_outbox",
]

#: PostgreSQL advisory lock key held from numbering a transaction's events
#: to its commit (``pg_advisory_xact_lock``).
OUTBOX_LOCK = 0x636C6B6F7574626F  # "clkoutbo"


@attrs.define
class CommitEvents(ChangeCollector):
    """The host events of one ``commit_batch`` (see ``ChangeCollector``)."""

    def removed(self, table: sa.Table, rows: Sequence[tuple[Any, ...]]) -> None:
        """``(pk, provider id)`` of associations the batch removed."""
        if table is message_assocs:
            self.removed_messages((pk, pid) for pk, pid in rows)
        else:
            self.removed_events((pk, pid) for pk, pid in rows)

    def finish(
        self, conn: Connection, dropped_messages: Collection[int], dropped_events: Collection[int]
    ) -> None:
        self.emit(
            _orphan_copies(conn, self.channel_id, dropped_messages),
            _orphan_events(conn, dropped_events),
            lambda pks: message_targets(conn, self.channel_id, pks),
            lambda pks: event_targets(conn, pks),
        )


def _linked(rows: Iterator[Any]) -> dict[int, set[Target]]:
    found: dict[int, set[Target]] = {}
    for pk, kind, target_id in rows:
        found.setdefault(int(pk), set()).add(Target(TargetKind(kind), str(target_id)))
    return found


def message_targets(
    conn: Connection, channel_id: str, pks: Collection[int]
) -> dict[int, set[Target]]:
    found: dict[int, set[Target]] = {}
    p, link = participants, address_links
    for part in chunks(sorted(pks)):
        query = (
            sa.select(p.c.message_pk, link.c.kind, link.c.target_id)
            .join(link, link.c.key == p.c.key)
            .where(p.c.channel_id == channel_id, p.c.valid, among(conn, p.c.message_pk, part))
        )
        for pk, targets in _linked(iter(conn.execute(query))).items():
            found.setdefault(pk, set()).update(targets)
    return found


def event_targets(conn: Connection, pks: Collection[int]) -> dict[int, set[Target]]:
    found: dict[int, set[Target]] = {}
    a, link = attendees, address_links
    for part in chunks(sorted(pks)):
        query = (
            sa.select(a.c.event_pk, link.c.kind, link.c.target_id)
            .join(link, link.c.key == a.c.key)
            .where(a.c.valid, among(conn, a.c.event_pk, part))
        )
        for pk, targets in _linked(iter(conn.execute(query))).items():
            found.setdefault(pk, set()).update(targets)
    return found


def _orphan_copies(
    conn: Connection, channel_id: str, pks: Collection[int]
) -> dict[int, tuple[str, str]]:
    """The channel's copies among ``pks`` left without an association (what
    ``sql_delete.collect`` deletes next): pk -> (Message-ID, thread)."""
    c, m, a = message_copies, messages, message_assocs
    found: dict[int, tuple[str, str]] = {}
    for part in chunks(sorted(pks)):
        query = (
            sa.select(c.c.message_pk, m.c.message_id, m.c.thread_id)
            .join(m, m.c.pk == c.c.message_pk)
            .where(
                c.c.channel_id == channel_id,
                among(conn, c.c.message_pk, part),
                ~sa.exists().where(
                    a.c.message_pk == c.c.message_pk, a.c.channel_id == c.c.channel_id
                ),
            )
        )
        found.update((int(pk), (str(mid), str(t))) for pk, mid, t in conn.execute(query))
    return found


def _orphan_events(conn: Connection, pks: Collection[int]) -> dict[int, tuple[str, Any]]:
    """Event rows among ``pks`` left without an association: pk -> (uid, recurrence id)."""
    found: dict[int, tuple[str, Any]] = {}
    for part in chunks(sorted(pks)):
        query = sa.select(events.c.pk, events.c.uid, events.c.recurrence_id).where(
            among(conn, events.c.pk, part),
            ~sa.exists().where(event_assocs.c.event_pk == events.c.pk),
        )
        found.update((int(pk), (str(uid), rid)) for pk, uid, rid in conn.execute(query))
    return found


def stored_fingerprints(conn: Connection, pks: Collection[int]) -> dict[int, tuple[Any, ...]]:
    """``event_fingerprint`` of each stored event row among ``pks``."""
    found: dict[int, tuple[Any, ...]] = {}
    for part in chunks(sorted(pks)):
        rows = conn.execute(sa.select(events).where(among(conn, events.c.pk, part))).mappings()
        people: dict[int, list[Any]] = {}
        query = (
            sa.select(attendees)
            .where(among(conn, attendees.c.event_pk, part))
            .order_by(attendees.c.event_pk, attendees.c.pos)
        )
        for person in conn.execute(query).mappings():
            people.setdefault(int(person["event_pk"]), []).append(person)
        for row in rows.all():
            pk = int(row["pk"])
            found[pk] = event_fingerprint(event_from_rows(row, people.get(pk, [])))
    return found


def _row(event: HostEvent) -> dict[str, Any]:
    data = event.to_dict()
    for key in ("id", "type", "channel_id", "at"):
        del data[key]
    return {
        "type": event.type,
        "channel_id": event.channel_id,
        "at": event.at,
        "data": json.dumps(data, separators=(",", ":")),  # ASCII: any text survives
    }


def _event(row: sa.RowMapping) -> HostEvent:
    data = json.loads(row["data"])
    data.update(id=row["id"], type=row["type"], channel_id=row["channel_id"])
    data["at"] = row["at"].isoformat()
    return HostEvent.from_dict(data)


def write_outbox(conn: Connection, found: Sequence[HostEvent]) -> list[HostEvent]:
    """Insert events into the outbox inside the caller's transaction;
    returns them with their ids."""
    if not found:
        return []
    if is_postgres(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({OUTBOX_LOCK})")
    stmt = sa.insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
    ids = conn.execute(stmt, [_row(e) for e in found]).scalars().all()
    return [e.with_id(int(i)) for e, i in zip(found, ids, strict=True)]


class SqlOutbox:
    """The ``Outbox`` of a ``SqlStore`` (a ``TransactionalOutbox``: a
    ``TransactionalSink`` gets the store's SQLAlchemy ``Connection``).

    ``tx`` opens a write transaction of the store; ``clock`` gives the aware
    UTC time for leases.
    """

    def __init__(
        self,
        tx: Callable[..., AbstractContextManager[Connection]],
        clock: Callable[[], datetime],
    ) -> None:
        self._tx = tx
        self._clock = clock

    def pending(self, consumer: str, limit: int = 100) -> Sequence[HostEvent]:
        with self._tx(write=False) as conn:
            return _pending(conn, consumer, limit)

    def ack(self, consumer: str, up_to: int) -> None:
        with self._tx(write=True) as conn:
            _advance(conn, consumer, up_to)

    def position(self, consumer: str) -> int:
        with self._tx(write=False) as conn:
            return _position(conn, consumer)

    def claim(self, consumer: str, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        c = outbox_consumers
        with self._tx(write=True) as conn:
            insert = insert_for(conn, c).values(
                name=consumer, position=0, holder=holder, expires_at=now + ttl
            )
            stmt = insert.on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
                where=sa.or_(c.c.holder == holder, c.c.holder == "", c.c.expires_at <= now),
            ).returning(c.c.holder)
            return conn.execute(stmt).first() is not None

    def release(self, consumer: str, holder: str) -> None:
        c = outbox_consumers
        with self._tx(write=True) as conn:
            conn.execute(
                sa.update(c)
                .where(c.c.name == consumer, c.c.holder == holder)
                .values(holder="", expires_at=None)
            )

    def prune(self, up_to: int) -> int:
        with self._tx(write=True) as conn:
            gone = conn.execute(sa.delete(outbox).where(outbox.c.id <= up_to))
            return int(gone.rowcount or 0)

    def deliver_once(
        self, consumer: str, sink: TransactionalSink[Connection], limit: int = 100
    ) -> int:
        """Deliver the next events to ``sink.deliver_in`` and move the
        position in the same transaction (the consumer's row is locked
        meanwhile, so concurrent calls deliver each event once)."""
        with self._tx(write=True) as conn:
            _lock_consumer(conn, consumer)
            found = _pending(conn, consumer, limit)
            if not found:
                return 0
            sink.deliver_in(conn, found)
            _advance(conn, consumer, found[-1].id)
            return len(found)


def _pending(conn: Connection, consumer: str, limit: int) -> list[HostEvent]:
    after = _position(conn, consumer)
    query = sa.select(outbox).where(outbox.c.id > after).order_by(outbox.c.id).limit(max(limit, 0))
    return [_event(row) for row in conn.execute(query).mappings()]


def _position(conn: Connection, consumer: str) -> int:
    c = outbox_consumers
    found = conn.execute(sa.select(c.c.position).where(c.c.name == consumer)).scalar()
    return int(found or 0)


def _lock_consumer(conn: Connection, consumer: str) -> None:
    c = outbox_consumers
    insert = insert_for(conn, c).values(name=consumer, position=0)
    conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
    if is_postgres(conn):
        conn.execute(sa.select(c.c.name).where(c.c.name == consumer).with_for_update())


def _advance(conn: Connection, consumer: str, up_to: int) -> None:
    c = outbox_consumers
    insert = insert_for(conn, c).values(name=consumer, position=up_to)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "position": sa.case(
                    (c.c.position > insert.excluded.position, c.c.position),
                    else_=insert.excluded.position,
                )
            },
        )
    )
