"""The SQL schema of the reference store and directory, its version and engines.

One schema serves SQLite (the embedded default) and PostgreSQL. Tables are
prefixed ``commlink_``. ``commlink_schema`` holds the schema version;
``ensure_schema`` creates a fresh schema, migrates an older one through
``MIGRATIONS`` and refuses one written by a newer commlink.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import StaticPool

from ..errors import ConfigError, StoreError

__all__ = [
    "MIGRATIONS",
    "POSTGRES_CONNECT",
    "SERVER_POOL",
    "THREAD_TARGETS_FILL",
    "among",
    "SCHEMA_VERSION",
    "UtcDateTime",
    "chunks",
    "create_engine",
    "database_errors",
    "engine_lock",
    "ensure_schema",
    "ensure_statistics",
    "excluded",
    "insert_for",
    "insert_many",
    "metadata",
    "prepare_engine",
    "upsert",
]

T = TypeVar("T")

#: The version this code writes; bump it with an entry in ``MIGRATIONS``.
SCHEMA_VERSION = 3


def _add_content_hash(conn: Connection) -> None:
    # '' never equals a computed hash, so old rows are rewritten once when re-committed
    conn.exec_driver_sql(
        "ALTER TABLE commlink_messages ADD COLUMN content_hash TEXT NOT NULL DEFAULT ''"
    )


def _add_thread_targets(conn: Connection) -> None:
    thread_targets.create(conn, checkfirst=True)
    conn.exec_driver_sql(THREAD_TARGETS_FILL.format(where="1 = 1", threads="1 = 1"))


#: ``MIGRATIONS[n]`` upgrades a schema of version ``n`` to ``n + 1`` in place.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_content_hash,
    2: _add_thread_targets,
}

#: PostgreSQL advisory lock key held while the schema is created or migrated.
_SCHEMA_LOCK = 0x636F6D6D6C696E6B  # "commlink"

#: Bound parameters per statement at most (SQLite allows 32,766; PostgreSQL 65,535).
MAX_PARAMS = 10_000

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

messages = _table(
    "messages",
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("thread_id", sa.String, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    _text("subject"),
    _text("snippet"),
    sa.Column("body", sa.Text),
    _text("attachments"),
    # digest of the stored row, participants and references (see sql_rows.content_hash):
    # a re-committed message with the same digest is left as it is
    _text("content_hash"),
    sa.Index("commlink_messages_thread", "thread_id", "sent_at"),
)


def _message_fk() -> sa.ForeignKey:
    return sa.ForeignKey("commlink_messages.pk", ondelete="CASCADE")


participants = _table(
    "participants",
    sa.Column("message_pk", sa.BigInteger, _message_fk(), primary_key=True),
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("role", sa.String, nullable=False),
    _text("key"),
    _text("domain"),
    _text("email"),
    _text("name"),
    sa.Column("valid", sa.Boolean, nullable=False),
    _text("raw"),
    sa.Index("commlink_participants_key", "key"),
    sa.Index("commlink_participants_domain", "domain"),
)

message_refs = _table(
    "message_refs",
    sa.Column("message_pk", sa.BigInteger, _message_fk(), primary_key=True),
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ref_id", sa.String, nullable=False),
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

events = _table(
    "events",
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("uid", sa.String, nullable=False),
    sa.Column("rid_key", sa.String, nullable=False),
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
    sa.UniqueConstraint("uid", "rid_key", name="commlink_events_uid_rid"),
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
    sa.Index("commlink_attendees_domain", "domain"),
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
# instead of aggregating every linked thread. Derived from messages,
# participants and address links; the write path refreshes the rows of
# every thread a write touches (see ``sql_write.refresh_threads``).
thread_targets = _table(
    "thread_targets",
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("target_id", sa.String, primary_key=True),
    sa.Column("thread_id", sa.String, primary_key=True),
    sa.Column("last_at", UtcDateTime, nullable=False),
    sa.Index("commlink_thread_targets_recent", "kind", "target_id", "last_at", "thread_id"),
    sa.Index("commlink_thread_targets_thread", "thread_id"),
)

#: Rebuilds ``thread_targets`` rows: ``{where}`` selects the messages'
#: threads and ``{threads}`` the same threads for their latest message time.
THREAD_TARGETS_FILL = (
    "WITH t AS (SELECT thread_id, max(sent_at) AS last_at FROM commlink_messages "
    "WHERE {threads} GROUP BY thread_id) "
    "INSERT INTO commlink_thread_targets (kind, target_id, thread_id, last_at) "
    "SELECT DISTINCT l.kind, l.target_id, m.thread_id, t.last_at "
    "FROM t JOIN commlink_messages m ON m.thread_id = t.thread_id "
    "JOIN commlink_participants p ON p.message_pk = m.pk "
    "JOIN commlink_address_links l ON l.key = p.key "
    "WHERE p.valid AND {where}"
)

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

# the reference CRM directory (SqlDirectory)

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


def among(
    conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """``column IN (values)`` with the values as ONE parameter, so the statement
    compiles once however many values: ``column IN (SELECT unnest(:array))``
    on PostgreSQL (not ``= ANY(:array)``, which generic plans of prepared
    statements search linearly per row), ``column IN (SELECT value FROM
    json_each(:json))`` on SQLite."""
    if conn.dialect.name == "postgresql":
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column.in_(sa.select(sa.func.unnest(array)))
    listed = sa.bindparam(None, json.dumps(list(values)), type_=sa.Text)
    return column.in_(sa.select(sa.func.json_each(listed).table_valued("value").c.value))


def chunks(items: Sequence[T], size: int = MAX_PARAMS) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (never an empty slice)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | dict[str, Any] | None = None,
) -> None:
    """``INSERT .. ON CONFLICT (keys) DO UPDATE`` (or ``DO NOTHING`` without
    ``update``) as one executemany. ``update`` names columns taken from the
    new row, or maps columns to expressions built by the caller."""
    if not rows:
        return
    stmt = insert_for(conn, table)
    if update is None:
        insert_many(conn, stmt.on_conflict_do_nothing(index_elements=list(keys)), rows)
        return
    values = update if isinstance(update, dict) else {n: stmt.excluded[n] for n in update}
    insert_many(conn, stmt.on_conflict_do_update(index_elements=list(keys), set_=values), rows)


def insert_many(conn: Connection, stmt: sa.Insert, rows: Sequence[dict[str, Any]]) -> None:
    """Execute an INSERT for many rows as few multi-row statements."""
    if not rows:
        return
    conn.execute(stmt, list(rows))


def insert_for(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def excluded(conn: Connection, table: sa.Table) -> Any:
    """The ``excluded`` pseudo-table of an upsert on ``table`` for this dialect."""
    return insert_for(conn, table).excluded


#: Rows one commit must write before the first statistics check (PostgreSQL).
STATISTICS_AFTER_ROWS = 200


def ensure_statistics(conn: Connection) -> None:
    """Run ``ANALYZE`` on the store's tables if PostgreSQL never did.

    Without statistics the planner estimates one row per (channel, scope)
    and scans whole scopes for ``provider_id IN (...)`` lookups, which makes
    the first large import quadratic until autovacuum catches up.
    """
    if conn.dialect.name != "postgresql":
        return
    found = conn.execute(
        sa.text("SELECT count(*) FROM pg_stats WHERE tablename = :name"),
        {"name": message_assocs.name},
    ).scalar()
    if not found:
        conn.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in metadata.sorted_tables))


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun explicitly below
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # writers take the lock up front, so a read-then-write transaction cannot
    # fail half-way with SQLITE_BUSY when another process wrote meanwhile
    write = conn.get_execution_options().get("commlink_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def prepare_engine(engine: Engine) -> Engine:
    """Install SQLite pragmas and explicit transactions (idempotent)."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_connect):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


