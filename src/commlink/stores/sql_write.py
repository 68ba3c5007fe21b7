"""The write path of ``SqlStore``: batch commits, deletions and garbage collection.

Every function takes an open ``Connection`` inside the caller's transaction.
A batch costs about ten statements whatever its size: the hot paths send
driver-level SQL (``sql_bulk``) with each key set as one parameter and each
table's rows as one executemany (SQLite) or one ``unnest`` insert
(PostgreSQL). A re-committed message whose content digest is unchanged is
not rewritten, nor are its participants, references or association.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import InvalidInput
from ..model import Event
from ..records import AddressLinks, MessageRecord, SyncBatch
from .common import DAWN, event_version, parse_entries
from .sql_bulk import among_sql, fetch, is_postgres, key_set, mark, run, write_rows
from .sql_rows import (
    MESSAGE_COLUMNS,
    PARTICIPANT_COLUMNS,
    SKIP_COLUMNS,
    attendee_rows,
    content_hash,
    event_row,
    folders_json,
    message_tuple,
    participant_tuples,
    rid_key,
    skip_tuple,
)
from .sql_schema import (
    THREAD_TARGETS_FILL,
    address_links,
    among,
    attendees,
    channels,
    chunks,
    cursors,
    event_assocs,
    events,
    insert_many,
    message_assocs,
    message_refs,
    messages,
    participants,
    skips,
    thread_targets,
    upsert,
)

__all__ = [
    "collect",
    "commit_batch",
    "delete_assocs",
    "delete_matching",
    "refresh_threads",
    "replace_links",
    "threads_of_keys",
]

_ASSOCS = (message_assocs, event_assocs)
_ASSOC_COLUMNS = (
    "channel_id",
    "scope_id",
    "provider_id",
    "message_pk",
    "generation",
    "folders",
    "direction",
)
_MESSAGE_UPDATE = {
    "thread_id": "excluded.thread_id",
    "sent_at": "excluded.sent_at",
    "subject": "excluded.subject",
    "snippet": "excluded.snippet",
    "attachments": "excluded.attachments",
    # a metadata-only fetch never erases a body fetched before
    "body": f"COALESCE(excluded.body, {messages.name}.body)",
    "content_hash": "excluded.content_hash",
}


def _pk_column(table: sa.Table) -> sa.Column[Any]:
    return table.c.message_pk if table is message_assocs else table.c.event_pk


def commit_batch(conn: Connection, batch: SyncBatch) -> None:
    """Apply a validated batch (see ``SyncBatch``) inside the caller's transaction."""
    m = mark(conn)
    if not fetch(conn, f"SELECT 1 FROM {channels.name} WHERE id = {m}", batch.channel_id):
        raise InvalidInput(f"unknown channel {batch.channel_id!r}")
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    dropped_messages: set[int] = set()
    dropped_events: set[int] = set()
    touched: set[str] = set()  # threads whose timeline rows must be rebuilt
    if batch.messages:
        dropped_messages |= _write_messages(conn, batch, touched)
    if batch.events:
        dropped_events |= _write_events(conn, batch)
    relinked = replace_links(conn, batch.links, refresh=False)
    touched |= threads_of_keys(conn, relinked)
    if batch.thread_merges:
        touched.update(t for merge in batch.thread_merges for t in merge)
        # a merged message's digest no longer describes its row: clear it
        conn.exec_driver_sql(
            f"UPDATE {messages.name} SET thread_id = {m}, content_hash = '' WHERE thread_id = {m}",
            [(new, old) for old, new in batch.thread_merges],
        )
    if batch.deleted:
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
                .returning(_pk_column(table))
            )
            dropped.update(int(pk) for pk in swept.scalars())
    refresh_threads(conn, touched)
    collect(conn, dropped_messages, dropped_events)


def threads_of_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """Threads with a message one of these address keys took part in."""
    if not keys:
        return set()
    sql = (
        f"SELECT DISTINCT m.thread_id FROM {participants.name} p "
        f"JOIN {messages.name} m ON m.pk = p.message_pk "
        f"WHERE {among_sql(conn, participants.c.key, 'p')}"
    )
    found: set[str] = set()
    for part in chunks(sorted(keys)):
        found.update(str(t) for (t,) in fetch(conn, sql, key_set(conn, part)))
    return found


