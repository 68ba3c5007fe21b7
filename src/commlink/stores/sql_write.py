"""The write path of ``SqlStore``: batch commits and address links.

Every function takes an open ``Connection`` inside the caller's transaction.
A batch costs about ten statements whatever its size: the hot paths send
driver-level SQL (``sql_bulk``) with each key set as one parameter and each
table's rows as one executemany (SQLite) or one ``unnest`` insert
(PostgreSQL). A re-committed message whose content digest is unchanged is
not rewritten, nor are its participants, references or association.

Content is kept per channel (see ``stores.copies``): a batch writes its
channel's copy of each message (``message_copies`` with that copy's
participants and references) and its channel's row of each event, never
another channel's. Deletions and garbage collection are in ``sql_delete``.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import InvalidInput
from ..records import AddressLinks, MessageRecord, SyncBatch
from .batch_plan import (
    REF_COLUMNS,
    EventRowKey,
    assoc_changes,
    event_assoc_pairs,
    link_changes,
    merged_events,
    newer_events,
    plan_copies,
    ref_tuples,
    report_copies,
    report_events,
    stored_versions,
    wanted_links,
)
from .common import merged_records
from .privacy import batch_keys, forgotten_skips, prepare_batch
from .sql_bulk import among_sql, fetch, is_postgres, key_set, mark, run, write_rows
from .sql_delete import collect, delete_assocs, pk_column, refresh_threads, threads_of_keys
from .sql_outbox import CommitEvents, stored_fingerprints
from .sql_rows import (
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
from .sql_schema import (
    UtcDateTime,
    address_links,
    among,
    attendees,
    channels,
    chunks,
    cursors,
    erased,
    event_assocs,
    events,
    message_assocs,
    message_copies,
    message_refs,
    messages,
    participants,
    skips,
)
from .sql_search import index_written

__all__ = [
    "ERASURE_LOCK",
    "commit_batch",
    "erased_among",
    "refresh_threads",
    "replace_links",
    "threads_of_keys",
]

_ASSOCS = (message_assocs, event_assocs)
#: PostgreSQL advisory lock key: commits hold it shared, an erasure
#: exclusively, so no commit reads the tombstones before an erasure and
#: writes after it (SQLite serialises writers anyway).
ERASURE_LOCK = 0x636C6B6572617365  # "clkerase"
_ASSOC_COLUMNS = (
    "channel_id",
    "scope_id",
    "provider_id",
    "message_pk",
    "generation",
    "folders",
    "direction",
)
_COPY_UPDATE = {
    "sent_at": "excluded.sent_at",
    "subject": "excluded.subject",
    "snippet": "excluded.snippet",
    "attachments": "excluded.attachments",
    "warnings": "excluded.warnings",
    # a metadata-only fetch never erases a body the same channel fetched before
    "body": f"COALESCE(excluded.body, {message_copies.name}.body)",
    # ... nor the HTML fetched with it
    "html": f"CASE WHEN excluded.body IS NULL THEN {message_copies.name}.html "
    "ELSE excluded.html END",
    "content_hash": "excluded.content_hash",
}


def commit_batch(conn: Connection, batch: SyncBatch, changes: CommitEvents | None = None) -> None:
    """Apply a validated batch (see ``SyncBatch``) inside the caller's
    transaction, as the channel's stored settings and the erasure
    tombstones allow (``privacy.prepare_batch``). ``changes``, when given,
    collects the batch's host events."""
    m = mark(conn)
    if is_postgres(conn):
        # an erasure running meanwhile (which holds this lock exclusively)
        # must not be followed by this batch re-importing what it erased
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({ERASURE_LOCK})")
    # SQLite: also the highest message pk, to number new messages from (this
    # transaction holds the write lock, so no one else adds any meanwhile)
    top = "" if is_postgres(conn) else f", (SELECT coalesce(max(pk), 0) FROM {messages.name})"
    found = fetch(
        conn,
        f"SELECT settings, EXISTS (SELECT 1 FROM {erased.name}){top} "
        f"FROM {channels.name} WHERE id = {m}",
        batch.channel_id,
    )
    if not found:
        raise InvalidInput(f"unknown channel {batch.channel_id!r}")
    settings_json, any_erased, *highest = found[0]
    last_pk = int(highest[0]) if highest else 0
    tombstones = erased_among(conn, batch_keys(batch)) if any_erased else set()
    batch = prepare_batch(batch, settings_from_json(settings_json), tombstones)
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    dropped_messages: set[int] = set()
    dropped_events: set[int] = set()
    touched: set[str] = set()  # threads whose timeline rows must be rebuilt
    if batch.messages:
        dropped_messages |= _write_messages(conn, batch, touched, last_pk, changes)
    if batch.events:
        dropped_events |= _write_events(conn, batch, changes)
    relinked = replace_links(conn, batch.links, refresh=False)
    touched |= threads_of_keys(conn, relinked)
    if batch.thread_merges:
        touched.update(t for merge in batch.thread_merges for t in merge)
        conn.exec_driver_sql(
            f"UPDATE {messages.name} SET thread_id = {m} WHERE thread_id = {m}",
            [(new, old) for old, new in batch.thread_merges],
        )
    if batch.deleted:
        if changes is not None:
            for table in _ASSOCS:
                changes.removed(table, _assocs_of(conn, table, ch, sc, batch.deleted))
        found = delete_assocs(conn, ch, sc, batch.deleted)
        dropped_messages |= found[0]
        dropped_events |= found[1]
    if batch.seen:
        seen = key_set(conn, sorted(set(batch.seen)))
        for table in _ASSOCS:
            run(
                conn,
                f"UPDATE {table.name} SET generation = {m} WHERE channel_id = {m} "
                f"AND scope_id = {m} AND {among_sql(conn, table.c.provider_id)} "
                f"AND generation <> {m}",
                gen,
                ch,
                sc,
                seen,
                gen,
            )
    _write_skips(conn, batch)
    if batch.cursor is not None:
        write_rows(
            conn,
            cursors,
            ("channel_id", "scope_id", "cursor"),
            [(ch, sc, batch.cursor)],
            conflict=("channel_id", "scope_id"),
            update=("cursor",),
        )
    if batch.sweep:
        for table, dropped in ((message_assocs, dropped_messages), (event_assocs, dropped_events)):
            swept = conn.execute(
                sa.delete(table)
                .where(table.c.channel_id == ch, table.c.scope_id == sc, table.c.generation < gen)
                .returning(pk_column(table), table.c.provider_id)
            ).all()
            dropped.update(int(pk) for pk, _pid in swept)
            if changes is not None:
                changes.removed(table, swept)
    refresh_threads(conn, touched)
    if changes is not None:
        changes.finish(conn, dropped_messages, dropped_events)
    collect(conn, ch, dropped_messages, dropped_events)


