"""The tables of the reference store and directory (SQLAlchemy Core).

One schema serves SQLite (the embedded default) and PostgreSQL. Tables are
prefixed ``commlink_``. ``sql_schema`` versions it and re-exports every
name here.

Shared records keep their content per channel: one logical message per
Message-ID (``messages``: the Message-ID and its thread) with one copy per
channel that holds it (``message_copies``, with that copy's participants and
references); one event row per channel, iCalendar UID and recurrence id.
What a viewer reads comes from one copy they are entitled to (see
``stores.copies``), so a copy arriving through one channel never changes
another channel's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "CONTENTLESS_SQLITE",
    "SEARCH_INDEX_DDL",
    "SEARCH_TEXT_DDL",
    "THREAD_TARGETS_FILL",
    "UtcDateTime",
    "address_links",
    "attendees",
    "channel_states",
    "channels",
    "companies",
    "company_domains",
    "cursors",
    "deleted_addresses",
    "erased",
    "event_assocs",
    "events",
    "leases",
    "message_assocs",
    "message_copies",
    "message_refs",
    "messages",
    "metadata",
    "opportunities",
    "oauth_tokens",
    "opportunity_contacts",
    "outbox",
    "outbox_consumers",
    "push_subscriptions",
    "participants",
    "people",
    "person_addresses",
    "schema_table",
    "search_docs",
    "search_text_contentless",
    "search_text_ddl",
    "skips",
    "sqlite_version",
    "thread_targets",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime, read back in UTC.

    PostgreSQL stores ``timestamptz``; SQLite an integer of microseconds
    since the epoch, which sorts and compares exactly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}")
        if dialect.name == "sqlite":
            return (value - _EPOCH) // _MICROSECOND
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _EPOCH + int(value) * _MICROSECOND
        moment: datetime = value
        return moment.astimezone(timezone.utc)


metadata = sa.MetaData()


def _table(name: str, *items: Any) -> sa.Table:
    table = sa.Table(f"commlink_{name}", metadata, *items)
    # SQLite: a table keyed by anything but one integer is stored clustered on
    # its primary key (WITHOUT ROWID), so a lookup by key is one b-tree descent
    # instead of two and an insert updates one b-tree fewer
    keys = list(table.primary_key.columns)
    if not (len(keys) == 1 and isinstance(keys[0].type, sa.Integer)):
        table.dialect_options["sqlite"]["with_rowid"] = False
    return table


def _text(name: str, **kw: Any) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False, server_default="", **kw)


schema_table = _table(
    "schema",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    # whether commits keep the search index, and the words of bodies in it
    # (SqlStore.set_search_index)
    sa.Column("search_index", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("search_bodies", sa.Boolean, nullable=False, server_default=sa.true()),
)

channels = _table(
    "channels",
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("visibility", sa.String, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
)

channel_states = _table(
    "channel_states",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("stage", sa.String, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    _text("last_error"),
    sa.Column("next_attempt", UtcDateTime),
    sa.Column("last_success", UtcDateTime),
    _text("aliases"),  # discovered owner aliases, a JSON list ('' for none)
)

leases = _table(
    "leases",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

cursors = _table(
    "cursors",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("scope_id", sa.String, primary_key=True),
    sa.Column("cursor", sa.Text, nullable=False),
)

# One logical message per Message-ID: what dedup counts and threads by. Its
# content lives in one copy per channel holding it (``message_copies``).
messages = _table(
    "messages",
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("thread_id", sa.String, nullable=False),
    sa.Index("commlink_messages_thread", "thread_id"),
)

# A channel's copy of a logical message, kept while the channel has an
# association with it: a copy arriving through one channel never changes
# another channel's.
message_copies = _table(
    "message_copies",
    sa.Column(
        "message_pk",
        sa.BigInteger,
        sa.ForeignKey("commlink_messages.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    _text("subject"),
    _text("snippet"),
    sa.Column("body", sa.Text),
    # sanitised HTML (see mime.html), kept and shown like the body
    sa.Column("html", sa.Text),
    _text("attachments"),
    # the copy's parse warnings, a JSON list (capped: see common.stored_warnings)
    sa.Column("warnings", sa.Text, nullable=False, server_default="[]"),
    # digest of the copy, its participants and references (see sql_rows.content_hash):
    # a re-committed message with the same digest is left as it is
    _text("content_hash"),
    # a page of a thread is read in date order without touching the large rows
    sa.Index("commlink_message_copies_sent", "message_pk", "sent_at"),
)
# SQLite: rows holding bodies are large; a rowid table keeps the key index small
message_copies.dialect_options["sqlite"]["with_rowid"] = True


def _copy_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["message_pk", "channel_id"],
        ["commlink_message_copies.message_pk", "commlink_message_copies.channel_id"],
        ondelete="CASCADE",
    )


# the participants of each copy (the timeline links a thread through any copy's)
participants = _table(
    "participants",
    sa.Column("message_pk", sa.BigInteger, primary_key=True),
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("role", sa.String, nullable=False),
    _text("key"),
    _text("domain"),
    _text("email"),
    _text("name"),
    sa.Column("valid", sa.Boolean, nullable=False),
    _text("raw"),
    _copy_fk(),
    sa.Index("commlink_participants_key", "key"),
)

# In-Reply-To, References and thread keys of each copy (for threading)
message_refs = _table(
    "message_refs",
    sa.Column("message_pk", sa.BigInteger, primary_key=True),
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ref_id", sa.String, nullable=False),
    _copy_fk(),
    sa.Index("commlink_message_refs_ref", "ref_id"),
)

message_assocs = _table(
    "message_assocs",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("scope_id", sa.String, primary_key=True),
    sa.Column("provider_id", sa.String, primary_key=True),
    sa.Column("message_pk", sa.BigInteger, sa.ForeignKey("commlink_messages.pk"), nullable=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
    _text("folders"),
    sa.Column("direction", sa.String, nullable=False),
    # the primary key serves per-scope queries (sweep, known ids); a separate
    # (channel, scope, generation) index misleads planners without statistics
    sa.Index("commlink_message_assocs_message", "message_pk"),
)

# One row per channel, iCalendar UID and recurrence id: each channel keeps its
# own copy of a meeting (its most recent version by SEQUENCE, then update time).
events = _table(
    "events",
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("uid", sa.String, nullable=False),
    sa.Column("rid_key", sa.String, nullable=False),
    sa.Column("channel_id", sa.String, nullable=False),
    sa.Column("recurrence_id", UtcDateTime),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    _text("title"),
    _text("description"),
    _text("location"),
    sa.Column("all_day", sa.Boolean, nullable=False),
    _text("timezone"),
    _text("recurrence"),
    sa.Column("status", sa.String, nullable=False),
    _text("conference_url"),
    _text("calendar_id"),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("updated", UtcDateTime),
    sa.UniqueConstraint("uid", "rid_key", "channel_id", name="commlink_events_copy"),
)


def _event_fk() -> sa.ForeignKey:
    return sa.ForeignKey("commlink_events.pk", ondelete="CASCADE")


attendees = _table(
    "attendees",
    sa.Column("event_pk", sa.BigInteger, _event_fk(), primary_key=True),
    # -1 holds the event's organizer, 0.. its attendees in order
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    _text("key"),
    _text("domain"),
    _text("email"),
    _text("name"),
    sa.Column("valid", sa.Boolean, nullable=False),
    _text("raw"),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("organizer", sa.Boolean, nullable=False),
    sa.Column("optional", sa.Boolean, nullable=False),
    sa.Index("commlink_attendees_key", "key"),
)

event_assocs = _table(
    "event_assocs",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("scope_id", sa.String, primary_key=True),
    sa.Column("provider_id", sa.String, primary_key=True),
    sa.Column("event_pk", sa.BigInteger, sa.ForeignKey("commlink_events.pk"), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Index("commlink_event_assocs_event", "event_pk"),
)

address_links = _table(
    "address_links",
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("target_id", sa.String, primary_key=True),
    sa.Index("commlink_address_links_target", "kind", "target_id"),
)

# Which threads each CRM record's timeline holds, with the time of the
# thread's latest message: the timeline reads one index range in order
# instead of aggregating every linked thread. Derived from messages, their
# copies (a thread is on a record's timeline when any copy's participants
# link to it; its time is the latest of any copy) and address links; the
# write path refreshes the rows of every thread a write touches (see
# ``sql_write.refresh_threads``).
thread_targets = _table(
    "thread_targets",
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("target_id", sa.String, primary_key=True),
    sa.Column("thread_id", sa.String, primary_key=True),
    sa.Column("last_at", UtcDateTime, nullable=False),
    sa.Index("commlink_thread_targets_recent", "kind", "target_id", "last_at", "thread_id"),
    sa.Index("commlink_thread_targets_thread", "thread_id"),
)

#: Rebuilds ``thread_targets`` rows: ``{where}`` and ``{threads}`` select
#: the threads (of messages ``m``) for the rows and for their latest time.
THREAD_TARGETS_FILL = (
    "WITH t AS (SELECT m.thread_id, max(c.sent_at) AS last_at FROM commlink_messages m "
    "JOIN commlink_message_copies c ON c.message_pk = m.pk "
    "WHERE {threads} GROUP BY m.thread_id) "
    "INSERT INTO commlink_thread_targets (kind, target_id, thread_id, last_at) "
    "SELECT DISTINCT l.kind, l.target_id, m.thread_id, t.last_at "
    "FROM t JOIN commlink_messages m ON m.thread_id = t.thread_id "
    "JOIN commlink_participants p ON p.message_pk = m.pk "
    "JOIN commlink_address_links l ON l.key = p.key "
    "WHERE p.valid AND {where}"
)


class Tsvector(sa.types.UserDefinedType[str]):
    """PostgreSQL's ``tsvector``, named here so that this module does not
    load SQLAlchemy's PostgreSQL dialect (SQLite stores never need it)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "TSVECTOR"


