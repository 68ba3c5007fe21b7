"""The SQL schema of the reference store and directory, its version and engines.

One schema serves SQLite (the embedded default) and PostgreSQL. The tables
are defined in ``sql_tables`` (re-exported here) and upgraded by the steps
in ``sql_migrations``. ``commlink_schema`` holds the schema version;
``ensure_schema`` creates a fresh schema, migrates an older one through
``MIGRATIONS`` and refuses one written by a newer commlink.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

from ..errors import ConfigError, StoreError
from . import sql_checkpoint
from .sql_migrations import MIGRATIONS
from .sql_tables import (
    CONTENTLESS_SQLITE,
    SEARCH_INDEX_DDL,
    SEARCH_TEXT_DDL,
    THREAD_TARGETS_FILL,
    UtcDateTime,
    address_links,
    attendees,
    channel_states,
    channels,
    companies,
    company_domains,
    cursors,
    deleted_addresses,
    erased,
    event_assocs,
    events,
    leases,
    message_assocs,
    message_copies,
    message_refs,
    messages,
    metadata,
    opportunities,
    opportunity_contacts,
    outbox,
    outbox_consumers,
    participants,
    people,
    person_addresses,
    schema_table,
    search_docs,
    search_text_contentless,
    search_text_ddl,
    skips,
    sqlite_version,
    thread_targets,
)

__all__ = [
    "CONTENTLESS_SQLITE",
    "MAX_PARAMS",
    "MIGRATIONS",
    "POSTGRES_CONNECT",
    "SCHEMA_VERSION",
    "SERVER_POOL",
    "STATISTICS_AFTER_ROWS",
    "THREAD_TARGETS_FILL",
    "UtcDateTime",
    "WAL_CHECKPOINT_PAGES",
    "WAL_FILE_LIMIT",
    "address_links",
    "among",
    "attendees",
    "channel_states",
    "channels",
    "check_schema",
    "chunks",
    "companies",
    "company_domains",
    "create_engine",
    "cursors",
    "database_errors",
    "dispose",
    "deleted_addresses",
    "empty_log",
    "engine_lock",
    "ensure_schema",
    "ensure_statistics",
    "erased",
    "event_assocs",
    "events",
    "excluded",
    "insert_for",
    "insert_many",
    "leases",
    "message_assocs",
    "message_copies",
    "message_refs",
    "messages",
    "metadata",
    "opportunities",
    "opportunity_contacts",
    "outbox",
    "outbox_consumers",
    "outside_transaction",
    "participants",
    "people",
    "person_addresses",
    "prepare_engine",
    "refuses_value",
    "schema_ddl",
    "schema_table",
    "schema_version",
    "search_docs",
    "search_text_contentless",
    "search_text_ddl",
    "skips",
    "sqlite_version",
    "store_error",
    "thread_targets",
    "upsert",
]

T = TypeVar("T")

#: The version this code writes; bump it with an entry in ``MIGRATIONS``
#: (``sql_migrations``). 4: content kept per channel (message copies, one
#: event row per channel). 5: erasure and directory tombstones; skip records
#: of internal and blocked mail keep no subject and no sender. 7: the host
#: event outbox. 8: the search index. 9: sanitised HTML per message copy.
#: 10: untagged body words in SQLite's search index. 11: no index of
#: participants and attendees by domain. 12: whether the database keeps its
#: search index. 13: whether that index holds the words of bodies.
SCHEMA_VERSION = 13

#: PostgreSQL advisory lock key held while the schema is created or migrated.
_SCHEMA_LOCK = 0x636F6D6D6C696E6B  # "commlink"

#: Bound parameters per statement at most (SQLite allows 32,766; PostgreSQL 65,535).
MAX_PARAMS = 10_000


def among(
    conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """``column IN (values)`` with the values as ONE parameter, so the statement
    compiles once however many values: ``column IN (SELECT unnest(:array))``
    on PostgreSQL (not ``= ANY(:array)``, which generic plans of prepared
    statements search linearly per row), ``column IN (SELECT value FROM
    json_each(:json))`` on SQLite."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

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
    """An ``INSERT`` with ``ON CONFLICT`` support for the connection's dialect
    (each dialect's module is loaded when first used: a SQLite store never
    loads PostgreSQL's)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

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


#: Pages past which a SQLite writer copies the write-ahead log into the
#: database itself (64 MiB at the default 4 KiB page). A file database's
#: own thread does it after every commit instead (``sql_checkpoint``), so
#: this only bounds the log should that thread fall behind.
WAL_CHECKPOINT_PAGES = 16_384
#: Bytes the ``-wal`` file is cut back to when the log starts over.
WAL_FILE_LIMIT = 64 * 1024 * 1024


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun explicitly below
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # deleted content is overwritten, not left in free pages: whether
        # SQLite does so by default depends on how it was built (Debian's
        # does, many others do not), and a removed channel's or an erased
        # address's mail must not stay readable in the file (docs/security.md)
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_FILE_LIMIT}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # writers take the lock up front, so a read-then-write transaction cannot
    # fail half-way with SQLITE_BUSY when another process wrote meanwhile
    write = conn.get_execution_options().get("commlink_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


#: set in a connection's info by a write's commit, taken at its check-in
_COMMITTED = "commlink_committed"


def _sqlite_commit(conn: Connection) -> None:
    if conn.get_execution_options().get("commlink_write", True):  # not a store's read
        conn.info[_COMMITTED] = True


def _nudge_after_commit(engine: Engine) -> Callable[[Any, Any], None]:
    """A pool check-in listener that nudges ``engine``'s checkpointer when
    the connection committed: check-in follows the commit, whereas the
    engine's commit event comes before it, too early to see its pages."""
    ref = weakref.ref(engine)

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        found = ref()
        if found is not None and record is not None and record.info.pop(_COMMITTED, False):
            sql_checkpoint.checkpointer(found).nudge()

    return checkin


