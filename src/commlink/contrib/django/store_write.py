"""The write path of ``DjangoStore``: batch commits and address links.

Every function runs inside the caller's transaction on the database alias
``using``. A batch costs a bounded number of statements whatever its size:
keys are looked up with ``filter(<key>__in=...)`` in chunks and rows are
written with ``bulk_create`` (``update_conflicts`` for upserts). A
re-committed message whose content digest is unchanged is not rewritten,
nor are its participants, references or association (see
``commlink.stores.sql_rows.content_hash``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ...errors import InvalidInput
from ...records import AddressLinks, MessageRecord, SyncBatch
from ...stores import batch_plan
from ...stores.common import merged_records
from ...stores.privacy import batch_keys, forgotten_skips, prepare_batch
from ...stores.sql_rows import (
    COPY_COLUMNS,
    PARTICIPANT_COLUMNS,
    SKIP_COLUMNS,
    attendee_rows,
    copy_tuple,
    event_row,
    participant_tuples,
    settings_from_json,
    skip_tuple,
)
from . import models as m
from .store_delete import collect, delete_assocs, refresh_threads, threads_of_keys
from .store_events import CommitEvents, stored_fingerprints
from .store_rows import chunked, is_postgres

__all__ = ["ERASURE_LOCK", "commit_batch", "erased_among", "replace_links"]

#: PostgreSQL advisory lock key: commits hold it shared, an erasure
#: exclusively, so no commit reads the tombstones before an erasure and
#: writes after it (SQLite serialises writers anyway).
ERASURE_LOCK = 0x636C6F726D657261  # "clormera"

_COPY_FIELDS = [c for c in COPY_COLUMNS if c not in ("message_pk", "channel_id")]
# a metadata-only fetch never erases the body (nor the HTML fetched with it)
_KEEP_BODY_FIELDS = [c for c in _COPY_FIELDS if c not in ("body", "html")]
_EVENT_FIELDS = [
    f.name for f in m.Event._meta.concrete_fields if f.name not in ("id", "uid", "rid_key")
]
_EVENT_FIELDS.remove("channel_id")


def commit_batch(using: str, batch: SyncBatch, changes: CommitEvents | None = None) -> None:
    """Apply a validated batch (see ``SyncBatch``) as the channel's stored
    settings and the erasure tombstones allow (``privacy.prepare_batch``).
    ``changes``, when given, collects the batch's host events."""
    if is_postgres(using):
        # an erasure running meanwhile (which holds this lock exclusively)
        # must not be followed by this batch re-importing what it erased
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [ERASURE_LOCK])
    found = m.Channel.objects.using(using).filter(id=batch.channel_id).values_list("settings")
    settings = found.first()
    if settings is None:
        raise InvalidInput(f"unknown channel {batch.channel_id!r}")
    any_erased = m.Erasure.objects.using(using).exists()
    tombstones = erased_among(using, batch_keys(batch)) if any_erased else set()
    batch = prepare_batch(batch, settings_from_json(settings[0]), tombstones)
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    dropped_messages: set[int] = set()
    dropped_events: set[int] = set()
    touched: set[str] = set()  # threads whose timeline rows must be rebuilt
    if batch.messages:
        dropped_messages |= _write_messages(using, batch, touched, changes)
    if batch.events:
        dropped_events |= _write_events(using, batch, changes)
    relinked = replace_links(using, batch.links, refresh=False)
    touched |= threads_of_keys(using, relinked)
    for old, new in batch.thread_merges:
        touched.update((old, new))
        m.Message.objects.using(using).filter(thread_id=old).update(thread_id=new)
    if batch.deleted:
        gone_messages, gone_events = delete_assocs(using, ch, sc, batch.deleted, changes)
        dropped_messages |= gone_messages
        dropped_events |= gone_events
    for part in chunked(sorted(set(batch.seen))):
        for assoc in (m.MessageAssoc, m.EventAssoc):
            assoc.objects.using(using).filter(
                channel_id=ch, scope_id=sc, provider_id__in=part
            ).exclude(generation=gen).update(generation=gen)
    _write_skips(using, batch)
    if batch.cursor is not None:
        m.Cursor.objects.using(using).bulk_create(
            [m.Cursor(channel_id=ch, scope_id=sc, cursor=batch.cursor)],
            update_conflicts=True,
            unique_fields=["channel_id", "scope_id"],
            update_fields=["cursor"],
        )
    if batch.sweep:
        stale_messages = m.MessageAssoc.objects.using(using).filter(
            channel_id=ch, scope_id=sc, generation__lt=gen
        )
        swept = list(stale_messages.values_list("message_pk", "provider_id"))
        dropped_messages.update(pk for pk, _ in swept)
        if changes is not None:
            changes.removed_messages(swept)
        stale_messages.delete()
        stale_events = m.EventAssoc.objects.using(using).filter(
            channel_id=ch, scope_id=sc, generation__lt=gen
        )
        swept = list(stale_events.values_list("event_pk", "provider_id"))
        dropped_events.update(pk for pk, _ in swept)
        if changes is not None:
            changes.removed_events(swept)
        stale_events.delete()
    if changes is not None:
        changes.finish(dropped_messages, dropped_events)
    refresh_threads(using, touched)
    collect(using, ch, dropped_messages, dropped_events)


