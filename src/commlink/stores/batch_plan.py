"""What a batch commit writes, decided over plain values.

Both reference stores read what is stored, call these functions and write
what they return (``sql_write`` in SQL, ``contrib.django.store_write`` on
the Django ORM), so the rules live in one place: which logical messages,
copies and associations change, which copy of an event stays, what host
events a commit reports and which address links it replaces.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..model import Event
from ..records import AddressLinks, EventRecord, MessageRecord
from .common import DAWN, event_version
from .outbox import ChangeCollector, event_fingerprint
from .sql_rows import content_hash, folders_json, rid_key

__all__ = [
    "REF_COLUMNS",
    "CopyPlan",
    "EventRowKey",
    "LinkRow",
    "assoc_changes",
    "event_assoc_pairs",
    "event_row_key",
    "link_changes",
    "merged_events",
    "newer_events",
    "plan_copies",
    "ref_tuples",
    "report_copies",
    "report_events",
    "stored_versions",
    "wanted_links",
]

EventRowKey = tuple[str, str]  # (uid, rid_key): one channel's copy of an event
LinkRow = tuple[str, str, str]  # (address key, target kind, target id)
#: The columns of a copy's references, in the order of ``ref_tuples``.
REF_COLUMNS = ("message_pk", "channel_id", "pos", "ref_id")


@attrs.frozen
class CopyPlan:
    """What a batch changes of the messages it carries, by Message-ID."""

    logical: list[str]  # logical messages that are new or change thread
    changed: list[str]  # the channel's copies that are new or changed
    digests: dict[str, str]  # every copy's content digest
    touched: set[str]  # threads whose timeline rows must be rebuilt


def plan_copies(
    merged: Mapping[str, MessageRecord],
    threads: Mapping[str, str],
    held: Mapping[str, str | None],
) -> CopyPlan:
    """The plan for ``merged`` (one record per Message-ID): ``threads`` holds
    the thread of each stored logical message, ``held`` the digest of the
    channel's stored copy of each (none without one). A rewritten message's
    threads, before and after, are touched."""
    logical = [mid for mid, record in merged.items() if threads.get(mid) != record.thread_id]
    digests = {mid: content_hash(record) for mid, record in merged.items()}
    changed = [mid for mid, digest in digests.items() if held.get(mid) != digest]
    touched: set[str] = set()
    for mid in {*logical, *changed}:
        touched.add(merged[mid].thread_id)
        if mid in threads:
            touched.add(threads[mid])
    return CopyPlan(logical, changed, digests, touched)


def report_copies(
    changes: ChangeCollector | None,
    plan: CopyPlan,
    merged: Mapping[str, MessageRecord],
    pks: Mapping[str, int],
    held: Mapping[str, str | None],
) -> None:
    """Tell ``changes`` which of the channel's copies the batch creates and
    which it updates (``held`` as for ``plan_copies``)."""
    if changes is None:
        return
    for mid in plan.changed:
        record = merged[mid]
        created = held.get(mid) is None
        changes.message(created, pks[mid], mid, record.thread_id, record.message.provider_id)


def assoc_changes(
    records: Iterable[MessageRecord],
    pks: Mapping[str, int],
    generation: int,
    before: Mapping[str, tuple[Any, ...]],
) -> list[tuple[str, tuple[int, int, str, str]]]:
    """``(provider id, (message pk, generation, folders, direction))`` of the
    message associations of ``records`` that differ from ``before`` (the
    stored ones in that order, by provider id)."""
    found: list[tuple[str, tuple[int, int, str, str]]] = []
    folder_lists: dict[tuple[str, ...], str] = {}  # a batch's messages share a few
    for record in records:
        msg = record.message
        folders = folder_lists.get(msg.folders)
        if folders is None:
            folders = folder_lists[msg.folders] = folders_json(msg.folders)
        assoc = (pks[msg.message_id], generation, folders, record.direction.value)
        if before.get(msg.provider_id) != assoc:
            found.append((msg.provider_id, assoc))
    return found


def ref_tuples(pk: int, channel_id: str, record: MessageRecord) -> list[tuple[int, str, int, str]]:
    """The rows (``REF_COLUMNS``) of a copy's references: In-Reply-To, then
    References, then the record's thread keys."""
    msg = record.message
    chain = (*msg.in_reply_to, *msg.references, *record.thread_keys)
    return [(pk, channel_id, i, ref) for i, ref in enumerate(chain)]


