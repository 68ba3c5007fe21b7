"""What the reference stores share for host events (see ``commlink.events``).

``EventLog`` collects the events of one write, ``ChangeCollector`` turns
what a write path reports into them, ``event_fingerprint`` says
whether a channel's copy of a meeting changed, ``targets_of`` turns address
links into the bounded, sorted ``targets`` of an event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..events import (
    CHANNEL_STATE_CHANGED,
    EVENT_CREATED,
    EVENT_DELETED,
    EVENT_UPDATED,
    MAX_TARGETS,
    MESSAGE_CREATED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    EventSink,
    HostEvent,
)
from ..model import Event
from ..records import ChannelState, Target

__all__ = [
    "ChangeCollector",
    "EventLog",
    "add_message_event",
    "deliver_after_commit",
    "event_fingerprint",
    "state_change",
    "targets_of",
]


def event_fingerprint(event: Event) -> tuple[Any, ...]:
    """What a channel's stored copy of ``event`` holds: two copies with the
    same fingerprint are the same to a host (the provider id and parse
    warnings are not kept on the copy)."""
    return attrs.astuple(
        attrs.evolve(event, provider_id="", warnings=()),
        recurse=False,
    )


def targets_of(found: Iterable[Target]) -> tuple[tuple[Target, ...], bool]:
    """Sorted, distinct targets, at most ``MAX_TARGETS``; and whether any
    were left out."""
    distinct = sorted(set(found), key=lambda t: (t.kind.value, t.id))
    return tuple(distinct[:MAX_TARGETS]), len(distinct) > MAX_TARGETS


def state_change(
    previous: ChannelState | None, state: ChannelState, at: datetime
) -> HostEvent | None:
    """``channel.state_changed`` when ``state`` changes the channel's status."""
    if previous is not None and previous.status is state.status:
        return None
    return HostEvent(
        type=CHANNEL_STATE_CHANGED,
        channel_id=state.channel_id,
        at=at,
        status=state.status,
        previous=None if previous is None else previous.status,
        error=state.last_error,
    )


@attrs.define
class EventLog:
    """The host events of one write, in the order they happened."""

    at: datetime
    events: list[HostEvent] = attrs.Factory(list)

    def add(self, type_: str, channel_id: str, **fields: Any) -> None:
        self.events.append(HostEvent(type=type_, channel_id=channel_id, at=self.at, **fields))


#: (type, pk, Message-ID or UID, thread or recurrence id, provider id)
_Change = tuple[str, int, str, Any, str]
#: CRM records linked to the participants (or attendees) of stored rows, by pk
TargetsOf = Callable[[set[int]], Mapping[int, set[Target]]]


@attrs.define
class ChangeCollector:
    """Collects the host events of one write.

    The write path reports what it rewrote (``message`` / ``event``) and
    which provider ids it removed (``removed_messages`` /
    ``removed_events``); before the garbage collection, the store finds the
    channel's copies left without an association and calls ``emit``, which
    turns that into events: targets after the change for what was written,
    and ``*.deleted`` for each copy gone (with its targets before).
    """

    channel_id: str
    scope_id: str
    log: EventLog
    _messages: list[_Change] = attrs.Factory(list)
    _events: list[_Change] = attrs.Factory(list)
    _removed_messages: dict[int, str] = attrs.Factory(dict)
    _removed_events: dict[int, str] = attrs.Factory(dict)

    def message(self, created: bool, pk: int, message_id: str, thread_id: str, pid: str) -> None:
        kind = MESSAGE_CREATED if created else MESSAGE_UPDATED
        self._messages.append((kind, pk, message_id, thread_id, pid))

    def event(self, created: bool, pk: int, event: Event) -> None:
        kind = EVENT_CREATED if created else EVENT_UPDATED
        self._events.append((kind, pk, event.uid, event.recurrence_id, event.provider_id))

    def removed_messages(self, rows: Iterable[tuple[Any, Any]]) -> None:
        """``(message pk, provider id)`` of message associations the write removed."""
        for pk, pid in rows:
            self._removed_messages.setdefault(int(pk), str(pid))

    def removed_events(self, rows: Iterable[tuple[Any, Any]]) -> None:
        """``(event pk, provider id)`` of event associations the write removed."""
        for pk, pid in rows:
            self._removed_events.setdefault(int(pk), str(pid))

    def emit(
        self,
        gone_messages: Mapping[int, tuple[str, str]],
        gone_events: Mapping[int, tuple[str, Any]],
        message_targets: TargetsOf,
        event_targets: TargetsOf,
    ) -> None:
        """Add the write's events; ``gone_*`` are the copies left without an
        association (Message-ID and thread, or UID and recurrence id)."""
        written_m = [c for c in self._messages if c[1] not in gone_messages]
        written_e = [c for c in self._events if c[1] not in gone_events]
        m_targets = message_targets({c[1] for c in written_m} | set(gone_messages))
        e_targets = event_targets({c[1] for c in written_e} | set(gone_events))
        for kind, pk, mid, thread, pid in written_m:
            self._add(kind, pid, m_targets.get(pk), message_id=mid, thread_id=thread)
        for kind, pk, uid, rid, pid in written_e:
            self._add(kind, pid, e_targets.get(pk), uid=uid, recurrence_id=rid)
        created = {c[1] for c in self._messages if c[0] == MESSAGE_CREATED}
        for pk, (mid, thread) in sorted(gone_messages.items()):
            if pk not in created:  # written and dropped by one write: never there
                pid = self._removed_messages.get(pk, "")
                fields = {"message_id": mid, "thread_id": thread}
                self._add(MESSAGE_DELETED, pid, m_targets.get(pk), **fields)
        created = {c[1] for c in self._events if c[0] == EVENT_CREATED}
        for pk, (uid, rid_at) in sorted(gone_events.items()):
            if pk not in created:
                pid = self._removed_events.get(pk, "")
                fields = {"uid": uid, "recurrence_id": rid_at}
                self._add(EVENT_DELETED, pid, e_targets.get(pk), **fields)

    def _add(self, kind: str, pid: str, targets: set[Target] | None, **fields: Any) -> None:
        found, truncated = targets_of(targets or ())
        self.log.add(
            kind,
            self.channel_id,
            scope_id=self.scope_id,
            provider_id=pid,
            targets=found,
            targets_truncated=truncated,
            **fields,
        )


def add_message_event(
    log: EventLog,
    kind: str,
    channel_id: str,
    targets: Collection[Target] | None,
    message_id: str,
    thread_id: str,
) -> None:
    """Add a message event whose targets are capped like every event's."""
    found, cut = targets_of(targets or ())
    log.add(
        kind,
        channel_id,
        message_id=message_id,
        thread_id=thread_id,
        targets=found,
        targets_truncated=cut,
    )


def deliver_after_commit(
    sink: EventSink | None, events: Sequence[HostEvent], on_error: Callable[[Exception], None]
) -> None:
    """Call an in-process sink after the write committed; its failure is
    reported to ``on_error`` and never undoes or fails the write."""
    if sink is None or not events:
        return
    try:
        sink.deliver(events)
    except Exception as exc:  # the host's code: the write stands either way
        on_error(exc)