def _write_messages(
    using: str, batch: SyncBatch, touched: set[str], changes: CommitEvents | None
) -> set[int]:
    """Upsert logical messages, their copies and associations; returns the
    messages that provider ids of this batch pointed to before."""
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    assocs = m.MessageAssoc.objects.using(using)
    before: dict[str, tuple[Any, ...]] = {}
    for part in chunked(sorted({r.message.provider_id for r in batch.messages})):
        rows = assocs.filter(channel_id=ch, scope_id=sc, provider_id__in=part).values_list(
            "provider_id", "message_pk", "generation", "folders", "direction"
        )
        before.update((row[0], tuple(row[1:])) for row in rows)
    pks = _write_copies(using, ch, merged_records(batch.messages), touched, changes)
    if changes is not None:
        changes.removed_messages((a[0], pid) for pid, a in before.items())
    changed = [
        m.MessageAssoc(
            channel_id=ch,
            scope_id=sc,
            provider_id=provider_id,
            message_pk=message_pk,
            generation=generation,
            folders=folders,
            direction=direction,
        )
        for provider_id, (message_pk, generation, folders, direction) in batch_plan.assoc_changes(
            batch.messages, pks, gen, before
        )
    ]
    if changed:
        assocs.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["channel_id", "scope_id", "provider_id"],
            update_fields=["message_pk", "generation", "folders", "direction"],
        )
    return {int(assoc[0]) for assoc in before.values()} - set(pks.values())


def _message_pks(using: str, message_ids: Collection[str]) -> dict[str, tuple[int, str]]:
    """Stored logical messages by Message-ID: (pk, thread)."""
    found: dict[str, tuple[int, str]] = {}
    for part in chunked(sorted(message_ids)):
        rows = m.Message.objects.using(using).filter(message_id__in=part)
        found.update(
            (mid, (int(pk), thread))
            for pk, mid, thread in rows.values_list("id", "message_id", "thread_id")
        )
    return found


