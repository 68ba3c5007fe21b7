"""The write path of ``SqlStore``: batch commits, deletions and garbage collection.

Every function takes an open ``Connection`` inside the caller's transaction
and uses bulk statements (executemany, ``IN (...)`` in chunks), so a batch of
hundreds of messages costs a handful of statements.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import InvalidInput
from ..model import Event
from ..records import AddressLinks, MessageRecord, SyncBatch
from .common import parse_entries
from .sql_rows import attendee_rows, event_row, message_row, participant_rows, rid_key, skip_row
from .sql_schema import (
    address_links,
    among,
    attendees,
    channels,
    chunks,
    cursors,
    event_assocs,
    events,
    excluded,
    insert_many,
    message_assocs,
    message_refs,
    messages,
    participants,
    skips,
    upsert,
)

__all__ = ["collect", "commit_batch", "delete_assocs", "delete_matching", "replace_links"]

_ASSOCS = (message_assocs, event_assocs)


def _pk_column(table: sa.Table) -> sa.Column[Any]:
    return table.c.message_pk if table is message_assocs else table.c.event_pk


def commit_batch(conn: Connection, batch: SyncBatch) -> None:
    """Apply a validated batch (see ``SyncBatch``) inside the caller's transaction."""
    known = conn.execute(sa.select(channels.c.id).where(channels.c.id == batch.channel_id))
    if known.first() is None:
        raise InvalidInput(f"unknown channel {batch.channel_id!r}")
    ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
    dropped_messages: set[int] = set()
    dropped_events: set[int] = set()
    if batch.messages:
        dropped_messages |= _write_messages(conn, batch)
    if batch.events:
        dropped_events |= _write_events(conn, batch)
    replace_links(conn, batch.links)
    if batch.thread_merges:
        conn.execute(
            sa.update(messages)
            .where(messages.c.thread_id == sa.bindparam("old_thread"))
            .values(thread_id=sa.bindparam("new_thread")),
            [{"old_thread": old, "new_thread": new} for old, new in batch.thread_merges],
        )
    if batch.deleted:
        found = delete_assocs(conn, ch, sc, batch.deleted)
        dropped_messages |= found[0]
        dropped_events |= found[1]
    if batch.seen:
        for table in _ASSOCS:
            for part in chunks(sorted(set(batch.seen))):
                conn.execute(
                    sa.update(table)
                    .where(
                        table.c.channel_id == ch,
                        table.c.scope_id == sc,
                        among(conn, table.c.provider_id, part),
                    )
                    .values(generation=gen)
                )
    _write_skips(conn, batch)
    if batch.cursor is not None:
        upsert(
            conn,
            cursors,
            [{"channel_id": ch, "scope_id": sc, "cursor": batch.cursor}],
            ["channel_id", "scope_id"],
            ["cursor"],
        )
    if batch.sweep:
        for table, dropped in ((message_assocs, dropped_messages), (event_assocs, dropped_events)):
            swept = conn.execute(
                sa.delete(table)
                .where(table.c.channel_id == ch, table.c.scope_id == sc, table.c.generation < gen)
                .returning(_pk_column(table))
            )
            dropped.update(int(pk) for pk in swept.scalars())
    collect(conn, dropped_messages, dropped_events)


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


def _write_messages(conn: Connection, batch: SyncBatch) -> set[int]:
    """Upsert logical messages, their participants, references and associations.

    Returns the messages that provider ids of this batch pointed to before.
    """
    ch, sc = batch.channel_id, batch.scope_id
    provider_ids = [r.message.provider_id for r in batch.messages]
    previous: set[int] = set()
    for part in chunks(provider_ids):
        previous.update(
            int(pk)
            for pk in conn.execute(
                sa.select(message_assocs.c.message_pk).where(
                    message_assocs.c.channel_id == ch,
                    message_assocs.c.scope_id == sc,
                    among(conn, message_assocs.c.provider_id, part),
                )
            ).scalars()
        )
    merged = _merged(batch.messages)
    new = excluded(conn, messages)
    upsert(
        conn,
        messages,
        [message_row(r) for r in merged.values()],
        ["message_id"],
        {
            "thread_id": new.thread_id,
            "sent_at": new.sent_at,
            "subject": new.subject,
            "snippet": new.snippet,
            "attachments": new.attachments,
            "body": sa.func.coalesce(new.body, messages.c.body),
        },
    )
    pks: dict[str, int] = {}
    for part in chunks(list(merged)):
        rows = conn.execute(
            sa.select(messages.c.pk, messages.c.message_id).where(
                among(conn, messages.c.message_id, part)
            )
        )
        pks.update((mid, int(pk)) for pk, mid in rows)
    for table in (participants, message_refs):
        for pk_part in chunks(sorted(pks.values())):
            conn.execute(sa.delete(table).where(among(conn, table.c.message_pk, pk_part)))
    people: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for mid, record in merged.items():
        pk = pks[mid]
        people.extend(participant_rows(pk, record.message.participants))
        ids = (*record.message.in_reply_to, *record.message.references)
        refs.extend({"message_pk": pk, "pos": i, "ref_id": ref} for i, ref in enumerate(ids))
    if people:
        insert_many(conn, sa.insert(participants), people)
    if refs:
        insert_many(conn, sa.insert(message_refs), refs)
    upsert(
        conn,
        message_assocs,
        [
            {
                "channel_id": ch,
                "scope_id": sc,
                "provider_id": r.message.provider_id,
                "message_pk": pks[r.message.message_id],
                "generation": batch.generation,
                "folders": json.dumps(list(r.message.folders)),
                "direction": r.direction.value,
            }
            for r in batch.messages
        ],
        ["channel_id", "scope_id", "provider_id"],
        ["message_pk", "generation", "folders", "direction"],
    )
    return previous - set(pks.values())