# The search index (see ``sql_search``): one row per message copy with its
# date. PostgreSQL keeps the copy's words in ``terms`` (a GIN-indexed
# ``tsvector``); SQLite keeps them in an FTS5 table whose rowid is ``doc``
# (``terms`` stays NULL there). A copy's row goes with the copy.
search_docs = _table(
    "search_docs",
    sa.Column("doc", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("message_pk", sa.BigInteger, nullable=False),
    sa.Column("channel_id", sa.String, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    sa.Column("terms", Tsvector().with_variant(sa.Text(), "sqlite")),
    sa.ForeignKeyConstraint(
        ["message_pk", "channel_id"],
        ["commlink_message_copies.message_pk", "commlink_message_copies.channel_id"],
        ondelete="CASCADE",
    ),
    sa.UniqueConstraint("message_pk", "channel_id", name="commlink_search_docs_copy"),
    sa.Index("commlink_search_docs_recent", "sent_at"),
)

#: SQLite: the words of each ``search_docs`` row by field (FTS5, rowid =
#: ``doc``), dropped with the row. Words come cut and folded by
#: ``search_terms.words``; the tokenizer only splits them at the spaces
#: (``_`` is a token character for the field tags of ``sql_search_sqlite``).
#: This portable form keeps a copy of the indexed text (FTS5 needs it to
#: delete a row); see ``search_text_ddl`` for the form without it.
SEARCH_TEXT_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS commlink_search_text USING fts5"
    "(people, subject, body, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")",
    # merge segments 8 at a time, not 4: a bulk import spends a fifth less
    # on merging, searches read a few more segments
    "INSERT INTO commlink_search_text(commlink_search_text, rank) VALUES ('automerge', 8)",
    # how many rows hold each word: the query plan depends on it (sql_search)
    "CREATE VIRTUAL TABLE IF NOT EXISTS commlink_search_vocab USING fts5vocab"
    "(commlink_search_text, 'row')",
    "CREATE TRIGGER IF NOT EXISTS commlink_search_docs_gone AFTER DELETE ON "
    "commlink_search_docs BEGIN DELETE FROM commlink_search_text WHERE rowid = old.doc; END",
)