def _assocs_of(
    conn: Connection, table: sa.Table, channel_id: str, scope_id: str, ids: Collection[str]
) -> list[tuple[Any, ...]]:
    """``(message or event pk, provider id)`` of a scope's associations among ``ids``."""
    found: list[tuple[Any, ...]] = []
    for part in chunks(sorted(set(ids))):
        query = sa.select(pk_column(table), table.c.provider_id).where(
            table.c.channel_id == channel_id,
            table.c.scope_id == scope_id,
            among(conn, table.c.provider_id, part),
        )
        found.extend(tuple(row) for row in conn.execute(query))
    return found


def _write_messages(
    conn: Connection,
    batch: SyncBatch,
    touched: set[str],
    last_pk: int = 0,
    changes: CommitEvents | None = None,
) -> set[int]:
    """Upsert logical messages, their participants, references and associations.

    Returns the messages that provider ids of this batch pointed to before;
    adds the threads of rewritten messages (before and after) to ``touched``.
    ``last_pk``: on SQLite, the highest message pk (new ones follow it).
    """
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    m = mark(conn)
    before: dict[str, tuple[Any, ...]] = {
        row[0]: tuple(row[1:])
        for row in fetch(
            conn,
            f"SELECT provider_id, message_pk, generation, folders, direction "
            f"FROM {message_assocs.name} WHERE channel_id = {m} AND scope_id = {m} "
            f"AND {among_sql(conn, message_assocs.c.provider_id)}",
            ch,
            sc,
            key_set(conn, [r.message.provider_id for r in batch.messages]),
        )
    }
    pks = _write_copies(conn, ch, merged_records(batch.messages), touched, last_pk, changes)
    if changes is not None:
        changes.removed(message_assocs, [(a[0], pid) for pid, a in before.items()])
    write_rows(
        conn,
        message_assocs,
        _ASSOC_COLUMNS,
        [(ch, sc, pid, *assoc) for pid, assoc in assoc_changes(batch.messages, pks, gen, before)],
        conflict=_ASSOC_COLUMNS[:3],
        update=_ASSOC_COLUMNS[3:],
    )
    return {int(assoc[0]) for assoc in before.values()} - set(pks.values())


