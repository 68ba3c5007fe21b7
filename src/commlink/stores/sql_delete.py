"""Deletions of the SQL store: associations, blocklist matches, garbage
collection of copies, messages and events, and the timeline rows
(``thread_targets``) that every write keeps in step.

A channel's copy of a message goes when the channel's last association with
it goes; the logical message when no copy is left. An event row is one
channel's copy and goes with that channel's last association to it. Every
function takes an open ``Connection`` inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .common import parse_entries
from .sql_bulk import among_sql, fetch, key_set, mark, run
from .sql_schema import (
    THREAD_TARGETS_FILL,
    among,
    attendees,
    chunks,
    event_assocs,
    events,
    message_assocs,
    message_copies,
    message_refs,
    messages,
    participants,
    thread_targets,
)

__all__ = [
    "collect",
    "delete_assocs",
    "delete_matching",
    "refresh_threads",
    "threads_of_keys",
]

_ASSOCS = (message_assocs, event_assocs)


def pk_column(table: sa.Table) -> sa.Column[Any]:
    """The column of an association table pointing at its message or event."""
    return table.c.message_pk if table is message_assocs else table.c.event_pk


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
        threads = among_sql(conn, messages.c.thread_id, "m")
        fill = THREAD_TARGETS_FILL.format(where=threads, threads=threads)
        run(conn, fill, keys, keys)


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
            rows = conn.execute(stmt.returning(pk_column(table)))
            dropped.update(int(pk) for pk in rows.scalars())
    return found


def delete_matching(conn: Connection, channel_id: str, entries: Collection[str]) -> int:
    """Delete the channel's associations (provider ids) whose message or one
    of whose events has, in the channel's own copy, a participant matching
    blocklist entries; returns how many."""
    keys, domains = parse_entries(entries)
    if not keys and not domains:
        return 0
    removed = 0
    dropped: tuple[set[int], set[int]] = (set(), set())
    for assoc, people, dropped_pks in (
        (message_assocs, participants, dropped[0]),
        (event_assocs, attendees, dropped[1]),
    ):
        conditions: list[sa.ColumnElement[bool]] = []
        if keys:
            conditions.append(among(conn, people.c.key, sorted(keys)))
        if domains:
            conditions.append(among(conn, people.c.domain, sorted(domains)))
            conditions.extend(
                people.c.domain.like("%." + _escape_like(d), escape="\\") for d in sorted(domains)
            )
        if people is participants:
            # the channel's copy: another channel's copy never deletes this one
            hits = sa.select(people.c.message_pk).where(
                people.c.channel_id == channel_id, sa.or_(*conditions)
            )
        else:  # event rows are per channel already
            hits = sa.select(people.c.event_pk).where(sa.or_(*conditions))
        # an association is a provider id: it goes as a whole when any of its
        # events matches (a calendar object may hold a series and overrides)
        matched = sa.select(assoc.c.scope_id, assoc.c.provider_id).where(
            assoc.c.channel_id == channel_id, pk_column(assoc).in_(hits)
        )
        rows = conn.execute(
            sa.delete(assoc)
            .where(
                assoc.c.channel_id == channel_id,
                sa.tuple_(assoc.c.scope_id, assoc.c.provider_id).in_(matched),
            )
            .returning(assoc.c.scope_id, assoc.c.provider_id, pk_column(assoc))
        ).all()
        removed += len({(scope_id, provider_id) for scope_id, provider_id, _ in rows})
        dropped_pks.update(int(pk) for _, _, pk in rows)
    collect(conn, channel_id, *dropped)
    return removed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def collect(
    conn: Connection, channel_id: str, message_pks: Collection[int], event_pks: Collection[int]
) -> None:
    """After associations of ``channel_id`` went: delete the channel's copies
    of the given messages that it no longer has an association with, the
    messages left without a copy, and the given events left without an
    association; rebuild the timeline rows of the threads concerned."""
    threads: set[str] = set()
    m = mark(conn)
    orphan = (
        f"SELECT c.message_pk, t.thread_id FROM {message_copies.name} c "
        f"JOIN {messages.name} t ON t.pk = c.message_pk "
        f"WHERE c.channel_id = {m} AND {among_sql(conn, message_copies.c.message_pk, 'c')} "
        f"AND NOT EXISTS (SELECT 1 FROM {message_assocs.name} a "
        "WHERE a.message_pk = c.message_pk AND a.channel_id = c.channel_id)"
    )
    for pk_part in chunks(sorted(message_pks)):
        found = fetch(conn, orphan, channel_id, key_set(conn, pk_part))
        dead = [int(pk) for pk, _ in found]
        threads.update(str(thread) for _, thread in found)
        if not dead:
            continue
        keys = key_set(conn, dead)
        for table in (participants, message_refs, message_copies):
            run(
                conn,
                f"DELETE FROM {table.name} WHERE channel_id = {m} "
                f"AND {among_sql(conn, table.c.message_pk)}",
                channel_id,
                keys,
            )
        run(
            conn,
            f"DELETE FROM {messages.name} WHERE {among_sql(conn, messages.c.pk)} "
            f"AND NOT EXISTS (SELECT 1 FROM {message_copies.name} c "
            f"WHERE c.message_pk = {messages.name}.pk)",
            keys,
        )
    refresh_threads(conn, threads)
    for pk_part in chunks(sorted(event_pks)):
        orphan_events = sa.select(events.c.pk).where(
            among(conn, events.c.pk, pk_part),
            ~sa.exists().where(event_assocs.c.event_pk == events.c.pk),
        )
        gone = [int(pk) for pk in conn.execute(orphan_events).scalars()]
        if gone:
            conn.execute(sa.delete(attendees).where(among(conn, attendees.c.event_pk, gone)))
            conn.execute(sa.delete(events).where(among(conn, events.c.pk, gone)))
