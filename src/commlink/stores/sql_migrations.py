"""Upgrades of older SQL schemas, one version at a time (see ``sql_schema``).

``MIGRATIONS[n]`` upgrades a schema of version ``n`` to ``n + 1`` in place,
inside the transaction that ``ensure_schema`` holds. A step works on the
tables as that version left them, so it names old columns in SQL text and
never relies on what later versions changed.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..model import ChannelSettings
from ..policy.skips import minimise_skip
from ..records import Reason, Skip
from .sql_tables import (
    attendees,
    channel_states,
    event_assocs,
    events,
    message_copies,
    message_refs,
    messages,
    participants,
    schema_table,
    search_docs,
    search_text_contentless,
    thread_targets,
)

__all__ = ["MIGRATIONS"]


def _add_content_hash(conn: Connection) -> None:
    # '' never equals a computed hash, so old rows are rewritten once when re-committed
    conn.exec_driver_sql(
        "ALTER TABLE commlink_messages ADD COLUMN content_hash TEXT NOT NULL DEFAULT ''"
    )


# the timeline rows as schema 3 derived them (messages held their own time)
_V3_THREAD_TARGETS_FILL = (
    "WITH t AS (SELECT thread_id, max(sent_at) AS last_at FROM commlink_messages "
    "GROUP BY thread_id) "
    "INSERT INTO commlink_thread_targets (kind, target_id, thread_id, last_at) "
    "SELECT DISTINCT l.kind, l.target_id, m.thread_id, t.last_at "
    "FROM t JOIN commlink_messages m ON m.thread_id = t.thread_id "
    "JOIN commlink_participants p ON p.message_pk = m.pk "
    "JOIN commlink_address_links l ON l.key = p.key "
    "WHERE p.valid"
)


def _add_thread_targets(conn: Connection) -> None:
    thread_targets.create(conn, checkfirst=True)
    conn.exec_driver_sql(_V3_THREAD_TARGETS_FILL)


def _names(table: sa.Table, *skip: str) -> list[str]:
    return [c.name for c in table.columns if c.name not in skip]


def _rebuild(conn: Connection, table: sa.Table, fill: str) -> None:
    """Replace ``table`` by its current definition, filled by ``fill``: an
    ``INSERT`` body (columns and ``SELECT``) reading the old rows from
    ``{old}``."""
    old = f"{table.name}_old"
    conn.exec_driver_sql(f"CREATE TABLE {old} AS SELECT * FROM {table.name}")
    conn.exec_driver_sql(f"DROP TABLE {table.name}")
    table.create(conn)
    conn.exec_driver_sql(f"INSERT INTO {table.name} {fill.format(old=old)}")
    conn.exec_driver_sql(f"DROP TABLE {old}")


#: every (message, channel) with an association: where schema 3 content goes
_HOLDERS = "(SELECT DISTINCT message_pk, channel_id FROM commlink_message_assocs)"


def _copies_per_channel(conn: Connection) -> None:
    """Schema 4 keeps content per channel: every channel associated with a
    message (or an event) gets a copy of what schema 3 stored for it. The
    logical messages keep their pks (associations stay as they are) and lose
    their content columns (``DROP COLUMN``: SQLite 3.35 or newer, which the
    store's ``RETURNING`` clauses need anyway); the participants, references,
    events, attendees and event associations tables are rebuilt."""
    message_copies.create(conn)
    content = ("sent_at", "subject", "snippet", "body", "attachments")
    conn.exec_driver_sql(
        f"INSERT INTO {message_copies.name} (message_pk, channel_id, {', '.join(content)}) "
        f"SELECT m.pk, a.channel_id, {', '.join('m.' + c for c in content)} "
        f"FROM {messages.name} m JOIN {_HOLDERS} a ON a.message_pk = m.pk"
    )
    for table in (participants, message_refs):
        rest = _names(table, "message_pk", "channel_id")
        _rebuild(
            conn,
            table,
            f"(message_pk, channel_id, {', '.join(rest)}) "
            f"SELECT p.message_pk, a.channel_id, {', '.join('p.' + c for c in rest)} "
            f"FROM {{old}} p JOIN {_HOLDERS} a ON a.message_pk = p.message_pk",
        )
    index = next(i for i in messages.indexes if i.name == "commlink_messages_thread")
    conn.exec_driver_sql(f"DROP INDEX {index.name}")
    for column in (*content, "content_hash"):
        conn.exec_driver_sql(f"ALTER TABLE {messages.name} DROP COLUMN {column}")
    index.create(conn)
    _events_per_channel(conn)


def _events_per_channel(conn: Connection) -> None:
    for table in (event_assocs, attendees, events):
        conn.exec_driver_sql(f"CREATE TABLE {table.name}_old AS SELECT * FROM {table.name}")
        conn.exec_driver_sql(f"DROP TABLE {table.name}")
    for table in (events, attendees, event_assocs):
        table.create(conn)
    content = _names(events, "pk", "channel_id")
    conn.exec_driver_sql(
        f"INSERT INTO {events.name} (channel_id, {', '.join(content)}) "
        f"SELECT a.channel_id, {', '.join('e.' + c for c in content)} "
        f"FROM {events.name}_old e JOIN (SELECT DISTINCT event_pk, channel_id "
        f"FROM {event_assocs.name}_old) a ON a.event_pk = e.pk"
    )
    # the old row of each new one (one per channel)
    same = (
        f"FROM {events.name}_old e JOIN {events.name} n ON n.uid = e.uid AND n.rid_key = e.rid_key"
    )
    people = _names(attendees, "event_pk")
    conn.exec_driver_sql(
        f"INSERT INTO {attendees.name} (event_pk, {', '.join(people)}) "
        f"SELECT n.pk, {', '.join('t.' + c for c in people)} "
        f"{same} JOIN {attendees.name}_old t ON t.event_pk = e.pk"
    )
    conn.exec_driver_sql(
        f"INSERT INTO {event_assocs.name} "
        "(channel_id, scope_id, provider_id, event_pk, generation) "
        "SELECT a.channel_id, a.scope_id, a.provider_id, n.pk, a.generation "
        f"{same} JOIN {event_assocs.name}_old a ON a.event_pk = e.pk "
        "AND a.channel_id = n.channel_id"
    )
    for table in (event_assocs, attendees, events):
        conn.exec_driver_sql(f"DROP TABLE {table.name}_old")


_METADATA_CHANNELS = "(SELECT id FROM commlink_channels WHERE visibility = 'metadata')"


def _least_data(conn: Connection) -> None:
    """Schema 5 keeps less: skip records of internal and blocked mail lose
    their subject and sender, their detail becomes a generic one and their
    Message-ID a digest (no channel had opted in to ``skip_details``);
    ``METADATA`` channels' copies lose what ``minimise_message`` and
    ``minimise_event`` drop now (event locations and conference links too).
    Copies get a ``warnings`` column (none recorded: ``'[]'``); a schema 3
    database already has it, as step 3 created the copies table as it is
    now. The tombstone tables (``erased``, ``deleted_addresses``) are new,
    so ``ensure_schema`` creates them."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(message_copies.name)}
    if "warnings" not in columns:
        conn.exec_driver_sql(
            f"ALTER TABLE {message_copies.name} ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'"
        )
    found = conn.exec_driver_sql(
        "SELECT channel_id, provider_id, reason, message_id FROM commlink_skips "
        "WHERE reason IN ('internal', 'blocked')"
    ).all()
    plain = ChannelSettings(owner="")
    rows = []
    for channel_id, provider_id, reason, message_id in found:
        kept = minimise_skip(Skip(provider_id, Reason(reason), message_id=message_id), plain)
        rows.append(
            {"ch": channel_id, "pid": provider_id, "detail": kept.detail, "mid": kept.message_id}
        )
    if rows:
        conn.execute(
            sa.text(
                "UPDATE commlink_skips SET subject = '', sender = '', detail = :detail, "
                "message_id = :mid WHERE channel_id = :ch AND provider_id = :pid"
            ),
            rows,
        )
    conn.exec_driver_sql(
        "UPDATE commlink_message_copies SET body = NULL, snippet = '', content_hash = '' "
        f"WHERE channel_id IN {_METADATA_CHANNELS} AND (body IS NOT NULL OR snippet <> '')"
    )
    conn.exec_driver_sql(
        "UPDATE commlink_events SET description = '', location = '', conference_url = '' "
        f"WHERE channel_id IN {_METADATA_CHANNELS} "
        "AND (description <> '' OR location <> '' OR conference_url <> '')"
    )


def _add_discovered_aliases(conn: Connection) -> None:
    """Schema 6 keeps the aliases a provider reported in the channel state
    (none yet: ``''``)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(channel_states.name)}
    if "aliases" not in columns:
        conn.exec_driver_sql(
            f"ALTER TABLE {channel_states.name} ADD COLUMN aliases TEXT NOT NULL DEFAULT ''"
        )


def _add_outbox(conn: Connection) -> None:
    """Schema 7 adds the host event outbox: new tables only, which
    ``ensure_schema`` creates."""


def _add_search_index(conn: Connection) -> None:
    """Schema 8 adds the search index (``search_docs``, and on SQLite its
    FTS5 table) and fills it from every stored copy."""
    from .sql_search import backfill  # it reads through sql_schema, which imports this module

    if conn.dialect.name == "sqlite":  # words left without their rows are rebuilt
        conn.exec_driver_sql("DROP TABLE IF EXISTS commlink_search_vocab")
        conn.exec_driver_sql("DROP TABLE IF EXISTS commlink_search_text")
    search_docs.create(conn, checkfirst=True)
    backfill(conn)


def _add_html(conn: Connection) -> None:
    """Schema 9 keeps each copy's sanitised HTML (none yet: ``NULL``; a
    message fetched again gets it, as its content digest differs). A
    database migrated from before schema 4 already has the column (step 3
    created the copies table as it is now). The index that pages a thread
    by date is new too."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(message_copies.name)}
    if "html" not in columns:
        conn.exec_driver_sql(f"ALTER TABLE {message_copies.name} ADD COLUMN html TEXT")
    for index in message_copies.indexes:
        index.create(conn, checkfirst=True)


