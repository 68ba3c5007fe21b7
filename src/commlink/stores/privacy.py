"""Least data, enforced by the stores whatever they are given (pure).

The policy already minimises what it hands over; the reference stores
check again on the way in, so a store never persists more than the rules
allow, even from a batch built with stale settings:

- ``prepare_batch``: records are minimised for the channel's current
  visibility, skip records as the channel's settings allow
  (``policy.skips``), and records in which an erased address takes part
  become skips with ``Reason.ERASED`` (their links are dropped);
- ``SettingsChange``: what saving a channel over its stored version must
  do to what it stored (blocklist entries added, visibility lowered, skip
  details withdrawn);
- ``mentions``: whether a skip record names an address (erasure).

A host store can use these functions too.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

from ..addresses import address_key, normalise_entry
from ..errors import InvalidInput
from ..model import ChannelSettings, Event, Visibility
from ..policy.skips import erased_skip, involves, minimise_skip
from ..policy.visibility import minimise_event, minimise_message
from ..records import Reason, Skip, SyncBatch

__all__ = [
    "QUEUE_MARKER_SUFFIX",
    "SettingsChange",
    "batch_keys",
    "drop_erased",
    "erasure_key",
    "forgotten_skips",
    "mentions",
    "prepare_batch",
    "settings_change",
]

#: A channel's queue-marker lease (``contrib.celery``) is ``<channel id>`` and
#: this suffix; ``remove_channel`` removes it with the channel's own lease.
QUEUE_MARKER_SUFFIX = "#queued"


def batch_keys(batch: SyncBatch) -> set[str]:
    """Every address key a batch would store: participants, organisers and
    attendees, linked keys and skip senders."""
    found: set[str] = set()
    for record in batch.messages:
        found.update(a.key for a in record.message.addresses() if a.key)
    for event_record in batch.events:
        found.update(a.key for a in event_record.event.addresses() if a.key)
    found.update(change.key for change in batch.links)
    found.update(s.sender for s in batch.skipped if s.sender)
    return found


def drop_erased(batch: SyncBatch, erased: Collection[str]) -> SyncBatch:
    """``batch`` without what involves an erased address key.

    A message in which one takes part, or a calendar object (all events of a
    provider id) with one as organiser or attendee, is left out and recorded
    as a skip with ``Reason.ERASED`` (``policy.skips.erased_skip``; its
    provider id is deleted too, so an older stored version goes); links of
    erased keys are dropped; a skip record whose sender is erased becomes an
    ``ERASED`` one.
    """
    if not erased:
        return batch
    gone = set(erased)
    skipped = [erased_skip(r.message) for r in batch.messages if involves(r.message, gone)]
    messages = tuple(r for r in batch.messages if not involves(r.message, gone))
    hit = {r.event.provider_id for r in batch.events if involves(r.event, gone)}
    leads: dict[str, Event] = {}  # one skip per calendar object: its first event
    for record in batch.events:
        if record.event.provider_id in hit:
            leads.setdefault(record.event.provider_id, record.event)
    skipped.extend(erased_skip(e) for e in leads.values())
    kept_skips = [
        s
        if s.sender not in gone
        else Skip(s.provider_id, Reason.ERASED, message_id=s.message_id, date=s.date)
        for s in batch.skipped
    ]
    return attrs.evolve(
        batch,
        messages=messages,
        events=tuple(r for r in batch.events if r.event.provider_id not in hit),
        links=tuple(change for change in batch.links if change.key not in gone),
        skipped=(*kept_skips, *skipped),
        deleted=(*batch.deleted, *(s.provider_id for s in skipped)),
    )


def prepare_batch(
    batch: SyncBatch, settings: ChannelSettings, erased: Collection[str] = ()
) -> SyncBatch:
    """What a store writes of a validated ``batch`` for a channel with these
    (stored) settings: ``drop_erased``, then records minimised for the
    channel's visibility and skip records as its settings allow."""
    batch = drop_erased(batch, erased)
    visibility = settings.visibility
    messages = tuple(
        r
        if (m := minimise_message(r.message, visibility)) is r.message
        else attrs.evolve(r, message=m)
        for r in batch.messages
    )
    events = tuple(
        r if (e := minimise_event(r.event, visibility)) is r.event else attrs.evolve(r, event=e)
        for r in batch.events
    )
    skipped = tuple(minimise_skip(s, settings) for s in batch.skipped)
    return attrs.evolve(batch, messages=messages, events=events, skipped=skipped)


def forgotten_skips(batch: SyncBatch) -> set[str]:
    """Provider ids whose skip record a batch removes: those it imports, and
    those deleted at the source (a re-delivered message under a new id
    leaves no record behind), unless the batch records a new skip for them."""
    kept = {s.provider_id for s in batch.skipped}
    imported = {r.message.provider_id for r in batch.messages}
    imported.update(r.event.provider_id for r in batch.events)
    return (imported | set(batch.deleted)) - kept


def erasure_key(address: str) -> str:
    """The key an address is erased under; ``InvalidInput`` if it has none."""
    key = address_key(address)
    if not key:
        raise InvalidInput(f"not an address: {address!r}"[:300])
    return key


def mentions(skip: Skip, key: str) -> bool:
    """Whether a skip record names an address key (its sender, or in its
    detail or subject, case-insensitively)."""
    return bool(key) and (
        skip.sender.lower() == key or key in skip.detail.lower() or key in skip.subject.lower()
    )


@attrs.frozen(slots=True)
class SettingsChange:
    """What saving a channel over its stored version does to what it stored.

    ``blocked``: blocklist entries it adds (normalised; their matching mail
    and events go, as ``Store.delete_matching``). ``minimise``: the lower
    visibility stored copies are minimised to, when visibility went down.
    ``strip_skips``: ``skip_details`` was turned off (skip records lose
    their details, ``policy.skips.minimise_skip``).
    """

    blocked: frozenset[str] = frozenset()
    minimise: Visibility | None = None
    strip_skips: bool = False

    def __bool__(self) -> bool:
        return bool(self.blocked) or self.minimise is not None or self.strip_skips


def _entries(settings: ChannelSettings) -> frozenset[str]:
    return frozenset(e for e in (normalise_entry(x) for x in settings.blocklist) if e)


def settings_change(old: ChannelSettings | None, new: ChannelSettings) -> SettingsChange:
    """What replacing stored settings ``old`` (``None``: a new channel) by ``new`` does."""
    if old is None:
        return SettingsChange()
    lowered = new.visibility.rank < old.visibility.rank
    return SettingsChange(
        blocked=_entries(new) - _entries(old),
        minimise=new.visibility if lowered else None,
        strip_skips=old.skip_details and not new.skip_details,
    )
