"""Host events: what a sync changed, for the host's UI, search index and hooks.

A store with events enabled turns each commit into ``HostEvent`` values:
``message.created`` / ``updated`` / ``deleted`` for a channel's copy of a
message, ``event.created`` / ``updated`` / ``deleted`` for a channel's copy of
a meeting (one per iCalendar UID and recurrence id), and
``channel.state_changed`` when a channel's status changes. Events carry ids,
the channel and the CRM records touched, never content: a host reads content
through the store with a viewer, so visibility still applies.

Two ways to receive them:

- an ``EventSink`` called in-process after each write commits
  (``SqlStore(url, on_events=sink)``, ``MemoryStore(on_events=sink)``):
  simple, but not crash-safe (a crash after the commit and before the call
  loses those events);
- a transactional outbox (``SqlStore(url, outbox=True)``,
  ``MemoryStore(outbox=True)``): events are written in the same transaction
  as the data, and an ``OutboxRelay`` delivers them in id order, at least
  once, or exactly once when the sink writes to the same database
  (``TransactionalSink``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from .records import ChannelStatus, Target, TargetKind

__all__ = [
    "CHANNEL_STATE_CHANGED",
    "EVENT_CREATED",
    "EVENT_DELETED",
    "EVENT_TYPES",
    "EVENT_UPDATED",
    "MESSAGE_CREATED",
    "MESSAGE_DELETED",
    "MESSAGE_UPDATED",
    "EventSink",
    "HostEvent",
    "Outbox",
    "OutboxRelay",
    "TransactionalOutbox",
    "TransactionalSink",
]

log = logging.getLogger("commlink.events")

MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_DELETED = "message.deleted"
EVENT_CREATED = "event.created"
EVENT_UPDATED = "event.updated"
EVENT_DELETED = "event.deleted"
CHANNEL_STATE_CHANGED = "channel.state_changed"
EVENT_TYPES = frozenset(
    {
        MESSAGE_CREATED,
        MESSAGE_UPDATED,
        MESSAGE_DELETED,
        EVENT_CREATED,
        EVENT_UPDATED,
        EVENT_DELETED,
        CHANNEL_STATE_CHANGED,
    }
)

#: The most CRM records one event names (a message to thousands of linked
#: people still yields a bounded event; ``targets_truncated`` says so).
MAX_TARGETS = 200


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}")
    return value.astimezone(timezone.utc)


def _targets(value: Sequence[Target]) -> tuple[Target, ...]:
    return tuple(sorted(set(value), key=lambda t: (t.kind.value, t.id)))


@attrs.frozen(slots=True)
class HostEvent:
    """One change a host may react to. No message or event content.

    ``id`` is the outbox sequence number (strictly increasing in commit
    order; 0 for an event not persisted, as given to an in-process sink).
    ``type`` is one of ``EVENT_TYPES``. ``channel_id`` is the channel whose
    copy changed; ``scope_id`` and ``provider_id`` name the folder or
    calendar and the provider's id there that caused the change (empty for
    ``channel.state_changed``).

    Messages: ``message_id`` is the stored Message-ID (the key of
    ``Store.thread``) and ``thread_id`` its thread. Meetings: ``uid`` is the
    iCalendar UID and ``recurrence_id`` the occurrence (``None`` for a
    series or a single meeting). ``targets`` are the CRM records linked to
    the participants or attendees (after the change; before it for a
    deletion), sorted, at most ``MAX_TARGETS``.

    State changes: ``status`` and ``previous`` (``None`` for a channel seen
    for the first time) and ``error``, the channel's ``last_error`` (already
    redacted by the sync).
    """

    type: str = attrs.field(validator=attrs.validators.in_(EVENT_TYPES))
    channel_id: str
    at: datetime = attrs.field(converter=_utc)
    id: int = 0
    scope_id: str = ""
    provider_id: str = ""
    message_id: str = ""
    thread_id: str = ""
    uid: str = ""
    recurrence_id: datetime | None = None
    targets: tuple[Target, ...] = attrs.field(default=(), converter=_targets)
    targets_truncated: bool = False
    status: ChannelStatus | None = None
    previous: ChannelStatus | None = None
    error: str = ""

    def with_id(self, event_id: int) -> HostEvent:
        """This event as persisted under ``event_id``."""
        return attrs.evolve(self, id=event_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        return {
            "id": self.id,
            "type": self.type,
            "channel_id": self.channel_id,
            "at": self.at.isoformat(),
            "scope_id": self.scope_id,
            "provider_id": self.provider_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "uid": self.uid,
            "recurrence_id": self.recurrence_id.isoformat() if self.recurrence_id else None,
            "targets": [[t.kind.value, t.id] for t in self.targets],
            "targets_truncated": self.targets_truncated,
            "status": self.status.value if self.status else None,
            "previous": self.previous.value if self.previous else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostEvent:
        """The event ``to_dict`` wrote."""
        rid = data.get("recurrence_id")
        status = data.get("status")
        previous = data.get("previous")
        return cls(
            id=int(data.get("id", 0)),
            type=str(data["type"]),
            channel_id=str(data["channel_id"]),
            at=datetime.fromisoformat(str(data["at"])),
            scope_id=str(data.get("scope_id", "")),
            provider_id=str(data.get("provider_id", "")),
            message_id=str(data.get("message_id", "")),
            thread_id=str(data.get("thread_id", "")),
            uid=str(data.get("uid", "")),
            recurrence_id=datetime.fromisoformat(str(rid)) if rid else None,
            targets=tuple(
                Target(TargetKind(str(kind)), str(tid)) for kind, tid in data.get("targets", ())
            ),
            targets_truncated=bool(data.get("targets_truncated", False)),
            status=ChannelStatus(status) if status else None,
            previous=ChannelStatus(previous) if previous else None,
            error=str(data.get("error", "")),
        )


@runtime_checkable
class EventSink(Protocol):
    """Receives host events, in order. Hosts implement it."""

    def deliver(self, events: Sequence[HostEvent]) -> None:
        """Handle ``events``; raising means "not delivered, try again"."""
        ...


C_contra = TypeVar("C_contra", contravariant=True)


@runtime_checkable
class TransactionalSink(Protocol[C_contra]):
    """A sink that writes to the store's own database.

    ``deliver_in`` runs inside the outbox's transaction (for ``SqlStore`` a
    SQLAlchemy ``Connection``): what it writes commits together with the
    outbox's bookkeeping, so each event takes effect exactly once.
    """

    def deliver_in(self, connection: C_contra, events: Sequence[HostEvent]) -> None: ...


class Outbox(Protocol):
    """Persisted host events and each consumer's position in them.

    A consumer is a named reader (a search index, a webhook relay); each has
    its own position, the highest event id it acknowledged. Events are read
    in id order; ids increase in commit order, so a position never skips an
    event committed later.
    """

    def pending(self, consumer: str, limit: int = 100) -> Sequence[HostEvent]:
        """Up to ``limit`` events after ``consumer``'s position, in id order."""
        ...

    def ack(self, consumer: str, up_to: int) -> None:
        """Move ``consumer``'s position to ``up_to`` (never backwards)."""
        ...

    def position(self, consumer: str) -> int:
        """The highest event id ``consumer`` acknowledged (0 for none)."""
        ...

    def claim(self, consumer: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew the lease on ``consumer`` so one worker delivers
        for it at a time; ``False`` while another holder's lease runs."""
        ...

    def release(self, consumer: str, holder: str) -> None:
        """Give up ``holder``'s lease on ``consumer``."""
        ...

    def prune(self, up_to: int) -> int:
        """Delete events with ids up to ``up_to``; how many went."""
        ...


class TransactionalOutbox(Outbox, Protocol):
    """An outbox that can deliver and acknowledge in one transaction."""

    def deliver_once(self, consumer: str, sink: TransactionalSink[Any], limit: int = 100) -> int:
        """Deliver the next events to ``sink.deliver_in`` and move the
        position in the same transaction; how many were delivered."""
        ...


@attrs.define
class OutboxRelay:
    """Delivers an outbox's events to a sink, in order.

    ``drain`` delivers until nothing is pending; ``run`` keeps draining until
    ``stop`` is set. A plain ``EventSink`` gets every event at least once: a
    crash after ``deliver`` and before the acknowledgement delivers that
    batch again, with the same ids, so a sink that remembers the highest id
    it applied skips them. A ``TransactionalSink`` on an outbox that
    supports it gets each event exactly once.

    Several relays for one consumer may run: a lease (``lease``, renewed on
    each batch) lets one deliver at a time.
    """

    outbox: Outbox
    sink: EventSink | TransactionalSink[Any]
    consumer: str = "default"
    batch: int = 100
    lease: timedelta = timedelta(minutes=5)
    holder: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def drain(self, max_batches: int | None = None) -> int:
        """Deliver pending events; how many were delivered. Returns 0 when
        another worker holds the consumer's lease."""
        if not self.outbox.claim(self.consumer, self.holder, self.lease):
            return 0
        delivered = 0
        try:
            batches = 0
            while max_batches is None or batches < max_batches:
                count = self._one_batch()
                delivered += count
                batches += 1
                if count < self.batch:
                    break
                if not self.outbox.claim(self.consumer, self.holder, self.lease):
                    break
        finally:
            self.outbox.release(self.consumer, self.holder)
        return delivered

    def run(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Drain every ``interval`` seconds until ``stop`` is set. A failing
        sink is logged (or given to ``on_error``) and retried."""
        while not stop.is_set():
            try:
                self.drain()
            except Exception as exc:  # the sink is the host's code
                if on_error is not None:
                    on_error(exc)
                else:
                    log.warning("delivering host events failed: %s", type(exc).__name__)
            stop.wait(interval)

    def _one_batch(self) -> int:
        sink = self.sink
        deliver_once = getattr(self.outbox, "deliver_once", None)
        if deliver_once is not None and isinstance(sink, TransactionalSink):
            count: int = deliver_once(self.consumer, sink, self.batch)
            return count
        if not isinstance(sink, EventSink):
            raise TypeError(
                f"{type(sink).__name__} has no deliver() and the outbox no deliver_once()"
            )
        events = self.outbox.pending(self.consumer, self.batch)
        if not events:
            return 0
        sink.deliver(events)
        self.outbox.ack(self.consumer, events[-1].id)
        return len(events)