def _write_events(conn: Connection, batch: SyncBatch) -> set[int]:
    """Upsert events and attendees; replace the event set of each provider id.

    Returns the events that lost an association to a re-committed provider id.
    """
    merged: dict[tuple[str, str], Event] = {}
    for record in batch.events:
        merged[(record.event.uid, rid_key(record.event.recurrence_id))] = record.event
    upsert(
        conn,
        events,
        [event_row(e) for e in merged.values()],
        ["uid", "rid_key"],
        [c.name for c in events.columns if c.name not in ("pk", "uid", "rid_key")],
    )
    pks: dict[tuple[str, str], int] = {}
    for part in chunks(sorted({uid for uid, _ in merged})):
        rows = conn.execute(
            sa.select(events.c.pk, events.c.uid, events.c.rid_key).where(
                among(conn, events.c.uid, part)
            )
        )
        pks.update(((uid, rid), int(pk)) for pk, uid, rid in rows if (uid, rid) in merged)
    for pk_part in chunks(sorted(pks.values())):
        conn.execute(sa.delete(attendees).where(among(conn, attendees.c.event_pk, pk_part)))
    rows_out = [row for key, e in merged.items() for row in attendee_rows(pks[key], e)]
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
    upsert(
        conn,
        skips,
        [skip_row(ch, s) for s in batch.skipped],
        ["channel_id", "provider_id"],
        ["reason", "detail", "message_id", "subject", "sender", "sent_at"],
    )
    imported = sorted(
        {r.message.provider_id for r in batch.messages}
        | {r.event.provider_id for r in batch.events}
    )
    for part in chunks(imported):
        conn.execute(
            sa.delete(skips).where(skips.c.channel_id == ch, among(conn, skips.c.provider_id, part))
        )


def replace_links(conn: Connection, changes: Sequence[AddressLinks]) -> None:
    """Replace the links of each listed address key (empty links remove them)."""
    if not changes:
        return
    keys = sorted({c.key for c in changes})
    for part in chunks(keys):
        conn.execute(sa.delete(address_links).where(among(conn, address_links.c.key, part)))
    latest = {c.key: c for c in changes}  # the last change of a key wins
    rows = {(c.key, link.kind.value, link.id) for c in latest.values() for link in c.links}
    if rows:
        insert_many(
            conn,
            sa.insert(address_links),
            [{"key": k, "kind": kind, "target_id": t} for k, kind, t in sorted(rows)],
        )


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
    """Delete the channel's associations whose message or event has a
    participant matching blocklist entries; returns how many."""
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
        rows = conn.execute(
            sa.delete(assoc)
            .where(assoc.c.channel_id == channel_id, _pk_column(assoc).in_(hits))
            .returning(_pk_column(assoc))
        )
        pks = [int(pk) for pk in rows.scalars()]
        removed += len(pks)
        dropped_pks.update(pks)
    collect(conn, *dropped)
    return removed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def collect(conn: Connection, message_pks: Collection[int], event_pks: Collection[int]) -> None:
    """Delete the given messages and events if they have no association left."""
    for pk_part in chunks(sorted(message_pks)):
        orphan = sa.select(messages.c.pk).where(
            among(conn, messages.c.pk, pk_part),
            ~sa.exists().where(message_assocs.c.message_pk == messages.c.pk),
        )
        dead = [int(pk) for pk in conn.execute(orphan).scalars()]
        if dead:
            conn.execute(
                sa.delete(participants).where(among(conn, participants.c.message_pk, dead))
            )
            conn.execute(
                sa.delete(message_refs).where(among(conn, message_refs.c.message_pk, dead))
            )
            conn.execute(sa.delete(messages).where(among(conn, messages.c.pk, dead)))
    for pk_part in chunks(sorted(event_pks)):
        orphan = sa.select(events.c.pk).where(
            among(conn, events.c.pk, pk_part),
            ~sa.exists().where(event_assocs.c.event_pk == events.c.pk),
        )
        dead = [int(pk) for pk in conn.execute(orphan).scalars()]
        if dead:
            conn.execute(sa.delete(attendees).where(among(conn, attendees.c.event_pk, dead)))
            conn.execute(sa.delete(events).where(among(conn, events.c.pk, dead)))