def _untagged_body_words(conn: Connection) -> None:
    """Schema 10 indexes body words without a tag on SQLite (tags end in
    ``_``, see ``sql_search_sqlite``): the search index is built again from
    the stored copies, in the form it had (with or without a text copy).
    PostgreSQL's index is unchanged."""
    from .sql_search import rebuild_sqlite_index

    if conn.dialect.name == "sqlite":
        rebuild_sqlite_index(conn, search_text_contentless(conn))


def _drop_domain_indexes(conn: Connection) -> None:
    """Schema 11 has no index of participants and attendees by domain: the
    one query reading the column (a blocklist's domain entries) also matches
    subdomains (``LIKE '%.domain'``) and so reads every row anyway, while each
    commit paid for the index (a tenth of a bulk import's page writes)."""
    for name in ("commlink_participants_domain", "commlink_attendees_domain"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def _add_setting(conn: Connection, name: str) -> None:
    """Add a true-by-default setting column to ``commlink_schema``, unless
    it is there already."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(schema_table.name)}
    if name not in columns:
        true = "TRUE" if conn.dialect.name == "postgresql" else "1"
        conn.exec_driver_sql(
            f"ALTER TABLE {schema_table.name} ADD COLUMN {name} BOOLEAN NOT NULL DEFAULT {true}"
        )


def _add_search_switch(conn: Connection) -> None:
    """Schema 12 records whether commits keep the search index (on, as
    before; ``SqlStore.set_search_index``)."""
    _add_setting(conn, "search_index")


def _add_body_search_switch(conn: Connection) -> None:
    """Schema 13 records whether the search index holds the words of bodies
    (it does, as before; ``SqlStore.set_search_index``)."""
    _add_setting(conn, "search_bodies")


#: ``MIGRATIONS[n]`` upgrades a schema of version ``n`` to ``n + 1`` in place.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_content_hash,
    2: _add_thread_targets,
    3: _copies_per_channel,
    4: _least_data,
    # 5 -> 6 also adds tables (OAuth tokens, push subscriptions): create_all makes them
    5: _add_discovered_aliases,
    6: _add_outbox,
    7: _add_search_index,
    8: _add_html,
    9: _untagged_body_words,
    10: _drop_domain_indexes,
    11: _add_search_switch,
    12: _add_body_search_switch,
}