def refresh_threads(conn: Connection, thread_ids: Collection[str]) -> None:
    """Rebuild the timeline rows (``thread_targets``) of these threads from
    their messages, participants and the address links."""
    for part in chunks(sorted(set(thread_ids))):
        keys = key_set(conn, part)
        run(
            conn,
            f"DELETE FROM {thread_targets.name} "
            f"WHERE {among_sql(conn, thread_targets.c.thread_id)}",
            keys,
        )
        fill = THREAD_TARGETS_FILL.format(
            where=among_sql(conn, messages.c.thread_id, "m"),
            threads=among_sql(conn, messages.c.thread_id),
        )
        run(conn, fill, keys, keys)


def _merged(records: Iterable[MessageRecord]) -> dict[str, MessageRecord]:
    """One record per Message-ID: the last wins, but a known body is never lost."""
    merged: dict[str, MessageRecord] = {}
    for record in records:
        previous = merged.get(record.message.message_id)
        if previous is not None and record.message.body is None:
            body = previous.message.body
            record = attrs.evolve(record, message=attrs.evolve(record.message, body=body))
        merged[record.message.message_id] = record
    return merged


def _write_messages(conn: Connection, batch: SyncBatch, touched: set[str]) -> set[int]:
    """Upsert logical messages, their participants, references and associations.

    Returns the messages that provider ids of this batch pointed to before;
    adds the threads of rewritten messages (before and after) to ``touched``.
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
    pks = _write_logical(conn, _merged(batch.messages), touched)
    rows: list[tuple[Any, ...]] = []
    for record in batch.messages:
        msg = record.message
        assoc = (pks[msg.message_id], gen, folders_json(msg.folders), record.direction.value)
        if before.get(msg.provider_id) != assoc:
            rows.append((ch, sc, msg.provider_id, *assoc))
    write_rows(
        conn,
        message_assocs,
        _ASSOC_COLUMNS,
        rows,
        conflict=_ASSOC_COLUMNS[:3],
        update=_ASSOC_COLUMNS[3:],
    )
    return {int(assoc[0]) for assoc in before.values()} - set(pks.values())


def _write_logical(
    conn: Connection, merged: Mapping[str, MessageRecord], touched: set[str]
) -> dict[str, int]:
    """Write the messages whose digest changed (or that are new) with their
    participants and references; returns every message's pk by Message-ID."""
    select = (
        f"SELECT message_id, pk, content_hash, thread_id FROM {messages.name} WHERE "
        + among_sql(conn, messages.c.message_id)
    )
    stored = {
        mid: (int(pk), digest, thread)
        for mid, pk, digest, thread in fetch(conn, select, key_set(conn, merged))
    }
    digests = {mid: content_hash(record) for mid, record in merged.items()}
    changed = [mid for mid, digest in digests.items() if stored.get(mid, (0, ""))[1] != digest]
    pks = {mid: pk for mid, (pk, _digest, _thread) in stored.items()}
    if not changed:
        return pks
    touched.update(stored[mid][2] for mid in changed if mid in stored)
    touched.update(merged[mid].thread_id for mid in changed)
    write_rows(
        conn,
        messages,
        MESSAGE_COLUMNS,
        [message_tuple(merged[mid], digests[mid]) for mid in changed],
        conflict=("message_id",),
        update=_MESSAGE_UPDATE,
    )
    missing = [mid for mid in changed if mid not in pks]
    if missing:
        pks.update((mid, int(pk)) for mid, pk, *_ in fetch(conn, select, key_set(conn, missing)))
    # on PostgreSQL also for messages that were new a moment ago: another
    # transaction may have written them since (SQLite writers are serialised)
    serialised = not is_postgres(conn)
    rewritten = [pks[mid] for mid in changed if mid in stored or not serialised]
    for table in (participants, message_refs) if rewritten else ():
        sql = f"DELETE FROM {table.name} WHERE {among_sql(conn, table.c.message_pk)}"
        run(conn, sql, key_set(conn, rewritten))
    people: list[tuple[Any, ...]] = []
    refs: list[tuple[Any, ...]] = []
    for mid in changed:
        record = merged[mid]
        pk, msg = pks[mid], record.message
        people.extend(participant_tuples(pk, msg.participants))
        chain = (*msg.in_reply_to, *msg.references, *record.thread_keys)
        refs.extend((pk, i, ref) for i, ref in enumerate(chain))
    write_rows(conn, participants, PARTICIPANT_COLUMNS, people)
    write_rows(conn, message_refs, ("message_pk", "pos", "ref_id"), refs)
    return pks


