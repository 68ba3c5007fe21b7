"""Host events of ``MemoryStore``: the change between two states, and the
in-memory outbox.

A write of the memory store builds a new ``State`` and swaps it in; the
events are the difference of the old and the new state's copies for the
channels written, appended to the outbox in the same swap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..events import (
    EVENT_CREATED,
    EVENT_DELETED,
    EVENT_UPDATED,
    MESSAGE_CREATED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    HostEvent,
)
from ..model import Address
from ..records import Link, SyncBatch, Target
from .memory_state import AssocKey, State
from .outbox import EventLog, event_fingerprint, targets_of

__all__ = ["MemoryOutbox", "state_events"]


def _targets(state: State, addresses: Iterable[Address]) -> dict[str, Any]:
    links: set[Link] = set()
    for address in addresses:
        if address.valid and address.key:
            links.update(state.links.get(address.key, ()))
    targets, truncated = targets_of(Target(link.kind, link.id) for link in links)
    return {"targets": targets, "targets_truncated": truncated}


def _places(
    assocs: Mapping[AssocKey, object], channels: Collection[str]
) -> dict[Any, tuple[str, str]]:
    """(scope, provider id) of one association per record (the first in key order)."""
    found: dict[Any, tuple[str, str]] = {}
    for (ch, scope, pid), assoc in sorted(assocs.items(), key=lambda item: item[0]):
        if ch not in channels:
            continue
        for record in _records_of(assoc, ch):
            found.setdefault(record, (scope, pid))
    return found


def _records_of(assoc: object, channel_id: str) -> list[Any]:
    message_id = getattr(assoc, "message_id", None)
    if message_id is not None:
        return [(message_id, channel_id)]
    return [(channel_id, key) for key in getattr(assoc, "keys", ())]


def state_events(
    before: State,
    after: State,
    channels: Collection[str],
    at: datetime,
    batch: SyncBatch | None = None,
) -> list[HostEvent]:
    """The message and meeting events of going from ``before`` to ``after``
    in ``channels``. ``batch`` (when the change is a commit) names the
    scope and provider id of what it wrote."""
    log = EventLog(at)
    places_after = _places(after.message_assocs, channels)
    places_after.update(_places(after.event_assocs, channels))
    places_before = _places(before.message_assocs, channels)
    places_before.update(_places(before.event_assocs, channels))
    written: dict[Any, tuple[str, str]] = {}
    if batch is not None:
        for record in batch.messages:
            written[(record.message.message_id, batch.channel_id)] = (
                batch.scope_id,
                record.message.provider_id,
            )
        for event_record in batch.events:
            event = event_record.event
            written[(batch.channel_id, (event.uid, event.recurrence_id))] = (
                batch.scope_id,
                event.provider_id,
            )
        for pid in batch.deleted:
            assoc_key = (batch.channel_id, batch.scope_id, pid)
            for assoc_table in (before.message_assocs, before.event_assocs):
                assoc = assoc_table.get(assoc_key)
                for record in _records_of(assoc, batch.channel_id) if assoc else ():
                    written[record] = (batch.scope_id, pid)

    def place(record: Any, places: Mapping[Any, tuple[str, str]]) -> dict[str, str]:
        scope, pid = written.get(record) or places.get(record) or ("", "")
        return {"scope_id": scope, "provider_id": pid}

    copy_keys = sorted(
        {k for k in before.copies if k[1] in channels}
        | {k for k in after.copies if k[1] in channels}
    )
    for key in copy_keys:
        old, new = before.copies.get(key), after.copies.get(key)
        if old == new:
            continue
        message_id, channel_id = key
        if new is None:
            assert old is not None
            log.add(
                MESSAGE_DELETED,
                channel_id,
                message_id=message_id,
                thread_id=before.threads.get(message_id, ""),
                **place(key, places_before),
                **_targets(before, (p.address for p in old.participants)),
            )
            continue
        log.add(
            MESSAGE_CREATED if old is None else MESSAGE_UPDATED,
            channel_id,
            message_id=message_id,
            thread_id=after.threads.get(message_id, ""),
            **place(key, places_after),
            **_targets(after, (p.address for p in new.participants)),
        )
    event_keys = sorted(
        {k for k in before.events if k[0] in channels}
        | {k for k in after.events if k[0] in channels},
        key=lambda k: (k[0], k[1][0], k[1][1].isoformat() if k[1][1] else ""),
    )
    for event_key in event_keys:
        old_event, new_event = before.events.get(event_key), after.events.get(event_key)
        if (
            old_event is not None
            and new_event is not None
            and event_fingerprint(old_event) == event_fingerprint(new_event)
        ):
            continue
        event_channel, (uid, recurrence_id) = event_key
        if new_event is None:
            assert old_event is not None
            log.add(
                EVENT_DELETED,
                event_channel,
                uid=uid,
                recurrence_id=recurrence_id,
                **place(event_key, places_before),
                **_targets(before, old_event.addresses()),
            )
            continue
        log.add(
            EVENT_CREATED if old_event is None else EVENT_UPDATED,
            event_channel,
            uid=uid,
            recurrence_id=recurrence_id,
            **place(event_key, places_after),
            **_targets(after, new_event.addresses()),
        )
    return log.events


class MemoryOutbox:
    """The ``Outbox`` of a ``MemoryStore``: events in a list, consumer
    positions and leases in dicts. ``clock`` gives the aware UTC time."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._lock = threading.RLock()
        self._events: list[HostEvent] = []
        self._next_id = 1
        self._positions: dict[str, int] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._clock = clock

    def append(self, events: Sequence[HostEvent]) -> list[HostEvent]:
        """Persist ``events``; returns them with their ids."""
        with self._lock:
            stored = [e.with_id(self._next_id + n) for n, e in enumerate(events)]
            self._next_id += len(stored)
            self._events.extend(stored)
            return stored

    def pending(self, consumer: str, limit: int = 100) -> Sequence[HostEvent]:
        with self._lock:
            after = self._positions.get(consumer, 0)
            return [e for e in self._events if e.id > after][: max(limit, 0)]

    def ack(self, consumer: str, up_to: int) -> None:
        with self._lock:
            self._positions[consumer] = max(self._positions.get(consumer, 0), up_to)

    def position(self, consumer: str) -> int:
        with self._lock:
            return self._positions.get(consumer, 0)

    def claim(self, consumer: str, holder: str, ttl: timedelta) -> bool:
        with self._lock:
            now = self._clock()
            current = self._leases.get(consumer)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._leases[consumer] = (holder, now + ttl)
            return True

    def release(self, consumer: str, holder: str) -> None:
        with self._lock:
            current = self._leases.get(consumer)
            if current is not None and current[0] == holder:
                del self._leases[consumer]

    def prune(self, up_to: int) -> int:
        with self._lock:
            kept = [e for e in self._events if e.id > up_to]
            gone = len(self._events) - len(kept)
            self._events = kept
            return gone