def _is_file(engine: Engine) -> bool:
    database = engine.url.database
    return (
        not isinstance(engine.pool, StaticPool)
        and database not in (None, "", ":memory:")
        and "mode=memory" not in str(database)
        and not str(database).startswith("file::memory:")
    )


def empty_log(engine: Engine) -> bool:
    """Copy a SQLite file database's write-ahead log into it and cut the log
    to nothing (``wal_checkpoint(TRUNCATE)``), so that the page images a
    privacy operation replaced leave the ``-wal`` file too. Waits for the
    connection's busy timeout at most. ``True`` when no log holds older page
    images any more (or the database has none); ``False`` when a reader still
    holds an older snapshot: that log is overwritten as writers start it over."""
    if engine.dialect.name != "sqlite" or not _is_file(engine):
        return True
    # a background checkpoint running now would make this one "busy" at once
    with sql_checkpoint.checkpointer(engine).held():
        row = outside_transaction(engine, "PRAGMA wal_checkpoint(TRUNCATE)")
    return row is not None and int(row[0]) == 0


def outside_transaction(engine: Engine, sql: str) -> Any:
    """Run one statement on the driver's connection, outside any transaction
    (SQLite's ``VACUUM`` and checkpoints need that); its first row, if any."""
    with engine_lock(engine):
        raw = engine.raw_connection()
        try:
            return raw.cursor().execute(sql).fetchone()
        finally:
            raw.close()


def prepare_engine(engine: Engine) -> Engine:
    """Install SQLite pragmas, explicit transactions and, for a database
    file, checkpoints off the committing thread (``sql_checkpoint``)
    (idempotent), and keep statement parameters (other people's mail) out
    of error messages."""
    engine.hide_parameters = True
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_connect):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        if _is_file(engine):  # an in-memory database has no log
            event.listen(engine, "commit", _sqlite_commit)
            event.listen(engine, "checkin", _nudge_after_commit(engine))
    return engine


def dispose(engine: Engine) -> None:
    """Stop the engine's checkpoint thread and close its pooled connections."""
    sql_checkpoint.stop(engine)
    engine.dispose()


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