def _write_events(conn: Connection, batch: SyncBatch) -> set[int]:
    """Upsert events and attendees; replace the event set of each provider id.

    Returns the events that lost an association to a re-committed provider id.
    """
    merged: dict[tuple[str, str], Event] = {}
    for record in batch.events:
        key = (record.event.uid, rid_key(record.event.recurrence_id))
        if key not in merged or event_version(record.event) >= event_version(merged[key]):
            merged[key] = record.event
    # a stored copy more recent than the incoming one stays (SEQUENCE, then update time)
    stored: dict[tuple[str, str], tuple[int, tuple[int, datetime]]] = {}
    for part in chunks(sorted({uid for uid, _ in merged})):
        rows = conn.execute(
            sa.select(
                events.c.pk, events.c.uid, events.c.rid_key, events.c.sequence, events.c.updated
            ).where(among(conn, events.c.uid, part))
        )
        for pk, uid, rid, sequence, updated in rows:
            if (uid, rid) in merged:
                stored[(uid, rid)] = (int(pk), (int(sequence), updated or DAWN))
    newer = {k: e for k, e in merged.items() if k not in stored or event_version(e) >= stored[k][1]}
    upsert(
        conn,
        events,
        [event_row(e) for e in newer.values()],
        ["uid", "rid_key"],
        [c.name for c in events.columns if c.name not in ("pk", "uid", "rid_key")],
    )
    pks: dict[tuple[str, str], int] = {k: pk for k, (pk, _) in stored.items()}
    missing = sorted({uid for uid, rid in newer if (uid, rid) not in pks})
    for part in chunks(missing):
        created = conn.execute(
            sa.select(events.c.pk, events.c.uid, events.c.rid_key).where(
                among(conn, events.c.uid, part)
            )
        )
        pks.update(((uid, rid), int(pk)) for pk, uid, rid in created if (uid, rid) in merged)
    rewritten = sorted(pks[k] for k in newer)
    for pk_part in chunks(rewritten):
        conn.execute(sa.delete(attendees).where(among(conn, attendees.c.event_pk, pk_part)))
    rows_out = [row for key, e in newer.items() for row in attendee_rows(pks[key], e)]
    if rows_out:
        insert_many(conn, sa.insert(attendees), rows_out)
    provider_ids = sorted({r.event.provider_id for r in batch.events})
    dropped: set[int] = set()
    for part in chunks(provider_ids):
        gone = conn.execute(
            sa.delete(event_assocs)
            .where(
                event_assocs.c.channel_id == batch.channel_id,
                event_assocs.c.scope_id == batch.scope_id,
                among(conn, event_assocs.c.provider_id, part),
            )
            .returning(event_assocs.c.event_pk)
        )
        dropped.update(int(pk) for pk in gone.scalars())
    assoc_rows = {
        (r.event.provider_id, pks[(r.event.uid, rid_key(r.event.recurrence_id))])
        for r in batch.events
    }
    insert_many(
        conn,
        sa.insert(event_assocs),
        [
            {
                "channel_id": batch.channel_id,
                "scope_id": batch.scope_id,
                "provider_id": provider_id,
                "event_pk": pk,
                "generation": batch.generation,
            }
            for provider_id, pk in sorted(assoc_rows)
        ],
    )
    return dropped - {pk for _, pk in assoc_rows}


def _write_skips(conn: Connection, batch: SyncBatch) -> None:
    ch = batch.channel_id
    write_rows(
        conn,
        skips,
        SKIP_COLUMNS,
        [skip_tuple(ch, s) for s in batch.skipped],
        conflict=("channel_id", "provider_id"),
        update=SKIP_COLUMNS[2:],
    )
    imported = {r.message.provider_id for r in batch.messages} | {
        r.event.provider_id for r in batch.events
    }
    if imported:
        run(
            conn,
            f"DELETE FROM {skips.name} WHERE channel_id = {mark(conn)} "
            f"AND {among_sql(conn, skips.c.provider_id)}",
            ch,
            key_set(conn, sorted(imported)),
        )


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
    latest = {c.key: c for c in changes}  # the last change of a key wins
    wanted = {(c.key, link.kind.value, link.id) for c in latest.values() for link in c.links}
    found = fetch(
        conn,
        f"SELECT key, kind, target_id FROM {address_links.name} "
        f"WHERE {among_sql(conn, address_links.c.key)}",
        key_set(conn, sorted(latest)),
    )
    stored = {(key, kind, target) for key, kind, target in found}
    gone = sorted(stored - wanted)
    if gone:
        m = mark(conn)
        conn.exec_driver_sql(
            f"DELETE FROM {address_links.name} WHERE key = {m} AND kind = {m} AND target_id = {m}",
            gone,
        )
    added = sorted(wanted - stored)
    write_rows(
        conn,
        address_links,
        ("key", "kind", "target_id"),
        added,
        conflict=("key", "kind", "target_id"),
    )
    changed = {key for key, _, _ in gone} | {key for key, _, _ in added}
    if refresh:
        refresh_threads(conn, threads_of_keys(conn, changed))
    return changed


