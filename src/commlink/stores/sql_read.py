"""The read path of ``SqlStore``: timelines, threads and events with
visibility applied, in a constant number of queries per call."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ..model import Direction, Event, Participant, Visibility
from ..records import (
    EventSummary,
    Page,
    PageRequest,
    Target,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from .common import (
    EventKey,
    StoredMessage,
    effective_visibility,
    event_summary,
    message_view,
    page_events,
    resolve_threads,
    select_occurrences,
    summarise_thread,
    thread_after,
    thread_token,
    validate_page,
)
from .sql_rows import event_from_rows, participant_from_row, stored_message
from .sql_schema import (
    address_links,
    among,
    attendees,
    channels,
    chunks,
    event_assocs,
    events,
    message_assocs,
    message_refs,
    messages,
    participants,
    thread_targets,
)

__all__ = ["known_ids", "load_events", "thread", "threads_by_message_ids", "timeline"]


def known_ids(conn: Connection, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(sorted(set(ids))):
        for table in (message_assocs, event_assocs):
            rows = conn.execute(
                sa.select(table.c.provider_id)
                .where(
                    table.c.channel_id == channel_id,
                    table.c.scope_id == scope_id,
                    among(conn, table.c.provider_id, part),
                )
                .distinct()
            )
            found.update(rows.scalars())
    return found


def threads_by_message_ids(conn: Connection, ids: Collection[str]) -> dict[str, str]:
    own: dict[str, str] = {}
    referencing: list[tuple[str, Any, str, str]] = []
    for part in chunks(sorted(set(ids))):
        rows = conn.execute(
            sa.select(messages.c.message_id, messages.c.thread_id).where(
                among(conn, messages.c.message_id, part)
            )
        )
        own.update((mid, tid) for mid, tid in rows)
        refs = conn.execute(
            sa.select(
                message_refs.c.ref_id,
                messages.c.sent_at,
                messages.c.message_id,
                messages.c.thread_id,
            )
            .join(messages, messages.c.pk == message_refs.c.message_pk)
            .where(among(conn, message_refs.c.ref_id, part))
        )
        referencing.extend((ref, date, mid, tid) for ref, date, mid, tid in refs)
    return resolve_threads(own, referencing)


def _linked_keys(target: Target) -> sa.Select[Any]:
    return sa.select(address_links.c.key).where(
        address_links.c.kind == target.kind.value, address_links.c.target_id == target.id
    )


def _assoc_rows(conn: Connection, pks: Sequence[int]) -> dict[int, list[RowMapping]]:
    """Associations of messages with their channel's owner and visibility."""
    found: dict[int, list[RowMapping]] = {}
    for part in chunks(pks):
        rows = conn.execute(
            sa.select(
                message_assocs.c.message_pk,
                message_assocs.c.channel_id,
                message_assocs.c.direction,
                channels.c.user_id,
                channels.c.visibility,
            )
            .join(channels, channels.c.id == message_assocs.c.channel_id)
            .where(among(conn, message_assocs.c.message_pk, part))
            .order_by(
                message_assocs.c.channel_id,
                message_assocs.c.scope_id,
                message_assocs.c.provider_id,
            )
        )
        for row in rows.mappings():
            found.setdefault(int(row["message_pk"]), []).append(row)
    return found


def _visibility(viewer: Viewer, assocs: Iterable[RowMapping]) -> Visibility:
    return effective_visibility(
        viewer, ((a["user_id"], Visibility(a["visibility"])) for a in assocs)
    )