def _write_copies(
    using: str,
    channel_id: str,
    merged: Mapping[str, MessageRecord],
    touched: set[str],
    changes: CommitEvents | None,
) -> dict[str, int]:
    """Write the logical messages that are new or changed thread, and the
    channel's copies whose digest changed (or that are new) with their
    participants and references; returns every message's pk by Message-ID."""
    stored = _message_pks(using, merged)
    pks = {mid: pk for mid, (pk, _thread) in stored.items()}
    threads = {mid: thread for mid, (_pk, thread) in stored.items()}
    copies: dict[int, str] = {}
    for pk_part in chunked(sorted(pks.values())):
        rows = m.MessageCopy.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=pk_part
        )
        copies.update(rows.values_list("message_pk", "content_hash"))
    # Message-ID -> digest of the channel's copy, for the messages it holds
    held: dict[str, str | None] = {mid: copies[pk] for mid, pk in pks.items() if pk in copies}
    copy_plan = batch_plan.plan_copies(merged, threads, held)
    touched |= copy_plan.touched
    logical, changed = copy_plan.logical, copy_plan.changed
    if logical:
        # another transaction may have added some of them since they were read
        m.Message.objects.using(using).bulk_create(
            # in key order: concurrent commits lock shared rows in one order
            [m.Message(message_id=mid, thread_id=merged[mid].thread_id) for mid in sorted(logical)],
            update_conflicts=True,
            unique_fields=["message_id"],
            update_fields=["thread_id"],
        )
        pks.update((mid, pk) for mid, (pk, _thread) in _message_pks(using, logical).items())
    if not changed:
        return pks
    batch_plan.report_copies(changes, copy_plan, merged, pks, held)
    with_body: list[m.MessageCopy] = []
    without_body: list[m.MessageCopy] = []
    for mid in changed:
        row = dict(
            zip(
                COPY_COLUMNS,
                copy_tuple(pks[mid], channel_id, merged[mid], copy_plan.digests[mid]),
                strict=True,
            )
        )
        copy = m.MessageCopy(**row)
        (without_body if copy.body is None else with_body).append(copy)
    for group, fields in ((with_body, _COPY_FIELDS), (without_body, _KEEP_BODY_FIELDS)):
        # a metadata-only fetch never erases a body the same channel fetched before
        if group:
            m.MessageCopy.objects.using(using).bulk_create(
                group,
                update_conflicts=True,
                unique_fields=["message_pk", "channel_id"],
                update_fields=fields,
            )
    # on PostgreSQL also for copies that were new a moment ago: another
    # transaction may have written them since (SQLite writers are serialised)
    serialised = not is_postgres(using)
    rewritten = [pks[mid] for mid in changed if pks[mid] in copies or not serialised]
    for pk_part in chunked(sorted(rewritten)):
        for table in (m.Participant, m.MessageRef):
            table.objects.using(using).filter(
                channel_id=channel_id, message_pk__in=pk_part
            ).delete()
    people: list[m.Participant] = []
    refs: list[m.MessageRef] = []
    for mid in changed:
        record = merged[mid]
        people.extend(
            m.Participant(**dict(zip(PARTICIPANT_COLUMNS, row, strict=True)))
            for row in participant_tuples(pks[mid], channel_id, record.message.participants)
        )
        refs.extend(
            m.MessageRef(**dict(zip(batch_plan.REF_COLUMNS, row, strict=True)))
            for row in batch_plan.ref_tuples(pks[mid], channel_id, record)
        )
    m.Participant.objects.using(using).bulk_create(people)
    m.MessageRef.objects.using(using).bulk_create(refs)
    return pks