#: Pool settings for a server database (PostgreSQL), overridable per store:
#: connections are checked before use (a server restart or a dropped
#: connection fails no sync), recycled every 30 minutes (under proxies and
#: load balancers that cut idle ones), and taken most-recently-used first so
#: surplus idle connections time out on the server side.
SERVER_POOL: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 5,
    "pool_timeout": 30,
    "pool_recycle": 1800,
    "pool_pre_ping": True,
    "pool_use_lifo": True,
}

#: libpq settings for PostgreSQL: a dead server or network is noticed within
#: about a minute (TCP keepalives) instead of hanging a worker for hours.
POSTGRES_CONNECT: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "application_name": "commlink",
}


def create_engine(url: str | sa.URL, options: Mapping[str, Any] | None = None) -> Engine:
    """An engine for a SQLAlchemy URL: ``sqlite:///path``, ``sqlite://`` (in
    memory, one shared connection) or ``postgresql+psycopg://...``.

    ``options`` are ``sqlalchemy.create_engine`` keywords laid over the
    defaults (``SERVER_POOL`` and, for PostgreSQL, ``POSTGRES_CONNECT`` as
    ``connect_args``), e.g. ``{"pool_size": 2, "max_overflow": 0}``.
    """
    parsed = sa.make_url(url)
    extra = dict(options or {})
    if parsed.get_backend_name() == "sqlite":
        chosen: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if parsed.database in (None, "", ":memory:"):
            chosen["poolclass"] = StaticPool
        return prepare_engine(sa.create_engine(parsed, **{**chosen, **extra}))
    chosen = dict(SERVER_POOL)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        given = {k: v for k, v in parsed.query.items() if k in POSTGRES_CONNECT}
        connect = {k: v for k, v in POSTGRES_CONNECT.items() if k not in given}
        chosen["connect_args"] = {**connect, **extra.pop("connect_args", {})}
    try:
        return prepare_engine(sa.create_engine(parsed, **{**chosen, **extra}))
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"no driver for {parsed.drivername} ({exc.name}); for PostgreSQL: "
            "pip install commlink[postgres]",
            field="url",
        ) from exc


