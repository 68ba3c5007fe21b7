"""Host events of a store's rarer writes (blocklist deletions, a lowered
visibility, erasure).

These writes run deep in the privacy code; instead of threading an event
log through it, a store takes a ``Snapshot`` of the copies the write may
touch before it, and compares them with the same copies after it, inside
the same transaction (``snapshot_changes``).

Pure: each reference store reads the rows and the targets they link to,
then calls these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..events import EVENT_DELETED, EVENT_UPDATED, MESSAGE_DELETED, MESSAGE_UPDATED, HostEvent
from ..records import Target
from .outbox import EventLog, add_message_event, targets_of

__all__ = [
    "CopyKey",
    "CopyState",
    "CopyTargets",
    "EventState",
    "EventTargets",
    "Snapshot",
    "copy_targets",
    "snapshot_changes",
]

CopyKey = tuple[str, int]  # (channel id, message pk)
CopyState = tuple[str, str, str]  # (Message-ID, thread, digest)
EventState = tuple[str, str, Any, tuple[Any, ...]]  # (channel, uid, rid, print)
#: The targets of a channel's copies of messages, by message pk.
CopyTargets = Callable[[str, list[int]], Mapping[int, set[Target]]]
#: The targets of events, by event pk.
EventTargets = Callable[[Collection[int]], Mapping[int, set[Target]]]


@attrs.define
class Snapshot:
    """The copies a write may change, as they were before it."""

    copies: dict[CopyKey, CopyState]
    events: dict[int, EventState]
    message_targets: dict[CopyKey, set[Target]]
    event_targets: dict[int, set[Target]]

    @classmethod
    def of(
        cls,
        copies: dict[CopyKey, CopyState],
        events: dict[int, EventState],
        message_targets: CopyTargets,
        event_targets: EventTargets,
    ) -> Snapshot:
        """The snapshot of ``copies`` and ``events`` with their targets."""
        targets = copy_targets(copies, message_targets)
        return cls(copies, events, targets, dict(event_targets(events)))


def copy_targets(copies: Collection[CopyKey], targets: CopyTargets) -> dict[CopyKey, set[Target]]:
    """The targets of ``copies``, asked of ``targets`` one channel at a time."""
    found: dict[CopyKey, set[Target]] = {}
    for ch in sorted({ch for ch, _ in copies}):
        pks = [pk for c, pk in copies if c == ch]
        found.update(((ch, pk), t) for pk, t in targets(ch, pks).items())
    return found


def snapshot_changes(
    before: Snapshot,
    copies: Mapping[CopyKey, CopyState],
    events: Mapping[int, EventState],
    message_targets: CopyTargets,
    event_targets: EventTargets,
    at: datetime,
) -> list[HostEvent]:
    """Events for the snapshot's copies that a write since deleted or changed.

    ``copies`` and ``events`` are those of the snapshot still stored after
    the write; the targets of changed ones are asked of ``message_targets``
    and ``event_targets`` (deleted ones keep those of the snapshot)."""
    log = EventLog(at)
    changed = {k for k, v in copies.items() if v[2] != before.copies[k][2]}
    after_targets = copy_targets(changed, message_targets)
    for key in sorted(before.copies):
        mid, thread, _digest = before.copies[key]
        if key not in copies:
            add_message_event(
                log, MESSAGE_DELETED, key[0], before.message_targets.get(key), mid, thread
            )
        elif key in changed:
            add_message_event(log, MESSAGE_UPDATED, key[0], after_targets.get(key), mid, thread)
    updated = {pk for pk, v in events.items() if v[3] != before.events[pk][3]}
    updated_targets = event_targets(updated)
    for pk in sorted(before.events):
        channel_id, uid, rid, _print = before.events[pk]
        if pk not in events:
            kind, named = EVENT_DELETED, before.event_targets.get(pk, set())
        elif pk in updated:
            kind, named = EVENT_UPDATED, updated_targets.get(pk, set())
        else:
            continue
        found, cut = targets_of(named)
        log.add(kind, channel_id, uid=uid, recurrence_id=rid, targets=found, targets_truncated=cut)
    return log.events