def _write_events(using: str, batch: SyncBatch, changes: CommitEvents | None) -> set[int]:
    """Upsert the channel's copies of events with their attendees; replace
    the event set of each provider id. Returns the events that lost an
    association to a re-committed provider id."""
    ch, sc = batch.channel_id, batch.scope_id
    merged = batch_plan.merged_events(batch.events)
    events = m.Event.objects.using(using)
    stored: dict[batch_plan.EventRowKey, tuple[int, tuple[int, datetime]]] = {}
    for part in chunked(sorted({uid for uid, _ in merged})):
        rows = events.filter(channel_id=ch, uid__in=part).values_list(
            "id", "uid", "rid_key", "sequence", "updated"
        )
        stored.update(batch_plan.stored_versions(rows, merged))
    newer = batch_plan.newer_events(merged, stored)
    before: dict[int, tuple[Any, ...]] = {}
    if changes is not None:
        before = stored_fingerprints(using, [stored[k][0] for k in newer if k in stored])
    if newer:
        events.bulk_create(
            [m.Event(**event_row(e, ch)) for e in newer.values()],
            update_conflicts=True,
            unique_fields=["uid", "rid_key", "channel_id"],
            update_fields=_EVENT_FIELDS,
        )
    pks: dict[batch_plan.EventRowKey, int] = {k: pk for k, (pk, _) in stored.items()}
    for part in chunked(sorted({uid for uid, rid in newer if (uid, rid) not in pks})):
        created = events.filter(channel_id=ch, uid__in=part).values_list("id", "uid", "rid_key")
        pks.update(((uid, rid), int(pk)) for pk, uid, rid in created if (uid, rid) in merged)
    batch_plan.report_events(changes, newer, pks, before)
    attendees = m.Attendee.objects.using(using)
    for pk_part in chunked(sorted(pks[k] for k in newer)):
        attendees.filter(event_pk__in=pk_part).delete()
    attendees.bulk_create(
        [m.Attendee(**row) for key, e in newer.items() for row in attendee_rows(pks[key], e)]
    )
    dropped: set[int] = set()
    assocs = m.EventAssoc.objects.using(using)
    for part in chunked(sorted({r.event.provider_id for r in batch.events})):
        gone = assocs.filter(channel_id=ch, scope_id=sc, provider_id__in=part)
        removed = list(gone.values_list("event_pk", "provider_id"))
        dropped.update(pk for pk, _ in removed)
        if changes is not None:
            changes.removed_events(removed)
        gone.delete()
    assoc_rows = batch_plan.event_assoc_pairs(batch.events, pks)
    assocs.bulk_create(
        [
            m.EventAssoc(
                channel_id=ch,
                scope_id=sc,
                provider_id=provider_id,
                event_pk=pk,
                generation=batch.generation,
            )
            for provider_id, pk in sorted(assoc_rows)
        ]
    )
    return dropped - {pk for _, pk in assoc_rows}


def _write_skips(using: str, batch: SyncBatch) -> None:
    """Record the batch's skips; forget those of provider ids it imports or
    that were deleted at the source."""
    ch = batch.channel_id
    skips = m.SkipRecord.objects.using(using)
    if batch.skipped:
        skips.bulk_create(
            [
                m.SkipRecord(**dict(zip(SKIP_COLUMNS, skip_tuple(ch, s), strict=True)))
                for s in batch.skipped
            ],
            update_conflicts=True,
            unique_fields=["channel_id", "provider_id"],
            update_fields=list(SKIP_COLUMNS[2:]),
        )
    for part in chunked(sorted(forgotten_skips(batch))):
        skips.filter(channel_id=ch, provider_id__in=part).delete()


def erased_among(using: str, keys: Collection[str]) -> set[str]:
    """The erased address keys among ``keys`` (stored keys, not normalised)."""
    found: set[str] = set()
    for part in chunked(sorted(k for k in keys if "\x00" not in k)):
        rows = m.Erasure.objects.using(using).filter(key__in=part)
        found.update(str(k) for k in rows.values_list("key", flat=True))
    return found


def replace_links(using: str, changes: Sequence[AddressLinks], *, refresh: bool = True) -> set[str]:
    """Replace the links of each listed address key (empty links remove them).

    Only the difference to what is stored is written. Returns the keys whose
    links changed; with ``refresh`` the timeline rows of their threads are
    rebuilt (else the caller does it).
    """
    if not changes:
        return set()
    keys, wanted = batch_plan.wanted_links(changes)
    links = m.AddressLink.objects.using(using)
    stored: dict[batch_plan.LinkRow, int] = {}
    for part in chunked(keys):
        rows = links.filter(key__in=part).values_list("id", "key", "kind", "target_id")
        stored.update(((key, kind, target), int(pk)) for pk, key, kind, target in rows)
    gone, added, changed = batch_plan.link_changes(wanted, stored)
    for pk_part in chunked(sorted(stored[link] for link in gone)):
        links.filter(id__in=pk_part).delete()
    links.bulk_create(
        [m.AddressLink(key=key, kind=kind, target_id=target) for key, kind, target in added],
        ignore_conflicts=True,
    )
    if refresh:
        refresh_threads(using, threads_of_keys(using, changed))
    return changed