def store_error(exc: BaseException) -> StoreError:
    """A ``StoreError`` that says what the database said, in one line, without
    the statement or its parameters (which hold other people's mail)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return StoreError(f"{type(orig).__name__}: {first}"[:300])


def refuses_value(exc: BaseException) -> bool:
    """Whether a database error is a refusal of a value in the data (a data
    exception, a value over a size limit) rather than a failure of the database."""
    orig = getattr(exc, "orig", None)
    state = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
    if state[:2] in ("22", "54"):  # data_exception, program_limit_exceeded
        return True
    return isinstance(exc, sa.exc.DataError) or type(orig).__name__ == "DataError"


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
                f"ALTER TABLE {message_copies.name} ALTER COLUMN body SET COMPRESSION lz4, "
                "ALTER COLUMN html SET COMPRESSION lz4"
            )
    except sa.exc.DBAPIError:
        pass  # an older server or one without lz4 keeps its default


def _stored_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(schema_table.name):
        return None
    version = conn.execute(sa.select(schema_table.c.version)).scalar()
    return None if version is None else int(version)


def schema_version(engine: Engine) -> int | None:
    """The schema version a database holds (``None``: no commlink tables)."""
    try:
        with engine_lock(engine), engine.connect() as conn:
            return _stored_version(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise store_error(exc) from exc


def check_schema(engine: Engine) -> None:
    """Raise ``StoreError`` unless the database holds exactly this version's schema
    (for hosts that run migrations themselves: ``SqlStore(..., migrate=False)``)."""
    found = schema_version(engine)
    if found == SCHEMA_VERSION:
        if engine.dialect.name == "sqlite":
            try:
                with engine_lock(engine), engine.connect() as conn:
                    _require_search_text_support(conn)
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"cannot read the commlink schema: {exc}") from exc
        return
    if found is None:
        raise StoreError(
            "the database has no commlink schema: run `commlink db upgrade` "
            "or apply the DDL from `commlink db sql`"
        )
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {found} is newer than this commlink "
            f"({SCHEMA_VERSION}); upgrade commlink"
        )
    raise StoreError(
        f"database schema version {found} is older than this commlink ({SCHEMA_VERSION}): "
        "run `commlink db upgrade`"
    )


def schema_ddl(dialect_name: str) -> str:
    """The statements that create this version's schema on an empty database of
    ``dialect_name`` (``postgresql`` or ``sqlite``), for hosts that keep DDL in
    their own migrations. Upgrades of existing databases go through
    ``ensure_schema`` (``commlink db upgrade``)."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    modules = {"postgresql": postgresql, "sqlite": sqlite}
    if dialect_name not in modules:
        raise ValueError(f"unknown dialect {dialect_name!r}: postgresql or sqlite")
    dialect: sa.Dialect = getattr(modules[dialect_name], "dialect")()  # noqa: B009
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: str(i.name))
            if index._ddl_if is None or index._ddl_if.dialect in (None, dialect_name)
        )
        if table is search_docs:
            statements.extend(SEARCH_TEXT_DDL if dialect_name == "sqlite" else SEARCH_INDEX_DDL)
    statements.append(f"INSERT INTO {schema_table.name} (id, version) VALUES (1, {SCHEMA_VERSION})")
    return "".join(f"{s};\n\n" for s in statements)


def _require_search_text_support(conn: Connection) -> None:
    """Refuse a database whose search index this SQLite cannot read: one
    made without a copy of the indexed text (``search_text_ddl``) by SQLite
    3.43 or newer, opened by an older one."""
    version = sqlite_version(conn)
    if version < CONTENTLESS_SQLITE and search_text_contentless(conn):
        have = ".".join(map(str, version))
        raise StoreError(
            f"this database's search index needs SQLite 3.43 or newer; this Python "
            f"has SQLite {have} (pass engine_options={{'module': pysqlite3.dbapi2}} "
            "with pysqlite3-binary installed, or open it where SQLite is newer)"
        )


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
            if found is not None and conn.dialect.name == "sqlite":
                _require_search_text_support(conn)
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