def _messages(
    conn: Connection, thread_ids: Sequence[str]
) -> tuple[dict[str, list[tuple[int, StoredMessage]]], list[int]]:
    """Every message of the threads (oldest first) with its participants."""
    rows: list[RowMapping] = []
    for thread_part in chunks(thread_ids):
        rows.extend(
            conn.execute(
                sa.select(messages)
                .where(among(conn, messages.c.thread_id, thread_part))
                .order_by(messages.c.sent_at, messages.c.message_id)
            ).mappings()
        )
    rows.sort(key=lambda r: (r["sent_at"], r["message_id"]))
    pks = [int(r["pk"]) for r in rows]
    people: dict[int, list[Participant]] = {}
    for part in chunks(pks):
        found = conn.execute(
            sa.select(participants)
            .where(among(conn, participants.c.message_pk, part))
            .order_by(participants.c.message_pk, participants.c.pos)
        )
        for row in found.mappings():
            people.setdefault(int(row["message_pk"]), []).append(participant_from_row(row))
    threads: dict[str, list[tuple[int, StoredMessage]]] = {}
    for row in rows:
        pk = int(row["pk"])
        threads.setdefault(row["thread_id"], []).append(
            (pk, stored_message(row, people.get(pk, [])))
        )
    return threads, pks


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
        query = query.where(
            sa.or_(
                tt.last_at < after_at,
                sa.and_(tt.last_at == after_at, tt.thread_id < after_id),
            )
        )
    query = query.order_by(tt.last_at.desc(), tt.thread_id.desc()).limit(page.limit + 1)
    order = [(row.last_at, row.thread_id) for row in conn.execute(query)]
    chosen = order[: page.limit]
    threads, pks = _messages(conn, [tid for _, tid in chosen])
    assocs = _assoc_rows(conn, pks)
    items = []
    for _, thread_id in chosen:
        rows = threads[thread_id]
        vis = [_visibility(viewer, assocs.get(pk, ())) for pk, _ in rows]
        items.append(summarise_thread(thread_id, [m for _, m in rows], vis))
    token = thread_token(*chosen[-1]) if len(order) > page.limit else None
    return Page(items=tuple(items), next=token)


def thread(conn: Connection, thread_id: str, viewer: Viewer) -> ThreadView | None:
    threads, pks = _messages(conn, [thread_id])
    rows = threads.get(thread_id)
    if not rows:
        return None
    assocs = _assoc_rows(conn, pks)
    views = []
    for pk, message in rows:
        mine = assocs.get(pk, [])
        owned = [a for a in mine if a["user_id"] == viewer.user_id]
        chosen = (owned or mine)[:1]
        direction = Direction(chosen[0]["direction"]) if chosen else Direction.INCOMING
        views.append(message_view(message, direction, _visibility(viewer, mine)))
    return ThreadView(thread_id=thread_id, messages=tuple(views))


def load_events(conn: Connection, where: sa.ColumnElement[bool]) -> dict[int, Event]:
    """Events matching ``where`` with their attendees, by primary key."""
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
    return {int(r["pk"]): event_from_rows(r, people.get(int(r["pk"]), [])) for r in rows}


def event_page(
    conn: Connection, target: Target, viewer: Viewer, window: Window, page: PageRequest
) -> Page[EventSummary]:
    validate_page(page)
    linked_sel = sa.select(attendees.c.event_pk).where(
        attendees.c.valid.is_(True), attendees.c.key.in_(_linked_keys(target))
    )
    linked_pks = set(conn.execute(linked_sel.distinct()).scalars())
    if not linked_pks:
        return page_events((), page)
    uids = sa.select(events.c.uid).where(events.c.pk.in_(linked_sel))
    relevant = sa.and_(
        events.c.uid.in_(uids),
        sa.or_(
            events.c.recurrence != "[]",
            events.c.recurrence_id.is_not(None),
            sa.and_(events.c.starts_at < window.end, events.c.ends_at > window.start),
        ),
    )
    loaded = load_events(conn, relevant)
    by_key: dict[EventKey, Event] = {}
    pk_of: dict[EventKey, int] = {}
    for pk, event in loaded.items():
        key: EventKey = (event.uid, event.recurrence_id)
        by_key[key] = event
        pk_of[key] = pk
    linked = [k for k, pk in pk_of.items() if pk in linked_pks]
    channels_of = _event_channels(conn, sorted(loaded))
    summaries = [
        event_summary(occurrence, _visibility(viewer, channels_of.get(pk_of[source], ())))
        for occurrence, source in select_occurrences(by_key, linked, window)
    ]
    return page_events(summaries, page)


def _event_channels(conn: Connection, pks: Sequence[int]) -> dict[int, list[RowMapping]]:
    found: dict[int, list[RowMapping]] = {}
    for part in chunks(pks):
        rows = conn.execute(
            sa.select(event_assocs.c.event_pk, channels.c.user_id, channels.c.visibility)
            .join(channels, channels.c.id == event_assocs.c.channel_id)
            .where(among(conn, event_assocs.c.event_pk, part))
        )
        for row in rows.mappings():
            found.setdefault(int(row["event_pk"]), []).append(row)
    return found
