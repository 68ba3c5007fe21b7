"""The policy pipeline the sync engine runs once per batch.

decide -> direction -> minimise -> create contacts -> match -> thread.
Per batch the directory is asked at most once per method: one people
lookup, at most one ``create_contacts``, one company and one opportunity
lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import attrs

from ..model import Channel, ChannelSettings, Direction, Event, Folder, Message
from ..ports import Directory
from ..records import (
    AddressLinks,
    Decision,
    EventRecord,
    MessageRecord,
    NewContact,
    PersonRef,
    Skip,
)
from .contacts import contacts_to_create, event_contacts_to_create
from .filters import decide_event, decide_with, direction_with, rules_for
from .matching import match_keys
from .skips import minimise_skip
from .threads import assign_threads, thread_node
from .visibility import minimise_event, minimise_message

__all__ = ["EventEvaluation", "Evaluation", "evaluate", "evaluate_events"]


@attrs.frozen(slots=True)
class Evaluation:
    """What the policy made of a batch of messages.

    ``records`` are the kept messages (minimised, threaded), ``skipped``
    the others with their reasons, ``links`` the address links of every
    valid participant of kept messages, ``merges`` stored threads joined
    (old id -> kept id) and ``created`` the people created, by address key.
    """

    records: tuple[MessageRecord, ...] = ()
    skipped: tuple[Skip, ...] = ()
    links: tuple[AddressLinks, ...] = ()
    merges: tuple[tuple[str, str], ...] = ()
    created: tuple[tuple[str, PersonRef], ...] = ()


@attrs.frozen(slots=True)
class EventEvaluation:
    """What the policy made of a batch of events (as ``Evaluation``, without threads)."""

    records: tuple[EventRecord, ...] = ()
    skipped: tuple[Skip, ...] = ()
    links: tuple[AddressLinks, ...] = ()
    created: tuple[tuple[str, PersonRef], ...] = ()


def evaluate(
    messages: Sequence[Message],
    channel: Channel,
    folders: Mapping[str, Folder],
    directory: Directory,
    known_threads: Mapping[str, str | frozenset[str]],
    claimed_threads: Collection[str] = frozenset(),
) -> Evaluation:
    """Run the policy over one batch of a mail channel.

    ``known_threads`` maps ids to the stored threads the batch may join, and
    ``claimed_threads`` names ids that threads it may not join could carry:
    ``threads.joinable_threads`` and ``ThreadLinks.claimed`` of the store's
    ``thread_links`` answer for ``threads.lookup_ids(messages, channel.id)``.
    """
    settings = channel.settings
    rules = rules_for(settings)
    visibility = settings.visibility
    kept: list[Message] = []
    directions: list[Direction] = []  # of the kept messages, in order
    skipped: list[Skip] = []
    keys: set[str] = set()
    for message in messages:
        verdict = decide_with(message, settings, rules, folders)
        if verdict.keep:
            stored = minimise_message(message, visibility)
            kept.append(stored)
            directions.append(direction_with(message, rules))
            keys.update(p.address.key for p in stored.participants if p.address.valid)
        else:
            skipped.append(_message_skip(message, verdict, settings))

    keys.discard("")
    ordered = sorted(keys)
    people, created = _people(
        ordered,
        directory,
        lambda known: contacts_to_create(zip(kept, directions, strict=True), settings, known),
    )
    links = match_keys(ordered, directory, rules.org, people=people)
    threads = assign_threads(kept, known_threads, channel.id, claimed_threads)
    by_provider_id = threads.by_provider_id
    records = tuple(
        MessageRecord(
            message=m,
            thread_id=by_provider_id[m.provider_id],
            direction=d,
            thread_keys=(thread_node(channel.id, m.thread_hint),) if m.thread_hint else (),
        )
        for m, d in zip(kept, directions, strict=True)
    )
    return Evaluation(
        records=records,
        skipped=tuple(skipped),
        links=links,
        merges=threads.merges,
        created=created,
    )


def evaluate_events(
    events: Sequence[Event], channel: Channel, directory: Directory
) -> EventEvaluation:
    """Run the policy over one batch of a calendar channel."""
    settings = channel.settings
    kept: list[Event] = []
    skipped: list[Skip] = []
    # A calendar object (a series and its overrides) is judged as one: by its
    # master, else its first event; an override never outlives its series.
    objects: dict[str, list[Event]] = {}
    for event in events:
        objects.setdefault(event.provider_id, []).append(event)
    for group in objects.values():
        lead = next((e for e in group if e.recurrence_id is None), group[0])
        verdict = decide_event(lead, settings)
        if verdict.keep:
            kept.extend(minimise_event(e, settings.visibility) for e in group)
        else:
            skipped.append(_event_skip(lead, verdict, settings))

    ordered = sorted({a.key for e in kept for a in e.addresses() if a.valid and a.key})
    people, created = _people(
        ordered,
        directory,
        lambda known: event_contacts_to_create(kept, settings, known),
    )
    links = match_keys(ordered, directory, rules_for(settings).org, people=people)
    return EventEvaluation(
        records=tuple(EventRecord(event=e) for e in kept),
        skipped=tuple(skipped),
        links=links,
        created=created,
    )


def _people(
    keys: Sequence[str],
    directory: Directory,
    new_contacts: Callable[[Collection[str]], Sequence[NewContact]],
) -> tuple[dict[str, PersonRef], tuple[tuple[str, PersonRef], ...]]:
    """People by key (of the sorted, distinct valid ``keys``), after creating
    the missing ones the policy asks for.

    Existing people are looked up first so no one is created twice; the
    created ones join the answer, so they are linked in the same batch.
    """
    if not keys:
        return {}, ()
    people = dict(directory.people_by_addresses(keys))
    new = new_contacts(people.keys())
    if not new:
        return people, ()
    wanted = {c.address.key for c in new}
    made = directory.create_contacts(new)
    created = tuple(sorted(((k, p) for k, p in made.items() if k in wanted), key=_first))
    people.update(created)
    return people, created


def _first(item: tuple[str, PersonRef]) -> str:
    return item[0]


def _message_skip(message: Message, verdict: Decision, settings: ChannelSettings) -> Skip:
    """The skip record of a left-out message, as its channel may keep it
    (internal and blocked mail: no subject, no sender; see ``skips``)."""
    sender = message.sender
    found = Skip(
        provider_id=message.provider_id,
        reason=verdict.reason,
        detail=verdict.detail,
        message_id=message.message_id,
        subject=message.subject,
        sender=(sender.key or sender.raw) if sender is not None else "",
        date=message.date,
    )
    return minimise_skip(found, settings)


def _event_skip(event: Event, verdict: Decision, settings: ChannelSettings) -> Skip:
    organizer = event.organizer.address if event.organizer is not None else None
    found = Skip(
        provider_id=event.provider_id,
        reason=verdict.reason,
        detail=verdict.detail,
        message_id=event.uid,
        subject=event.title,
        sender=(organizer.key or organizer.raw) if organizer is not None else "",
        date=event.start,
    )
    return minimise_skip(found, settings)
