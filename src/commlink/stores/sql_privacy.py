"""Least data in the SQL store: settings changes that apply to what a
channel stored, skip records as a viewer may see them, and erasure.

Every function takes an open ``Connection`` inside the caller's transaction
(see ``stores.privacy`` for the rules, shared with ``MemoryStore``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..model import Channel, Visibility
from ..policy.skips import PRIVATE_REASONS, message_id_digest, minimise_skip, visible_skips
from ..records import ErasureReport, Skip, Viewer
from .privacy import mentions, settings_change
from .sql_bulk import fetch, is_postgres, mark, run, write_rows
from .sql_delete import escape_like, forget_unstored_links, remove_matching
from .sql_rows import SKIP_COLUMNS, channel_from_row, channel_row, skip_from_row, skip_tuple
from .sql_schema import (
    address_links,
    channels,
    erased,
    events,
    message_copies,
    skips,
    upsert,
)
from .sql_search import drop_bodies
from .sql_write import ERASURE_LOCK

__all__ = ["erase", "minimise_channel", "read_skips", "save_channel", "strip_skips"]


def save_channel(conn: Connection, channel: Channel) -> bool:
    """Save a channel; a change to a stored one applies to what it stored
    (see ``privacy.settings_change``). Returns whether the change withdrew
    stored data (a new blocklist entry, a lower visibility, stricter skip
    records)."""
    found = conn.execute(sa.select(channels).where(channels.c.id == channel.id)).mappings()
    stored = found.first()
    row = channel_row(channel)
    if stored is not None and all(stored[k] == v for k, v in row.items()):
        return False  # saved as it is (every step saves its channel): nothing to write
    upsert(conn, channels, [row], ["id"], [k for k in row if k != "id"])
    if stored is None:
        return False
    change = settings_change(channel_from_row(stored).settings, channel.settings)
    if change.blocked:
        remove_matching(conn, channel.id, change.blocked)
    if change.minimise is not None:
        minimise_channel(conn, channel.id, change.minimise)
    if change.strip_skips:
        strip_skips(conn, channel)
    return bool(change)


def minimise_channel(conn: Connection, channel_id: str, visibility: Visibility) -> None:
    """Minimise a channel's stored copies to ``visibility``, as
    ``minimise_message`` and ``minimise_event`` store them: at ``METADATA``
    no body, HTML or snippet, no event description, location or conference link.
    A minimised copy loses its content digest, so a later fetch rewrites it."""
    if visibility is not Visibility.METADATA:
        return
    m = mark(conn)
    run(
        conn,
        f"UPDATE {message_copies.name} SET body = NULL, html = NULL, snippet = '', "
        f"content_hash = '' WHERE channel_id = {m} "
        "AND (body IS NOT NULL OR html IS NOT NULL OR snippet <> '')",
        channel_id,
    )
    drop_bodies(conn, channel_id)
    run(
        conn,
        f"UPDATE {events.name} SET description = '', location = '', conference_url = '' "
        f"WHERE channel_id = {m} "
        "AND (description <> '' OR location <> '' OR conference_url <> '')",
        channel_id,
    )


def strip_skips(conn: Connection, channel: Channel) -> None:
    """Rewrite the channel's skip records as its settings allow (details of
    internal and blocked mail withdrawn)."""
    reasons = sorted(r.value for r in PRIVATE_REASONS)
    query = sa.select(skips).where(skips.c.channel_id == channel.id, skips.c.reason.in_(reasons))
    changed = []
    for row in conn.execute(query).mappings():
        skip = skip_from_row(row)
        kept = minimise_skip(skip, channel.settings)
        if kept != skip:
            changed.append(skip_tuple(channel.id, kept))
    write_rows(
        conn,
        skips,
        SKIP_COLUMNS,
        changed,
        conflict=("channel_id", "provider_id"),
        update=SKIP_COLUMNS[2:],
    )


def read_skips(
    conn: Connection, channel_id: str, viewer: Viewer, message_id: str | None
) -> list[Skip]:
    """A channel's skip records as ``viewer`` may see them (``visible_skips``)."""
    found = conn.execute(sa.select(channels).where(channels.c.id == channel_id)).mappings()
    stored = found.first()
    if stored is None:
        return []
    query = sa.select(skips).where(skips.c.channel_id == channel_id)
    if message_id is not None:
        wanted = {message_id, message_id_digest(message_id)}
        query = query.where(skips.c.message_id.in_(sorted(wanted)))
    rows = conn.execute(query.order_by(skips.c.provider_id)).mappings().all()
    kept = [skip_from_row(r) for r in rows]
    return visible_skips(viewer, channel_from_row(stored), kept, message_id)


def erase(conn: Connection, key: str, now: datetime) -> ErasureReport:
    """Erase an address key in every channel (see ``Store.erase_address``)."""
    if is_postgres(conn):  # no commit runs meanwhile (see sql_write.ERASURE_LOCK)
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ERASURE_LOCK})")
    gone_keys: set[str] = set()
    messages, events_removed = remove_matching(conn, None, [key], gone_keys)
    named = _skips_naming(conn, key)
    m = mark(conn)
    if named:
        conn.exec_driver_sql(
            f"DELETE FROM {skips.name} WHERE channel_id = {m} AND provider_id = {m}", named
        )
    links = fetch(
        conn, f"DELETE FROM {address_links.name} WHERE key = {m} RETURNING target_id", key
    )
    upsert(conn, erased, [{"key": key, "erased_at": now}], ["key"])
    erased_at = conn.execute(sa.select(erased.c.erased_at).where(erased.c.key == key)).scalar_one()
    forget_unstored_links(conn, gone_keys - {key})
    return ErasureReport(key, erased_at, messages, events_removed, len(named), len(links))


def _skips_naming(conn: Connection, key: str) -> Sequence[tuple[str, str]]:
    """``(channel_id, provider_id)`` of the skip records naming ``key``."""
    pattern = "%" + escape_like(key) + "%"
    c = skips.c
    query = sa.select(skips).where(
        sa.or_(
            sa.func.lower(c.sender) == key,
            sa.func.lower(c.detail).like(pattern, escape="\\"),
            sa.func.lower(c.subject).like(pattern, escape="\\"),
        )
    )
    return [
        (row["channel_id"], row["provider_id"])
        for row in conn.execute(query).mappings()
        if mentions(skip_from_row(row), key)
    ]