def database_errors(engine: Engine) -> tuple[type[Exception], ...]:
    """Exceptions that mean the database failed: SQLAlchemy's and the driver's
    own (raised by driver-level code such as PostgreSQL ``COPY``)."""
    dbapi = getattr(engine.dialect, "loaded_dbapi", None)
    driver_error = getattr(dbapi, "Error", None)
    if isinstance(driver_error, type) and issubclass(driver_error, Exception):
        return (sa.exc.SQLAlchemyError, driver_error)
    return (sa.exc.SQLAlchemyError,)


_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def engine_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Serialise use of an engine whose pool shares one connection (``sqlite://``).

    Threads would otherwise interleave their transactions on that connection.
    """
    if not isinstance(engine.pool, StaticPool):
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(engine)
        if lock is None:
            lock = _LOCKS[engine] = threading.RLock()
    return lock


def _compress_bodies(conn: Connection) -> None:
    """On PostgreSQL 14+ built with lz4, compress message bodies with lz4: the
    default (pglz) costs several times more server time per write."""
    if conn.dialect.name != "postgresql":
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(
                f"ALTER TABLE {messages.name} ALTER COLUMN body SET COMPRESSION lz4"
            )
    except sa.exc.DBAPIError:
        pass  # an older server or one without lz4 keeps its default


def _stored_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(schema_table.name):
        return None
    version = conn.execute(sa.select(schema_table.c.version)).scalar()
    return None if version is None else int(version)


def ensure_schema(engine: Engine) -> int:
    """Create or migrate the schema; returns the version found before.

    Raises ``StoreError`` for a schema newer than ``SCHEMA_VERSION``.
    """
    try:
        with (
            engine_lock(engine),
            engine.connect().execution_options(commlink_write=True) as conn,
            conn.begin(),
        ):
            if conn.dialect.name == "postgresql":
                # processes starting together must not create the tables twice
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            found = _stored_version(conn)
            if found is not None and found > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {found} is newer than this commlink "
                    f"({SCHEMA_VERSION}); upgrade commlink"
                )
            version = found or 0
            while found is not None and version < SCHEMA_VERSION:
                migrate = MIGRATIONS.get(version)
                if migrate is None:
                    raise StoreError(f"no migration from schema version {version}")
                migrate(conn)
                version += 1
            if found != SCHEMA_VERSION:
                metadata.create_all(conn, checkfirst=True)
                _compress_bodies(conn)
            if found is None:
                upsert(conn, schema_table, [{"id": 1, "version": SCHEMA_VERSION}], ["id"])
            elif found < SCHEMA_VERSION:
                conn.execute(sa.update(schema_table).values(version=SCHEMA_VERSION))
            return found or 0
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot prepare the commlink schema: {exc}") from exc