def _write_copies(
    conn: Connection,
    channel_id: str,
    merged: Mapping[str, MessageRecord],
    touched: set[str],
    last_pk: int,
    changes: CommitEvents | None = None,
) -> dict[str, int]:
    """Write the logical messages that are new or changed thread, and the
    channel's copies whose digest changed (or that are new) with their
    participants and references; returns every message's pk by Message-ID.
    ``changes`` learns which copies were created and which updated."""
    m = mark(conn)
    select = (
        f"SELECT m.message_id, m.pk, m.thread_id, c.content_hash FROM {messages.name} m "
        f"LEFT JOIN {message_copies.name} c ON c.message_pk = m.pk AND c.channel_id = {m} "
        f"WHERE {among_sql(conn, messages.c.message_id, 'm')}"
    )
    # Message-ID -> (pk, thread, digest of the channel's copy or None without one)
    stored: dict[str, tuple[int, str, str | None]] = {
        mid: (int(pk), thread, digest)
        for mid, pk, thread, digest in fetch(conn, select, channel_id, key_set(conn, merged))
    }
    pks = {mid: pk for mid, (pk, _thread, _digest) in stored.items()}
    threads = {mid: thread for mid, (_pk, thread, _digest) in stored.items()}
    copies = {mid: digest for mid, (_pk, _thread, digest) in stored.items()}
    plan = plan_copies(merged, threads, copies)
    touched |= plan.touched
    if plan.logical:
        pks.update(_write_logical(conn, merged, plan.logical, pks, last_pk))
    report_copies(changes, plan, merged, pks, copies)
    changed = plan.changed
    if not changed:
        return pks
    write_rows(
        conn,
        message_copies,
        COPY_COLUMNS,
        [copy_tuple(pks[mid], channel_id, merged[mid], plan.digests[mid]) for mid in changed],
        conflict=("message_pk", "channel_id"),
        update=_COPY_UPDATE,
    )
    # on PostgreSQL also for copies that were new a moment ago: another
    # transaction may have written them since (SQLite writers are serialised)
    serialised = not is_postgres(conn)
    rewritten = [pks[mid] for mid in changed if copies.get(mid) is not None or not serialised]
    for table in (participants, message_refs) if rewritten else ():
        sql = (
            f"DELETE FROM {table.name} WHERE channel_id = {m} "
            f"AND {among_sql(conn, table.c.message_pk)}"
        )
        run(conn, sql, channel_id, key_set(conn, rewritten))
    people: list[tuple[Any, ...]] = []
    refs: list[tuple[Any, ...]] = []
    for mid in changed:
        record = merged[mid]
        people.extend(participant_tuples(pks[mid], channel_id, record.message.participants))
        refs.extend(ref_tuples(pks[mid], channel_id, record))
    write_rows(conn, participants, PARTICIPANT_COLUMNS, people)
    write_rows(conn, message_refs, REF_COLUMNS, refs)
    fresh = [pks[mid] for mid in changed if serialised and copies.get(mid) is None]
    index_written(conn, channel_id, [(pks[mid], merged[mid].message) for mid in changed], fresh)
    return pks


