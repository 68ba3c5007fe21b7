"""Host events of ``DjangoStore``: computed inside the write's transaction
and, with ``DjangoStore(outbox=True)``, written to ``commlink_orm_outbox``
in it (see ``commlink.events`` for what they mean).

Ids follow commit order: on PostgreSQL a transaction takes an advisory lock
before it numbers its events and holds it until it commits, so no event
with a lower id becomes visible after one with a higher id. SQLite
serialises writers anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
from django.db import connections
from django.db.models import Case, F, Q, When

from ...events import (
    HostEvent,
    TransactionalSink,
)
from ...records import Target, TargetKind
from ...stores.outbox import ChangeCollector, event_fingerprint
from ...stores.sql_rows import event_from_rows
from . import models as m
from .store_rows import as_row, chunked, is_postgres

__all__ = [
    "OUTBOX_LOCK",
    "CommitEvents",
    "DjangoOutbox",
    "event_targets",
    "message_targets",
    "stored_fingerprints",
    "write_outbox",
]

#: PostgreSQL advisory lock key held from numbering a transaction's events
#: to its commit (``pg_advisory_xact_lock``).
OUTBOX_LOCK = 0x636C6F726D6F7574  # "clormout"


@attrs.define
class CommitEvents(ChangeCollector):
    """The host events of one write on database ``using`` (see ``ChangeCollector``)."""

    using: str = attrs.field(kw_only=True)

    def finish(self, dropped_messages: Collection[int], dropped_events: Collection[int]) -> None:
        using = self.using
        self.emit(
            _orphan_copies(using, self.channel_id, dropped_messages),
            _orphan_events(using, dropped_events),
            lambda pks: message_targets(using, self.channel_id, pks),
            lambda pks: event_targets(using, pks),
        )


def _linked(using: str, holders: Iterable[tuple[int, str]]) -> dict[int, set[Target]]:
    """Targets linked to the address keys of ``(pk, key)`` pairs, by pk."""
    by_key: dict[str, set[int]] = {}
    for pk, key in holders:
        by_key.setdefault(key, set()).add(int(pk))
    found: dict[int, set[Target]] = {}
    for part in chunked(sorted(by_key)):
        links = m.AddressLink.objects.using(using).filter(key__in=part)
        for key, kind, target_id in links.values_list("key", "kind", "target_id"):
            for pk in by_key[key]:
                found.setdefault(pk, set()).add(Target(TargetKind(kind), target_id))
    return found


def message_targets(using: str, channel_id: str, pks: Collection[int]) -> dict[int, set[Target]]:
    holders: list[tuple[int, str]] = []
    for part in chunked(sorted(pks)):
        people = m.Participant.objects.using(using).filter(
            channel_id=channel_id, valid=True, message_pk__in=part
        )
        holders.extend(people.exclude(key="").values_list("message_pk", "key"))
    return _linked(using, holders)


def event_targets(using: str, pks: Collection[int]) -> dict[int, set[Target]]:
    holders: list[tuple[int, str]] = []
    for part in chunked(sorted(pks)):
        people = m.Attendee.objects.using(using).filter(valid=True, event_pk__in=part)
        holders.extend(people.exclude(key="").values_list("event_pk", "key"))
    return _linked(using, holders)


def _orphan_copies(using: str, channel_id: str, pks: Collection[int]) -> dict[int, tuple[str, str]]:
    """The channel's copies among ``pks`` left without an association (what
    ``store_delete.collect`` deletes next): pk -> (Message-ID, thread)."""
    found: dict[int, tuple[str, str]] = {}
    for part in chunked(sorted(pks)):
        held = set(
            m.MessageCopy.objects.using(using)
            .filter(channel_id=channel_id, message_pk__in=part)
            .values_list("message_pk", flat=True)
        )
        still = m.MessageAssoc.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=sorted(held)
        )
        orphans = sorted(held - set(still.values_list("message_pk", flat=True)))
        rows = m.Message.objects.using(using).filter(id__in=orphans)
        found.update(
            (int(pk), (mid, thread))
            for pk, mid, thread in rows.values_list("id", "message_id", "thread_id")
        )
    return found


def _orphan_events(using: str, pks: Collection[int]) -> dict[int, tuple[str, Any]]:
    """Event rows among ``pks`` left without an association: pk -> (uid, recurrence id)."""
    found: dict[int, tuple[str, Any]] = {}
    for part in chunked(sorted(pks)):
        linked = m.EventAssoc.objects.using(using).filter(event_pk__in=part)
        orphans = sorted(set(part) - set(linked.values_list("event_pk", flat=True)))
        rows = m.Event.objects.using(using).filter(id__in=orphans)
        found.update(
            (int(pk), (uid, rid)) for pk, uid, rid in rows.values_list("id", "uid", "recurrence_id")
        )
    return found


def stored_fingerprints(using: str, pks: Collection[int]) -> dict[int, tuple[Any, ...]]:
    """``event_fingerprint`` of each stored event row among ``pks``."""
    found: dict[int, tuple[Any, ...]] = {}
    for part in chunked(sorted(pks)):
        people: dict[int, list[dict[str, Any]]] = {}
        attendees = m.Attendee.objects.using(using).filter(event_pk__in=part)
        for person in attendees.order_by("event_pk", "pos").values():
            people.setdefault(person["event_pk"], []).append(person)
        for row in m.Event.objects.using(using).filter(id__in=part).values():
            event = event_from_rows(as_row(row), [as_row(p) for p in people.get(row["id"], [])])
            found[row["id"]] = event_fingerprint(event)
    return found


def write_outbox(using: str, found: Sequence[HostEvent]) -> list[HostEvent]:
    """Insert events into the outbox inside the caller's transaction;
    returns them with their ids (numbered in order, under the outbox lock)."""
    if not found:
        return []
    if is_postgres(using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [OUTBOX_LOCK])
    rows = []
    for event in found:
        data = event.to_dict()
        for key in ("id", "type", "channel_id", "at"):
            del data[key]
        # ASCII JSON: any text survives any backend
        text = json.dumps(data, separators=(",", ":"))
        row = m.OutboxEvent(type=event.type, channel_id=event.channel_id, at=event.at, data=text)
        rows.append(row)
    outbox = m.OutboxEvent.objects.using(using)
    # ids are assigned in insertion order; read back the ones just written
    last = outbox.order_by("-id").values_list("id", flat=True).first() or 0
    outbox.bulk_create(rows)
    ids = list(outbox.filter(id__gt=last).order_by("id").values_list("id", flat=True))
    return [e.with_id(int(i)) for e, i in zip(found, ids[-len(found) :], strict=True)]


def _event(row: dict[str, Any]) -> HostEvent:
    data = json.loads(row["data"])
    data.update(id=row["id"], type=row["type"], channel_id=row["channel_id"])
    data["at"] = row["at"].isoformat()
    return HostEvent.from_dict(data)


class DjangoOutbox:
    """The ``Outbox`` of a ``DjangoStore``, a ``TransactionalOutbox``: a
    ``TransactionalSink`` gets the database alias, inside the transaction
    that moves the consumer's position.

    ``write`` opens a write transaction of the store; ``clock`` gives the
    aware UTC time for leases.
    """

    def __init__(
        self,
        using: str,
        write: Callable[[], AbstractContextManager[None]],
        read: Callable[[], AbstractContextManager[None]],
        clock: Callable[[], datetime],
    ) -> None:
        self.using = using
        self._write = write
        self._read = read
        self._clock = clock

    def pending(self, consumer: str, limit: int = 100) -> Sequence[HostEvent]:
        with self._read():
            return self._pending(consumer, limit)

    def ack(self, consumer: str, up_to: int) -> None:
        with self._write():
            self._advance(consumer, up_to)

    def position(self, consumer: str) -> int:
        with self._read():
            return self._position(consumer)

    def claim(self, consumer: str, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        consumers = m.OutboxConsumer.objects.using(self.using)
        with self._write():
            consumers.bulk_create([m.OutboxConsumer(name=consumer)], ignore_conflicts=True)
            free = Q(holder=holder) | Q(holder="") | Q(expires_at__lte=now)
            taken = consumers.filter(free, name=consumer).update(
                holder=holder, expires_at=now + ttl
            )
            return bool(taken)

    def release(self, consumer: str, holder: str) -> None:
        with self._write():
            m.OutboxConsumer.objects.using(self.using).filter(name=consumer, holder=holder).update(
                holder="", expires_at=None
            )

    def prune(self, up_to: int) -> int:
        with self._write():
            deleted, _ = m.OutboxEvent.objects.using(self.using).filter(id__lte=up_to).delete()
            return int(deleted)

    def deliver_once(self, consumer: str, sink: TransactionalSink[str], limit: int = 100) -> int:
        """Deliver the next events to ``sink.deliver_in`` (with the database
        alias) and move the position in the same transaction (the consumer's
        row is locked meanwhile, so concurrent calls deliver each event once)."""
        consumers = m.OutboxConsumer.objects.using(self.using)
        with self._write():
            consumers.bulk_create([m.OutboxConsumer(name=consumer)], ignore_conflicts=True)
            list(consumers.select_for_update().filter(name=consumer).values_list("name"))
            found = self._pending(consumer, limit)
            if not found:
                return 0
            sink.deliver_in(self.using, found)
            self._advance(consumer, found[-1].id)
            return len(found)

    def _pending(self, consumer: str, limit: int) -> list[HostEvent]:
        after = self._position(consumer)
        rows = m.OutboxEvent.objects.using(self.using).filter(id__gt=after).order_by("id")
        return [_event(row) for row in rows.values()[: max(limit, 0)]]

    def _position(self, consumer: str) -> int:
        found = m.OutboxConsumer.objects.using(self.using).filter(name=consumer)
        return int(found.values_list("position", flat=True).first() or 0)

    def _advance(self, consumer: str, up_to: int) -> None:
        consumers = m.OutboxConsumer.objects.using(self.using)
        consumers.bulk_create([m.OutboxConsumer(name=consumer)], ignore_conflicts=True)
        # never backwards
        consumers.filter(name=consumer).update(
            position=Case(When(position__gt=up_to, then=F("position")), default=up_to)
        )
