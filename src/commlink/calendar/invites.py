"""Meeting invitations carried by email (iTIP, RFC 5546), as events.

A channel with ``sync_invites`` reads the ``text/calendar`` parts of the
messages it keeps. ``REQUEST`` and ``PUBLISH`` (or no method) add or update
the meeting; ``CANCEL`` marks it cancelled. Each message's invitation is
stored as one calendar object under ``invite_id(message.provider_id)``, so
it lives and dies with its message. Stores keep the most recent copy of an
event (by SEQUENCE, then update time), so a later update or cancellation
wins over an earlier invitation, whichever order they are synced in.

Only the organiser may change a meeting: an invitation whose events name
an ORGANIZER is applied only when the message comes from that address
(``From``, or ``Sender`` for a delegate), and never when the receiving
server says the From domain did not send it (``Message.sender_unverified``).
Anyone who knows a meeting's UID could otherwise rewrite or cancel it with a
higher SEQUENCE.

``REPLY`` (an attendee's answer) and the other methods are not applied:
they change the organiser's own calendar, which a calendar channel syncs.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..model import Event, EventStatus, Message, Role
from .ical import parse_calendar, skipped_uids

__all__ = [
    "INVITE_CALENDAR",
    "INVITE_SUFFIX",
    "MAX_INVITATION_EVENTS",
    "Invitation",
    "invitation",
    "invite_id",
]

#: Appended to a message's provider id to name its invitation.
INVITE_SUFFIX = "#invite"
#: The ``calendar_id`` of events read from invitations.
INVITE_CALENDAR = "invitations"

_APPLIED = frozenset({"", "REQUEST", "PUBLISH", "CANCEL"})
#: Events one message's invitation may bring (a series with its exceptions
#: needs a few dozen); the first ones are kept, each with the warning
#: ``invitation-truncated:<total>``.
MAX_INVITATION_EVENTS = 500


def invite_id(provider_id: str) -> str:
    """The provider id under which a message's invitation is stored."""
    return provider_id + INVITE_SUFFIX


@attrs.frozen(slots=True)
class Invitation:
    """The events of a message's invitation, or why there are none.

    ``problem`` is set when the message has calendar parts that yield no
    usable event; ``ignored`` names methods that were read but not applied.
    """

    provider_id: str
    events: tuple[Event, ...] = ()
    problem: str = ""
    ignored: tuple[str, ...] = ()


def invitation(message: Message) -> Invitation | None:
    """The invitation in a message's calendar parts; ``None`` when it has none."""
    if not message.calendar_parts:
        return None
    pid = invite_id(message.provider_id)
    found: dict[tuple[str, object], Event] = {}
    ignored: list[str] = []
    problems: list[str] = []
    for part in message.calendar_parts:
        result = parse_calendar(part, provider_id=pid, calendar_id=INVITE_CALENDAR)
        method = result.method
        if method not in _APPLIED:
            ignored.append(method)
            continue
        if not result.events:
            problems.extend(sorted(set(skipped_uids(result).values())) or result.warnings)
        for event in _with_method(result.events, method):
            key = (event.uid, event.recurrence_id)
            if key not in found or _newer(event, found[key]):
                found[key] = event
    events = tuple(found.values())
    if len(events) > MAX_INVITATION_EVENTS:  # one message must not fill a calendar
        note = f"invitation-truncated:{len(events)}"
        events = tuple(
            attrs.evolve(e, warnings=(*e.warnings, note)) for e in events[:MAX_INVITATION_EVENTS]
        )
    stranger = _not_from_organiser(message, events)
    if events and message.sender_unverified:
        stranger = "invitation from a sender the receiving server did not verify"
    if stranger:
        return Invitation(pid, (), stranger[:500], tuple(dict.fromkeys(ignored)))
    problem = ""
    if not events and problems:
        problem = "unusable invitation: " + ", ".join(dict.fromkeys(problems))
    elif not events and not ignored:
        problem = "unusable invitation: no events"
    return Invitation(pid, events, problem[:500], tuple(dict.fromkeys(ignored)))


def _not_from_organiser(message: Message, events: Sequence[Event]) -> str:
    """Why the message may not change these events ("" when it may)."""
    organisers = {e.organizer.address.key for e in events if e.organizer is not None}
    organisers.discard("")
    if not organisers:
        return ""
    senders = {p.address.key for p in message.participants if p.role in (Role.FROM, Role.SENDER)}
    if senders & organisers:
        return ""
    return (
        f"invitation not sent by its organiser ({', '.join(sorted(organisers))}); "
        f"from {', '.join(sorted(senders)) or 'no sender'}"
    )


def _with_method(events: Sequence[Event], method: str) -> Sequence[Event]:
    if method != "CANCEL":
        return events
    return [
        e if e.status is EventStatus.CANCELLED else attrs.evolve(e, status=EventStatus.CANCELLED)
        for e in events
    ]


def _newer(candidate: Event, current: Event) -> bool:
    return (candidate.sequence, candidate.updated or candidate.start) > (
        current.sequence,
        current.updated or current.start,
    )