#: The first SQLite whose FTS5 deletes rows of a table that keeps no text
#: (``contentless_delete``).
CONTENTLESS_SQLITE = (3, 43, 0)

_CONTENTLESS = "content = '', contentless_delete = 1, "


def search_text_ddl(contentless: bool) -> tuple[str, ...]:
    """The statements that create the SQLite search text; ``contentless``
    (SQLite >= ``CONTENTLESS_SQLITE``): without a copy of the indexed text,
    which a bulk import then neither writes nor stores (about 30% of the
    database). Such a database's search needs SQLite 3.43 or newer."""
    if not contentless:
        return SEARCH_TEXT_DDL
    create = SEARCH_TEXT_DDL[0].replace(
        "(people, subject, body, ", "(people, subject, body, " + _CONTENTLESS
    )
    return (create, *SEARCH_TEXT_DDL[1:])


def search_text_contentless(connection: sa.Connection) -> bool:
    """Whether a SQLite store's search text was made without a copy of the text."""
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE name = 'commlink_search_text'"
    ).scalar()
    return bool(sql) and "contentless_delete" in str(sql)


def sqlite_version(connection: sa.Connection) -> tuple[int, ...]:
    """The version of the SQLite library behind a connection."""
    text = str(connection.exec_driver_sql("SELECT sqlite_version()").scalar_one())
    return tuple(int(part) for part in text.split(".")[:3])


#: PostgreSQL: the GIN index of the words. Written out rather than an
#: ``Index(..., postgresql_using="gin")``: that keyword loads SQLAlchemy's
#: PostgreSQL dialect when this module is imported, in SQLite stores too.
SEARCH_INDEX_DDL = (
    "CREATE INDEX IF NOT EXISTS commlink_search_docs_terms ON commlink_search_docs "
    "USING gin (terms)",
)


