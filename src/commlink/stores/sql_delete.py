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
from .sql_bulk import among_sql, fetch, is_postgres, key_set, mark, run
from .sql_schema import (
    THREAD_TARGETS_FILL,
    address_links,
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
    "escape_like",
    "forget_unstored_links",
    "refresh_threads",
    "remove_matching",
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


#: On PostgreSQL a commit of another channel touching the same thread may
#: write its rows between the delete and the insert of a refresh: each saw
#: its own copies, so the later time of the two is the thread's (SQLite
#: serialises writers).
_LATER_TIME_WINS = (
    " ON CONFLICT (kind, target_id, thread_id) DO UPDATE "
    f"SET last_at = GREATEST({thread_targets.name}.last_at, excluded.last_at)"
)


def refresh_threads(conn: Connection, thread_ids: Collection[str]) -> None:
    """Rebuild the timeline rows (``thread_targets``) of these threads from
    their messages, participants and the address links."""
    upsert = _LATER_TIME_WINS if is_postgres(conn) else ""
    for part in chunks(sorted(set(thread_ids))):
        keys = key_set(conn, part)
        run(
            conn,
            f"DELETE FROM {thread_targets.name} "
            f"WHERE {among_sql(conn, thread_targets.c.thread_id)}",
            keys,
        )
        threads = among_sql(conn, messages.c.thread_id, "m")
        fill = THREAD_TARGETS_FILL.format(where=threads, threads=threads) + upsert
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
    return sum(remove_matching(conn, channel_id, entries))


def remove_matching(
    conn: Connection,
    channel_id: str | None,
    entries: Collection[str],
    gone_keys: set[str] | None = None,
) -> tuple[int, int]:
    """Delete the associations of one channel (of every channel for
    ``None``) whose message or one of whose events has, in that channel's
    copy, a participant matching blocklist entries, and collect; returns
    how many message and event associations went. ``gone_keys`` collects the
    address keys of the participant and attendee rows deleted."""
    keys, domains = parse_entries(entries)
    if not keys and not domains:
        return 0, 0
    counts: list[int] = []
    dropped: dict[str, tuple[set[int], set[int]]] = {}
    for kind, (assoc, people) in enumerate(
        ((message_assocs, participants), (event_assocs, attendees))
    ):
        conditions: list[sa.ColumnElement[bool]] = []
        if keys:
            conditions.append(among(conn, people.c.key, sorted(keys)))
        if domains:
            conditions.append(among(conn, people.c.domain, sorted(domains)))
            conditions.extend(
                people.c.domain.like("%." + escape_like(d), escape="\\") for d in sorted(domains)
            )
        if people is participants:
            # a channel's own copy: another channel's copy never deletes one
            hits = sa.select(people.c.message_pk, people.c.channel_id).where(sa.or_(*conditions))
            if channel_id is not None:
                hits = hits.where(people.c.channel_id == channel_id)
            own = sa.tuple_(assoc.c.message_pk, assoc.c.channel_id).in_(hits)
        else:  # event rows are per channel already
            own = assoc.c.event_pk.in_(sa.select(people.c.event_pk).where(sa.or_(*conditions)))
        # an association is a provider id: it goes as a whole when any of its
        # events matches (a calendar object may hold a series and overrides)
        ident = (assoc.c.channel_id, assoc.c.scope_id, assoc.c.provider_id)
        mine = [] if channel_id is None else [assoc.c.channel_id == channel_id]
        matched = sa.select(*ident).where(own, *mine)
        stmt = sa.delete(assoc).where(*mine, sa.tuple_(*ident).in_(matched))
        rows = conn.execute(stmt.returning(*ident, pk_column(assoc))).all()
        counts.append(len({(ch, scope, pid) for ch, scope, pid, _ in rows}))
        for ch, _scope, _pid, pk in rows:
            dropped.setdefault(ch, (set(), set()))[kind].add(int(pk))
    for ch in sorted(dropped):
        collect(conn, ch, *dropped[ch], gone_keys=gone_keys)
    return counts[0], counts[1]


def escape_like(text: str) -> str:
    """``text`` for a ``LIKE`` pattern with ``\\`` as the escape character."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def collect(
    conn: Connection,
    channel_id: str,
    message_pks: Collection[int],
    event_pks: Collection[int],
    *,
    gone_keys: set[str] | None = None,
) -> None:
    """After associations of ``channel_id`` went: delete the channel's copies
    of the given messages that it no longer has an association with, the
    messages left without a copy, and the given events left without an
    association; rebuild the timeline rows of the threads concerned.
    ``gone_keys`` collects the address keys of the participant and attendee
    rows deleted (see ``forget_unstored_links``)."""
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
            sql = (
                f"DELETE FROM {table.name} WHERE channel_id = {m} "
                f"AND {among_sql(conn, table.c.message_pk)}"
            )
            if table is participants and gone_keys is not None:
                rows = fetch(conn, sql + " RETURNING key", channel_id, keys)
                gone_keys.update(str(k) for (k,) in rows)
            else:
                run(conn, sql, channel_id, keys)
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
            stmt = sa.delete(attendees).where(among(conn, attendees.c.event_pk, gone))
            if gone_keys is None:
                conn.execute(stmt)
            else:
                found = conn.execute(stmt.returning(attendees.c.key)).scalars().all()
                gone_keys.update(str(k) for k in found)
            conn.execute(sa.delete(events).where(among(conn, events.c.pk, gone)))


def forget_unstored_links(conn: Connection, keys: Collection[str]) -> None:
    """Delete the links of the address keys among ``keys`` that no stored
    participant or attendee holds any more (their last copy went)."""
    for part in chunks(sorted(k for k in keys if k)):
        found = key_set(conn, part)
        run(
            conn,
            f"DELETE FROM {address_links.name} WHERE {among_sql(conn, address_links.c.key)} "
            f"AND key NOT IN (SELECT key FROM {participants.name} "
            f"WHERE {among_sql(conn, participants.c.key)}) "
            f"AND key NOT IN (SELECT key FROM {attendees.name} "
            f"WHERE {among_sql(conn, attendees.c.key)})",
            found,
            found,
            found,
        )
