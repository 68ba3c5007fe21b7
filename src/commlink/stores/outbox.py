"""What the reference stores share for host events (see ``commlink.events``).

``EventLog`` collects the events of one write, ``event_fingerprint`` says
whether a channel's copy of a meeting changed, ``targets_of`` turns address
links into the bounded, sorted ``targets`` of an event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..events import (
    CHANNEL_STATE_CHANGED,
    MAX_TARGETS,
    EventSink,
    HostEvent,
)
from ..model import Event
from ..records import ChannelState, Target

__all__ = [
    "EventLog",
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