def _create_search_text(_table: sa.Table, connection: sa.Connection, **_kw: Any) -> None:
    if connection.dialect.name == "sqlite":
        statements = search_text_ddl(sqlite_version(connection) >= CONTENTLESS_SQLITE)
    else:
        statements = SEARCH_INDEX_DDL if connection.dialect.name == "postgresql" else ()
    for statement in statements:
        connection.exec_driver_sql(statement)


sa.event.listen(search_docs, "after_create", _create_search_text)

# Why messages were left out. Mail left out as internal, blocked or erased
# keeps no subject and no sender here (``policy.skips.minimise_skip``).
skips = _table(
    "skips",
    sa.Column("channel_id", sa.String, primary_key=True),
    sa.Column("provider_id", sa.String, primary_key=True),
    sa.Column("reason", sa.String, nullable=False),
    _text("detail"),
    _text("message_id"),
    _text("subject"),
    _text("sender"),
    sa.Column("sent_at", UtcDateTime),
    sa.Index("commlink_skips_message", "channel_id", "message_id"),
)

# Erased address keys (``Store.erase_address``): mail from or to one is never
# imported again. Tombstones hold the key and the time only.
erased = _table(
    "erased",
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("erased_at", UtcDateTime, nullable=False),
)

# OAuth grants (``SqlTokenStore``): tokens sealed when the store has a key.
oauth_tokens = _table(
    "oauth_tokens",
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("access_token", sa.Text, nullable=False),
    sa.Column("refresh_token", sa.Text),
    sa.Column("expires_at", UtcDateTime),
    _text("scopes"),
    _text("account"),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Push subscriptions (``SqlSubscriptionStore``), renewed before ``expires_at``.
push_subscriptions = _table(
    "push_subscriptions",
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("channel_id", sa.String, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    _text("resource"),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    _text("account"),
    sa.Column("secret", sa.Text),
    _text("data"),
    sa.Index("commlink_push_subscriptions_channel", "channel_id"),
    sa.Index("commlink_push_subscriptions_account", "provider", "account"),
    sa.Index("commlink_push_subscriptions_expiry", "expires_at"),
)

# Host events (``SqlStore(outbox=True)``), written in the transaction of the
# change they describe; ids increase in commit order (see ``sql_outbox``).
outbox = _table(
    "outbox",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("channel_id", sa.String, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the rest of the event, JSON
)

# Each outbox consumer's position (the highest event id it acknowledged) and
# the lease of the worker delivering for it.
outbox_consumers = _table(
    "outbox_consumers",
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
    _text("holder"),
    sa.Column("expires_at", UtcDateTime),
)

# the reference CRM directory (SqlDirectory)

# Addresses of people the CRM deleted (``SqlDirectory.delete_person``):
# ``create_contacts`` never creates a person for one again, until the host
# calls ``forget_deletion``.
deleted_addresses = _table(
    "deleted_addresses",
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("deleted_at", UtcDateTime, nullable=False),
)

companies = _table(
    "companies",
    sa.Column("id", sa.String, primary_key=True),
    _text("name"),
)

company_domains = _table(
    "company_domains",
    sa.Column("domain", sa.String, primary_key=True),
    sa.Column(
        "company_id",
        sa.String,
        sa.ForeignKey("commlink_companies.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Index("commlink_company_domains_company", "company_id"),
)

people = _table(
    "people",
    sa.Column("id", sa.String, primary_key=True),
    _text("name"),
    sa.Column("company_id", sa.String, sa.ForeignKey("commlink_companies.id", ondelete="SET NULL")),
)

person_addresses = _table(
    "person_addresses",
    sa.Column("key", sa.String, primary_key=True),
    sa.Column(
        "person_id",
        sa.String,
        sa.ForeignKey("commlink_people.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Index("commlink_person_addresses_person", "person_id"),
)

opportunities = _table(
    "opportunities",
    sa.Column("id", sa.String, primary_key=True),
    _text("name"),
    sa.Column("company_id", sa.String, sa.ForeignKey("commlink_companies.id", ondelete="CASCADE")),
    sa.Index("commlink_opportunities_company", "company_id"),
)

opportunity_contacts = _table(
    "opportunity_contacts",
    sa.Column(
        "opportunity_id",
        sa.String,
        sa.ForeignKey("commlink_opportunities.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "person_id",
        sa.String,
        sa.ForeignKey("commlink_people.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index("commlink_opportunity_contacts_person", "person_id"),
)