def _write_logical(
    conn: Connection,
    merged: Mapping[str, MessageRecord],
    logical: Sequence[str],
    pks: Mapping[str, int],
    last_pk: int,
) -> dict[str, int]:
    """Write logical messages that are new or changed thread; returns the pks
    of the new ones (PostgreSQL: of all, from the upsert itself)."""
    if is_postgres(conn):
        # another transaction may have added some of them since they were read
        found = write_rows(
            conn,
            messages,
            ("message_id", "thread_id"),
            [(mid, merged[mid].thread_id) for mid in logical],
            conflict=("message_id",),
            update=("thread_id",),
            returning=("message_id", "pk"),
        )
        return {mid: int(pk) for mid, pk in found}
    moved = [(merged[mid].thread_id, pks[mid]) for mid in logical if mid in pks]
    if moved:
        conn.exec_driver_sql(f"UPDATE {messages.name} SET thread_id = ? WHERE pk = ?", moved)
    new = [mid for mid in logical if mid not in pks]
    created = {mid: last_pk + n for n, mid in enumerate(new, 1)}
    write_rows(
        conn,
        messages,
        ("pk", "message_id", "thread_id"),
        [(pk, mid, merged[mid].thread_id) for mid, pk in created.items()],
    )
    return created


_EVENT_COLUMNS = tuple(c.name for c in events.columns if c.name != "pk")
_EVENT_VALUES = operator.itemgetter(*_EVENT_COLUMNS)
_ATTENDEE_COLUMNS = tuple(c.name for c in attendees.columns)
_ATTENDEE_VALUES = operator.itemgetter(*_ATTENDEE_COLUMNS)
_EVENT_KEY = ("uid", "rid_key", "channel_id")


def _write_events(
    conn: Connection, batch: SyncBatch, changes: CommitEvents | None = None
) -> set[int]:
    """Upsert the channel's copies of events with their attendees; replace
    the event set of each provider id.

    Returns the events that lost an association to a re-committed provider id.
    """
    ch = batch.channel_id
    m = mark(conn)
    moment = UtcDateTime()
    # plain SQL throughout: a calendar's full pass commits a batch per page
    of_uids = f"FROM {events.name} WHERE {among_sql(conn, events.c.uid)} AND channel_id = {m}"
    merged = merged_events(batch.events)
    stored: dict[EventRowKey, tuple[int, tuple[int, datetime]]] = {}
    for part in chunks(sorted({uid for uid, _ in merged})):
        rows = fetch(
            conn,
            f"SELECT pk, uid, rid_key, sequence, updated {of_uids}",
            key_set(conn, part),
            ch,
        )
        versions = [
            (pk, uid, rid, sequence, moment.process_result_value(updated, conn.dialect))
            for pk, uid, rid, sequence, updated in rows
        ]
        stored.update(stored_versions(versions, merged))
    newer = newer_events(merged, stored)
    before: dict[int, tuple[Any, ...]] = {}
    if changes is not None:
        before = stored_fingerprints(conn, [stored[k][0] for k in newer if k in stored])
    written = [event_row(e, ch) for e in newer.values()]
    write_rows(
        conn,
        events,
        _EVENT_COLUMNS,
        [_EVENT_VALUES(row) for row in written],
        conflict=_EVENT_KEY,
        update=[c for c in _EVENT_COLUMNS if c not in _EVENT_KEY],
    )
    pks: dict[EventRowKey, int] = {k: pk for k, (pk, _) in stored.items()}
    missing = sorted({uid for uid, rid in newer if (uid, rid) not in pks})
    for part in chunks(missing):
        created = fetch(conn, f"SELECT pk, uid, rid_key {of_uids}", key_set(conn, part), ch)
        pks.update(((uid, rid), int(pk)) for pk, uid, rid in created if (uid, rid) in merged)
    rewritten = sorted(pks[k] for k in newer)
    report_events(changes, newer, pks, before)
    for pk_part in chunks(rewritten):
        run(
            conn,
            f"DELETE FROM {attendees.name} WHERE {among_sql(conn, attendees.c.event_pk)}",
            key_set(conn, pk_part),
        )
    # driver-level executemany of tuples, as for messages: no per-row work in SQLAlchemy
    rows_out = [
        _ATTENDEE_VALUES(row) for key, e in newer.items() for row in attendee_rows(pks[key], e)
    ]
    write_rows(conn, attendees, _ATTENDEE_COLUMNS, rows_out)
    provider_ids = sorted({r.event.provider_id for r in batch.events})
    dropped: set[int] = set()
    for part in chunks(provider_ids):
        gone = fetch(
            conn,
            f"DELETE FROM {event_assocs.name} WHERE channel_id = {m} AND scope_id = {m} "
            f"AND {among_sql(conn, event_assocs.c.provider_id)} RETURNING event_pk, provider_id",
            ch,
            batch.scope_id,
            key_set(conn, part),
        )
        dropped.update(int(pk) for pk, _pid in gone)
        if changes is not None:
            changes.removed(event_assocs, gone)
    assoc_rows = event_assoc_pairs(batch.events, pks)
    write_rows(
        conn,
        event_assocs,
        ("channel_id", "scope_id", "provider_id", "event_pk", "generation"),
        [(ch, batch.scope_id, pid, pk, batch.generation) for pid, pk in sorted(assoc_rows)],
    )
    return dropped - {pk for _, pk in assoc_rows}