def delete_assocs(
    conn: Connection, channel_id: str, scope_id: str | None, provider_ids: Collection[str] | None
) -> tuple[set[int], set[int]]:
    """Delete associations of a channel (one scope, some provider ids, when
    given); returns the message and event pks that lost one."""
    found: tuple[set[int], set[int]] = (set(), set())
    id_parts: list[Sequence[str] | None] = (
        [None] if provider_ids is None else list(chunks(sorted(set(provider_ids))))
    )
    for table, dropped in zip(_ASSOCS, found, strict=True):
        for part in id_parts:
            stmt = sa.delete(table).where(table.c.channel_id == channel_id)
            if scope_id is not None:
                stmt = stmt.where(table.c.scope_id == scope_id)
            if part is not None:
                stmt = stmt.where(among(conn, table.c.provider_id, part))
            rows = conn.execute(stmt.returning(_pk_column(table)))
            dropped.update(int(pk) for pk in rows.scalars())
    return found


def delete_matching(conn: Connection, channel_id: str, entries: Collection[str]) -> int:
    """Delete the channel's associations (provider ids) whose message or one
    of whose events has a participant matching blocklist entries; returns how
    many."""
    keys, domains = parse_entries(entries)
    if not keys and not domains:
        return 0
    removed = 0
    dropped: tuple[set[int], set[int]] = (set(), set())
    for assoc, people, dropped_pks in (
        (message_assocs, participants, dropped[0]),
        (event_assocs, attendees, dropped[1]),
    ):
        people_pk = people.c.message_pk if people is participants else people.c.event_pk
        conditions: list[sa.ColumnElement[bool]] = []
        if keys:
            conditions.append(among(conn, people.c.key, sorted(keys)))
        if domains:
            conditions.append(among(conn, people.c.domain, sorted(domains)))
            conditions.extend(
                people.c.domain.like("%." + _escape_like(d), escape="\\") for d in sorted(domains)
            )
        hits = sa.select(people_pk).where(sa.or_(*conditions))
        # an association is a provider id: it goes as a whole when any of its
        # events matches (a calendar object may hold a series and overrides)
        matched = sa.select(assoc.c.scope_id, assoc.c.provider_id).where(
            assoc.c.channel_id == channel_id, _pk_column(assoc).in_(hits)
        )
        rows = conn.execute(
            sa.delete(assoc)
            .where(
                assoc.c.channel_id == channel_id,
                sa.tuple_(assoc.c.scope_id, assoc.c.provider_id).in_(matched),
            )
            .returning(assoc.c.scope_id, assoc.c.provider_id, _pk_column(assoc))
        ).all()
        removed += len({(scope_id, provider_id) for scope_id, provider_id, _ in rows})
        dropped_pks.update(int(pk) for _, _, pk in rows)
    collect(conn, *dropped)
    return removed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def collect(conn: Connection, message_pks: Collection[int], event_pks: Collection[int]) -> None:
    """Delete the given messages and events if they have no association left."""
    threads: set[str] = set()
    for pk_part in chunks(sorted(message_pks)):
        orphan = sa.select(messages.c.pk, messages.c.thread_id).where(
            among(conn, messages.c.pk, pk_part),
            ~sa.exists().where(message_assocs.c.message_pk == messages.c.pk),
        )
        found = conn.execute(orphan).all()
        dead = [int(pk) for pk, _ in found]
        threads.update(str(thread) for _, thread in found)
        if dead:
            conn.execute(
                sa.delete(participants).where(among(conn, participants.c.message_pk, dead))
            )
            conn.execute(
                sa.delete(message_refs).where(among(conn, message_refs.c.message_pk, dead))
            )
            conn.execute(sa.delete(messages).where(among(conn, messages.c.pk, dead)))
    refresh_threads(conn, threads)
    for pk_part in chunks(sorted(event_pks)):
        orphan = sa.select(events.c.pk).where(
            among(conn, events.c.pk, pk_part),
            ~sa.exists().where(event_assocs.c.event_pk == events.c.pk),
        )
        dead = [int(pk) for pk in conn.execute(orphan).scalars()]
        if dead:
            conn.execute(sa.delete(attendees).where(among(conn, attendees.c.event_pk, dead)))
            conn.execute(sa.delete(events).where(among(conn, events.c.pk, dead)))