def event_row_key(event: Event) -> EventRowKey:
    """The key of the channel's stored copy of ``event``."""
    return event.uid, rid_key(event.recurrence_id)


def merged_events(records: Iterable[EventRecord]) -> dict[EventRowKey, Event]:
    """One event per uid and recurrence id: the most recent copy (see
    ``common.event_version``), the later one among equals."""
    merged: dict[EventRowKey, Event] = {}
    for record in records:
        key = event_row_key(record.event)
        if key not in merged or event_version(record.event) >= event_version(merged[key]):
            merged[key] = record.event
    return merged


def stored_versions(
    rows: Iterable[tuple[Any, str, str, int, datetime | None]],
    merged: Collection[EventRowKey],
) -> dict[EventRowKey, tuple[int, tuple[int, datetime]]]:
    """The pk and version of the channel's stored copies among ``merged``,
    from rows of ``(pk, uid, rid_key, sequence, updated)``."""
    found: dict[EventRowKey, tuple[int, tuple[int, datetime]]] = {}
    for pk, uid, rid, sequence, updated in rows:
        if (uid, rid) in merged:
            found[(uid, rid)] = (int(pk), (int(sequence), updated or DAWN))
    return found


def newer_events(
    merged: Mapping[EventRowKey, Event],
    stored: Mapping[EventRowKey, tuple[int, tuple[int, datetime]]],
) -> dict[EventRowKey, Event]:
    """The events to write: the channel's stored copy stays when more recent
    than the incoming one (SEQUENCE, then update time), whatever order they
    are committed in."""
    return {k: e for k, e in merged.items() if k not in stored or event_version(e) >= stored[k][1]}


def report_events(
    changes: ChangeCollector | None,
    newer: Mapping[EventRowKey, Event],
    pks: Mapping[EventRowKey, int],
    before: Mapping[int, tuple[Any, ...]],
) -> None:
    """Tell ``changes`` which events the batch creates and which it changes
    (``before``: the fingerprints of the stored ones, by pk)."""
    if changes is None:
        return
    for key, event in newer.items():
        old = before.get(pks[key])
        if old is None or old != event_fingerprint(event):
            changes.event(old is None, pks[key], event)


def event_assoc_pairs(
    records: Iterable[EventRecord], pks: Mapping[EventRowKey, int]
) -> set[tuple[str, int]]:
    """``(provider id, event pk)`` of each event association of ``records``."""
    return {(r.event.provider_id, pks[event_row_key(r.event)]) for r in records}


def wanted_links(changes: Sequence[AddressLinks]) -> tuple[list[str], set[LinkRow]]:
    """The address keys whose links ``changes`` replace (sorted) and the
    links they want; the last change of a key wins."""
    latest = {c.key: c for c in changes}
    wanted = {(c.key, link.kind.value, link.id) for c in latest.values() for link in c.links}
    return sorted(latest), wanted


def link_changes(
    wanted: Collection[LinkRow], stored: Collection[LinkRow]
) -> tuple[list[LinkRow], list[LinkRow], set[str]]:
    """What turns ``stored`` links into ``wanted`` ones: those to delete and
    those to add (each sorted), and the address keys whose links change."""
    gone = sorted(set(stored) - set(wanted))
    added = sorted(set(wanted) - set(stored))
    return gone, added, {key for key, _, _ in (*gone, *added)}