def _write_skips(conn: Connection, batch: SyncBatch) -> None:
    """Record the batch's skips; forget those of provider ids it imports or
    that were deleted at the source."""
    ch = batch.channel_id
    write_rows(
        conn,
        skips,
        SKIP_COLUMNS,
        [skip_tuple(ch, s) for s in batch.skipped],
        conflict=("channel_id", "provider_id"),
        update=SKIP_COLUMNS[2:],
    )
    forgotten = forgotten_skips(batch)
    for part in chunks(sorted(forgotten)):
        run(
            conn,
            f"DELETE FROM {skips.name} WHERE channel_id = {mark(conn)} "
            f"AND {among_sql(conn, skips.c.provider_id)}",
            ch,
            key_set(conn, part),
        )


def erased_among(conn: Connection, keys: Collection[str]) -> set[str]:
    """The erased address keys among ``keys`` (stored keys, not normalised)."""
    found: set[str] = set()
    for part in chunks(sorted(k for k in keys if "\x00" not in k)):
        rows = fetch(
            conn,
            f"SELECT key FROM {erased.name} WHERE {among_sql(conn, erased.c.key)}",
            key_set(conn, part),
        )
        found.update(str(k) for (k,) in rows)
    return found


def replace_links(
    conn: Connection, changes: Sequence[AddressLinks], *, refresh: bool = True
) -> set[str]:
    """Replace the links of each listed address key (empty links remove them).

    Only the difference to what is stored is written. Returns the keys whose
    links changed; with ``refresh`` the timeline rows of their threads are
    rebuilt (else the caller does it).
    """
    if not changes:
        return set()
    keys, wanted = wanted_links(changes)
    found = fetch(
        conn,
        f"SELECT key, kind, target_id FROM {address_links.name} "
        f"WHERE {among_sql(conn, address_links.c.key)}",
        key_set(conn, keys),
    )
    gone, added, changed = link_changes(wanted, {(key, kind, t) for key, kind, t in found})
    if gone:
        m = mark(conn)
        conn.exec_driver_sql(
            f"DELETE FROM {address_links.name} WHERE key = {m} AND kind = {m} AND target_id = {m}",
            gone,
        )
    write_rows(
        conn,
        address_links,
        ("key", "kind", "target_id"),
        added,
        conflict=("key", "kind", "target_id"),
    )
    if refresh:
        refresh_threads(conn, threads_of_keys(conn, changed))
    return changed
