"""The read path of ``SqlStore``: timelines, threads and events with
visibility applied, in a constant number of queries per call.

What a viewer sees of each message or meeting comes from one channel's copy
(see ``stores.copies``): every copy of the records concerned is read with
its channel's owner and visibility, and the choice is made here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ..model import Address, Channel, Direction, Event, Participant, Role, Visibility
from ..records import (
    EventSummary,
    MessageView,
    Page,
    PageRequest,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from .common import (
    MAX_SUMMARY_MESSAGES,
    MAX_SUMMARY_PARTICIPANTS,
    EventKey,
    StoredMessage,
    ThreadTotals,
    message_after,
    page_events,
    resolve_threads,
    thread_after,
    validate_page,
)
from .copies import (
    Bound,
    Holder,
    Seen,
    meeting_summaries,
    message_views,
    seen_messages,
    thread_page_seen,
    timeline_page,
)
from .sql_bulk import among_sql, fetch, is_postgres, key_set, mark
from .sql_rows import channel_from_row, event_from_rows, stored_message
from .sql_schema import (
    UtcDateTime,
    address_links,
    among,
    attendees,
    channels,
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
    "event_page",
    "known_ids",
    "planned_for_parameters",
    "thread",
    "thread_links",
    "threads_by_message_ids",
    "timeline",
]


def planned_for_parameters(conn: Connection) -> None:
    """On PostgreSQL, plan the statements of this transaction for their own
    parameters. A driver prepares a statement it ran five times, and the
    server may then keep one generic plan for it, made for the table sizes
    of that moment and blind to which channel a query names: the per-batch
    lookups below, planned while an import's tables were small, kept
    scanning them whole. Only for these: planning every statement afresh
    costs more than it saves (``scale.py``: 1,430 msg/s against 1,590)."""
    if is_postgres(conn):
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def known_ids(conn: Connection, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
    planned_for_parameters(conn)  # one Celery worker: 5% faster, 10% less server CPU
    m = mark(conn)
    sql = " UNION ".join(
        f"SELECT provider_id FROM {table.name} WHERE channel_id = {m} "
        f"AND scope_id = {m} AND {among_sql(conn, table.c.provider_id)}"
        for table in (message_assocs, event_assocs)
    )
    found: set[str] = set()
    for part in chunks(sorted(set(ids))):
        keys = key_set(conn, part)
        rows = fetch(conn, sql, channel_id, scope_id, keys, channel_id, scope_id, keys)
        found.update(provider_id for (provider_id,) in rows)
    return found


def threads_by_message_ids(conn: Connection, ids: Collection[str]) -> dict[str, str]:
    own: dict[str, str] = {}
    referencing: list[tuple[str, Any, str, str]] = []
    for part in chunks(sorted(set(ids))):
        keys = key_set(conn, part)
        rows = fetch(
            conn,
            f"SELECT message_id, thread_id FROM {messages.name} "
            f"WHERE {among_sql(conn, messages.c.message_id)}",
            keys,
        )
        own.update((mid, tid) for mid, tid in rows)
        referencing.extend(_oldest_referencing(conn, keys))
    return resolve_threads(own, referencing)


def _oldest_referencing(
    conn: Connection, keys: Any, channel_id: str | None = None
) -> list[tuple[str, Any, str, str]]:
    """``(referenced id, date, Message-ID, thread id)`` of the copies (of
    ``channel_id``'s, when given) at the earliest date among those
    referencing each of the key set's ids (``resolve_threads`` breaks ties).

    Grouped in SQL: an id that thousands of copies reference (the root of a
    long thread, named by every new message of it) is a row or two, not
    thousands, on the path of every sync batch.
    """
    param = mark(conn)
    mine = f" AND r.channel_id = {param}" if channel_id is not None else ""
    among = among_sql(conn, message_refs.c.ref_id, "r")
    copies = (
        f"FROM {message_refs.name} r JOIN {message_copies.name} c "
        "ON c.message_pk = r.message_pk AND c.channel_id = r.channel_id "
    )
    sql = (
        f"SELECT r.ref_id, c.sent_at, m.message_id, m.thread_id {copies}"
        f"JOIN {messages.name} m ON m.pk = r.message_pk "
        f"JOIN (SELECT r.ref_id AS ref, min(c.sent_at) AS first {copies}"
        f"WHERE {among}{mine} GROUP BY r.ref_id) f "
        f"ON f.ref = r.ref_id AND f.first = c.sent_at WHERE {among}{mine}"
    )
    part = (keys, channel_id) if channel_id is not None else (keys,)
    moment = UtcDateTime()
    return [
        (ref, moment.process_result_value(date, conn.dialect), mid, tid)
        for ref, date, mid, tid in fetch(conn, sql, *part, *part)
    ]


def _referenced_elsewhere(conn: Connection, keys: Any, channel_id: str) -> set[str]:
    """The key set's ids that copies of channels other than ``channel_id`` reference."""
    sql = (
        f"SELECT DISTINCT r.ref_id FROM {message_refs.name} r "
        f"WHERE {among_sql(conn, message_refs.c.ref_id, 'r')} AND r.channel_id <> {mark(conn)}"
    )
    return {ref for (ref,) in fetch(conn, sql, keys, channel_id)}


def thread_links(conn: Connection, channel_id: str, ids: Collection[str]) -> ThreadLinks:
    planned_for_parameters(conn)  # one Celery worker: 675 msg/s without, 2,300 with
    param = mark(conn)
    stored: dict[str, str] = {}
    held: set[str] = set()
    own: list[tuple[str, Any, str, str]] = []
    elsewhere: set[str] = set()
    for part in chunks(sorted(set(ids))):
        keys = key_set(conn, part)
        rows = fetch(
            conn,
            f"SELECT m.message_id, m.thread_id, c.channel_id FROM {messages.name} m "
            f"LEFT JOIN {message_copies.name} c ON c.message_pk = m.pk AND c.channel_id = {param} "
            f"WHERE {among_sql(conn, messages.c.message_id, 'm')}",
            channel_id,
            keys,
        )
        for mid, tid, holder in rows:
            stored[mid] = tid
            if holder is not None:
                held.add(mid)
        own.extend(_oldest_referencing(conn, keys, channel_id))
        elsewhere.update(_referenced_elsewhere(conn, keys, channel_id))
    return ThreadLinks(
        stored=stored,
        held=frozenset(held),
        referenced=resolve_threads({}, own),
        elsewhere=frozenset(elsewhere),
    )


def _linked_keys(target: Target) -> sa.Select[Any]:
    return sa.select(address_links.c.key).where(
        address_links.c.kind == target.kind.value, address_links.c.target_id == target.id
    )


def participants_of(
    conn: Connection, message_pks: Collection[int], first: int | None = None
) -> dict[tuple[int, str], list[Participant]]:
    """The participants of every copy of these messages (each copy's
    ``first`` ones when given), in order, by ``(message pk, channel id)``:
    one read through the driver, rows as plain tuples."""
    if not message_pks:
        return {}
    limit = "" if first is None else f" AND pos < {int(first)}"
    rows = fetch(
        conn,
        "SELECT message_pk, channel_id, role, key, email, name, valid, raw "
        f"FROM {participants.name} WHERE {among_sql(conn, participants.c.message_pk)}{limit} "
        "ORDER BY message_pk, channel_id, pos",
        key_set(conn, sorted(message_pks)),
    )
    found: dict[tuple[int, str], list[Participant]] = {}
    roles = {role.value: role for role in Role}
    for pk, channel_id, role, key, email, name, valid, raw in rows:
        address = Address(key=key, email=email, name=name, valid=bool(valid), raw=raw)
        found.setdefault((int(pk), channel_id), []).append(Participant(address, roles[role]))
    return found


def _copies(
    conn: Connection,
    thread_ids: Sequence[str],
    bodies: bool,
    message_pks: Sequence[int] | None = None,
    people: int | None = None,
) -> dict[str, list[tuple[Holder, StoredMessage]]]:
    """Every copy of the threads' messages (or of the messages ``message_pks``)
    with its participants (its first ``people`` when given), and its body,
    HTML and warnings when ``bodies``, and the channel holding it, by thread."""
    columns = [
        messages.c.pk,
        messages.c.message_id,
        messages.c.thread_id,
        message_copies.c.channel_id,
        message_copies.c.sent_at,
        message_copies.c.subject,
        message_copies.c.snippet,
        message_copies.c.attachments,
        channels.c.user_id,
        channels.c.visibility,
    ]
    if bodies:
        columns.extend((message_copies.c.body, message_copies.c.html, message_copies.c.warnings))
    rows: list[RowMapping] = []
    column: sa.ColumnElement[Any] = messages.c.thread_id
    values: Sequence[Any] = thread_ids
    if message_pks is not None:
        column, values = messages.c.pk, message_pks
    for part in chunks(values):
        rows.extend(
            conn.execute(
                sa.select(*columns)
                .join(message_copies, message_copies.c.message_pk == messages.c.pk)
                .join(channels, channels.c.id == message_copies.c.channel_id)
                .where(among(conn, column, part))
            ).mappings()
        )
    found_people = participants_of(conn, {int(r["pk"]) for r in rows}, people)
    threads: dict[str, list[tuple[Holder, StoredMessage]]] = {}
    for row in rows:
        holder = Holder(row["channel_id"], row["user_id"], Visibility(row["visibility"]))
        stored = stored_message(row, found_people.get((int(row["pk"]), row["channel_id"]), []))
        threads.setdefault(row["thread_id"], []).append((holder, stored))
    return threads


def timeline(
    conn: Connection, target: Target, viewer: Viewer, page: PageRequest
) -> Page[ThreadSummary]:
    validate_page(page)
    # one index range of the target's threads, newest first (see thread_targets)
    tt = thread_targets.c
    query = sa.select(tt.thread_id, tt.last_at).where(
        tt.kind == target.kind.value, tt.target_id == target.id
    )
    if page.after is not None:
        after_at, after_id = thread_after(page.after)
        # the plain bound lets the planner range-scan the index; the OR alone scans from the top
        query = query.where(
            tt.last_at <= after_at,
            sa.or_(
                tt.last_at < after_at,
                sa.and_(tt.last_at == after_at, tt.thread_id < after_id),
            ),
        )
    query = query.order_by(tt.last_at.desc(), tt.thread_id.desc()).limit(page.limit + 1)
    order = [(row.last_at, row.thread_id) for row in conn.execute(query)]
    thread_ids = [tid for _, tid in order[: page.limit]]
    totals = _long_threads(conn, thread_ids)
    short = [t for t in thread_ids if t not in totals]
    copies = _copies(conn, short, bodies=False, people=MAX_SUMMARY_PARTICIPANTS)
    for thread_id in totals:
        newest = _newest(conn, thread_id)
        copies.update(
            _copies(conn, (), bodies=False, message_pks=newest, people=MAX_SUMMARY_PARTICIPANTS)
        )
    return timeline_page(viewer, order, page.limit, copies, totals)


def _long_threads(conn: Connection, thread_ids: Sequence[str]) -> dict[str, ThreadTotals]:
    """The totals of the threads over ``MAX_SUMMARY_MESSAGES`` messages (a
    message is stored while it has a copy, so its thread's index counts)."""
    m, c = messages.c, message_copies.c
    counts: dict[str, int] = {}
    for part in chunks(thread_ids):
        rows = conn.execute(
            sa.select(m.thread_id, sa.func.count())
            .where(among(conn, m.thread_id, part))
            .group_by(m.thread_id)
        )
        counts.update((tid, int(n)) for tid, n in rows if n > MAX_SUMMARY_MESSAGES)
    found: dict[str, ThreadTotals] = {}
    for thread_id, count in counts.items():
        first = conn.execute(
            sa.select(sa.func.min(c.sent_at))
            .join(messages, m.pk == c.message_pk)
            .where(m.thread_id == thread_id)
        ).scalar_one()
        found[thread_id] = ThreadTotals(count, first)
    return found


def _newest(conn: Connection, thread_id: str) -> list[int]:
    """The pks of a thread's newest ``MAX_SUMMARY_MESSAGES`` messages (by
    their latest copy, then Message-ID; as ``copies.summary_messages``)."""
    m, c = messages.c, message_copies.c
    query = (
        sa.select(m.pk)
        .join(message_copies, c.message_pk == m.pk)
        .where(m.thread_id == thread_id)
        .group_by(m.pk, m.message_id)
        .order_by(sa.func.max(c.sent_at).desc(), _code_order(conn, m.message_id).desc())
        .limit(MAX_SUMMARY_MESSAGES)
    )
    return [int(pk) for (pk,) in conn.execute(query)]


def thread(
    conn: Connection, thread_id: str, viewer: Viewer, page: PageRequest | None = None
) -> ThreadView | None:
    if page is not None:
        return _thread_page(conn, thread_id, viewer, page)
    seen = seen_messages(viewer, _copies(conn, [thread_id], bodies=True).get(thread_id, ()))
    if not seen:
        return None
    return ThreadView(thread_id=thread_id, messages=_views(conn, seen))


def _views(conn: Connection, seen: Sequence[Seen]) -> tuple[MessageView, ...]:
    """The views of chosen copies, each with its channel's direction."""
    ids = [s.message.message_id for s in seen]
    # the direction of each chosen copy: its channel's first association
    directions: dict[tuple[str, str], Direction] = {}
    assoc = message_assocs.c
    for part in chunks(ids):
        rows = conn.execute(
            sa.select(messages.c.message_id, assoc.channel_id, assoc.direction)
            .join(messages, messages.c.pk == assoc.message_pk)
            .where(among(conn, messages.c.message_id, part))
            .order_by(assoc.channel_id, assoc.scope_id, assoc.provider_id)
        )
        for mid, channel_id, direction in rows:
            directions.setdefault((mid, channel_id), Direction(direction))
    return message_views(seen, directions)


def _code_order(conn: Connection, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """``column`` compared by code point, as Python compares strings (SQLite's
    default already does; PostgreSQL's default collation may not)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _thread_page(
    conn: Connection, thread_id: str, viewer: Viewer, page: PageRequest
) -> ThreadView | None:
    """One page of a thread, read by keyset over its copies' ``(sent_at,
    Message-ID)`` (see ``copies.thread_page_seen``)."""
    validate_page(page)
    c = message_copies.c
    message_id = _code_order(conn, messages.c.message_id)
    query = (
        sa.select(messages.c.pk, messages.c.message_id, c.sent_at)
        .join(message_copies, c.message_pk == messages.c.pk)
        .where(messages.c.thread_id == thread_id)
        .order_by(c.sent_at, message_id)
    )

    def keys(bound: Bound | None, count: int) -> Sequence[tuple[int, str, datetime]]:
        step = query
        if bound is not None:
            step = step.where(
                sa.or_(c.sent_at > bound[0], sa.and_(c.sent_at == bound[0], message_id > bound[1]))
            )
        return [(int(pk), mid, at) for pk, mid, at in conn.execute(step.limit(count))]

    def content(found: Sequence[tuple[int, str]]) -> list[tuple[Holder, StoredMessage]]:
        pks = [pk for pk, _mid in found]
        return _copies(conn, (), bodies=True, message_pks=pks).get(thread_id, [])

    after = message_after(page.after) if page.after is not None else None
    shown, token = thread_page_seen(viewer, after, page.limit, keys, content)
    if not shown and not _thread_exists(conn, thread_id):
        return None
    return ThreadView(thread_id=thread_id, messages=_views(conn, shown), next=token)


def _thread_exists(conn: Connection, thread_id: str) -> bool:
    query = sa.select(messages.c.pk).where(messages.c.thread_id == thread_id).limit(1)
    return conn.execute(query).first() is not None


def load_events(conn: Connection, where: sa.ColumnElement[bool]) -> dict[int, tuple[str, Event]]:
    """Event rows matching ``where`` with their attendees, by primary key,
    each with the channel whose copy it is."""
    rows = list(conn.execute(sa.select(events).where(where)).mappings())
    people: dict[int, list[RowMapping]] = {}
    pks = sorted(int(r["pk"]) for r in rows)
    for part in chunks(pks):
        found = conn.execute(
            sa.select(attendees)
            .where(among(conn, attendees.c.event_pk, part))
            .order_by(attendees.c.event_pk, attendees.c.pos)
        )
        for row in found.mappings():
            people.setdefault(int(row["event_pk"]), []).append(row)
    return {
        int(r["pk"]): (r["channel_id"], event_from_rows(r, people.get(int(r["pk"]), [])))
        for r in rows
    }


def event_page(
    conn: Connection, target: Target, viewer: Viewer, window: Window, page: PageRequest
) -> Page[EventSummary]:
    validate_page(page)
    linked_sel = sa.select(attendees.c.event_pk).where(
        attendees.c.valid.is_(True), attendees.c.key.in_(_linked_keys(target))
    )
    # keys linked through any channel's copy
    linked: set[EventKey] = {
        (uid, rid)
        for uid, rid in conn.execute(
            sa.select(events.c.uid, events.c.recurrence_id)
            .where(events.c.pk.in_(linked_sel))
            .distinct()
        )
    }
    if not linked:
        return page_events((), page)
    uids = sa.select(events.c.uid).where(events.c.pk.in_(linked_sel))
    # every copy of the linked meetings, with its organizer: who holds what
    organizer = attendees.alias("organizer")
    held = [
        (uid, channel_id, key or "")
        for uid, channel_id, key in conn.execute(
            sa.select(events.c.uid, events.c.channel_id, organizer.c.key)
            .select_from(
                events.outerjoin(
                    organizer,
                    sa.and_(
                        organizer.c.event_pk == events.c.pk,
                        organizer.c.pos == -1,
                        organizer.c.valid.is_(True),
                    ),
                )
            )
            .where(events.c.uid.in_(uids))
        )
    ]
    found = conn.execute(
        sa.select(channels).where(channels.c.id.in_(sorted({c for _, c, _ in held})))
    ).mappings()
    holders: dict[str, Channel] = {row["id"]: channel_from_row(row) for row in found}
    relevant = sa.and_(
        events.c.uid.in_(uids),
        sa.or_(
            events.c.recurrence != "[]",
            events.c.recurrence_id.is_not(None),
            sa.and_(events.c.starts_at < window.end, events.c.ends_at > window.start),
        ),
    )
    loaded = {
        (channel_id, (event.uid, event.recurrence_id)): event
        for channel_id, event in load_events(conn, relevant).values()
    }
    summaries = meeting_summaries(viewer, holders, held, loaded, linked, window)
    return page_events(summaries, page)
