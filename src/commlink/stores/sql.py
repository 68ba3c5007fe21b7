"""``SqlStore``: the reference ``Store`` on SQLAlchemy Core.

SQLite is the embedded default (``sqlite:///path``, or ``sqlite://`` in
memory); PostgreSQL works through psycopg 3 (``postgresql+psycopg://...``).
The schema is created on first use and versioned (see ``sql_schema``).
Every database error is raised as ``StoreError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..addresses import address_key
from ..closing import Closing
from ..credentials import Secret
from ..errors import InvalidInput, StoreError
from ..events import EventSink, HostEvent
from ..model import Channel, ChannelKind
from ..policy.skips import require_viewer
from ..records import (
    AddressLinks,
    ChannelState,
    ErasureReport,
    EventSummary,
    Lease,
    MessageSource,
    Page,
    PageRequest,
    Reason,
    SearchHit,
    SearchQuery,
    Skip,
    SyncBatch,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from . import sql_delete, sql_privacy, sql_read, sql_search, sql_sources, sql_write
from .common import FIRST_PAGE, require_aware, validate_batch, validate_links
from .outbox import EventLog, deliver_after_commit, state_change
from .outbox_snapshot import Snapshot, changes_since, snapshot
from .privacy import QUEUE_MARKER_SUFFIX, erasure_key, settings_change
from .sql_bulk import fetch, is_postgres, mark
from .sql_directory import SqlDirectory
from .sql_outbox import CommitEvents, SqlOutbox, write_outbox
from .sql_push import SqlSubscriptionStore, SqlTokenStore
from .sql_rows import channel_from_row, state_from_row, state_row
from .sql_schema import (
    SCHEMA_VERSION,
    STATISTICS_AFTER_ROWS,
    UtcDateTime,
    address_links,
    among,
    attendees,
    channel_states,
    channels,
    check_schema,
    chunks,
    create_engine,
    cursors,
    database_errors,
    dispose,
    empty_log,
    engine_lock,
    ensure_schema,
    ensure_statistics,
    erased,
    event_assocs,
    leases,
    message_assocs,
    message_copies,
    participants,
    prepare_engine,
    refuses_value,
    skips,
    store_error,
    upsert,
)

__all__ = ["SCHEMA_VERSION", "SqlDirectory", "SqlStore"]


log = logging.getLogger("commlink.stores")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sink_failed(exc: Exception) -> None:
    log.warning("the host event sink failed: %s", type(exc).__name__)


def _storable(keys: Collection[str]) -> Collection[str]:
    """Keys a database can be asked about: one with a NUL byte was never
    stored (PostgreSQL refuses the whole query over it), so it is left out."""
    return keys if not any("\x00" in k for k in keys) else [k for k in keys if "\x00" not in k]


class SqlStore(Closing):
    """A ``Store`` in a SQL database.

    ``url_or_engine`` is a SQLAlchemy URL or an existing ``Engine`` (which
    the caller then owns). The schema is created or migrated on
    construction; a database written by a newer commlink raises
    ``StoreError``; with ``migrate=False`` nothing is created or changed and
    a schema that is missing or of another version raises ``StoreError``
    (for hosts that run ``commlink db upgrade`` or their own migrations).
    ``clock`` gives the aware UTC time used for leases.
    ``engine_options`` tune the engine the store creates from a URL (pool
    size, overflow, ``connect_args``; see ``sql_schema.create_engine``).

    Host events (``commlink.events``): with ``outbox`` every write inserts
    its events into ``commlink_outbox`` in its own transaction, for
    ``outbox()`` to deliver; ``on_events`` is called with them after each
    write commits (in process: a crash between the two loses them). With
    neither, no event is computed.
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | Engine,
        *,
        clock: Callable[[], datetime] = _utcnow,
        engine_options: Mapping[str, Any] | None = None,
        migrate: bool = True,
        outbox: bool = False,
        on_events: EventSink | None = None,
    ) -> None:
        try:
            if isinstance(url_or_engine, Engine):
                self.engine = prepare_engine(url_or_engine)
                self._owns_engine = False
            else:
                self.engine = create_engine(url_or_engine, engine_options)
                self._owns_engine = True
        except (sa.exc.SQLAlchemyError, ValueError) as exc:
            raise StoreError(f"cannot open the store: {exc}") from exc
        self._clock = clock
        self._outbox = outbox
        self._on_events = on_events
        self._errors = database_errors(self.engine)
        self._has_statistics = self.engine.dialect.name != "postgresql"
        if migrate:
            ensure_schema(self.engine)
        else:
            check_schema(self.engine)

    def outbox(self) -> SqlOutbox:
        """The host event outbox (``SqlStore(url, outbox=True)``)."""
        if not self._outbox:
            raise InvalidInput("this store keeps no outbox: SqlStore(url, outbox=True)")
        return SqlOutbox(self._tx, self._clock)

    def _changes(self, channel_id: str, scope_id: str = "") -> CommitEvents | None:
        if not self._outbox and self._on_events is None:
            return None
        return CommitEvents(channel_id, scope_id, EventLog(self._clock()))

    def _record(self, conn: Connection, changes: CommitEvents | None) -> list[HostEvent]:
        """The events ``changes`` collected, written to the outbox in the
        caller's transaction when there is one."""
        if changes is None:
            return []
        found = changes.log.events
        return write_outbox(conn, found) if self._outbox else found

    def _snapshot(
        self, conn: Connection, *, channel_id: str | None = None, key: str | None = None
    ) -> Snapshot | None:
        if not self._outbox and self._on_events is None:
            return None
        return snapshot(conn, channel_id=channel_id, key=key)

    def _since(self, conn: Connection, before: Snapshot | None) -> list[HostEvent]:
        """The events of a write since ``before``, in the outbox when there is one."""
        if before is None:
            return []
        found = changes_since(conn, before, self._clock())
        return write_outbox(conn, found) if self._outbox else found

    def _publish(self, events: Sequence[HostEvent]) -> None:
        deliver_after_commit(self._on_events, events, _sink_failed)

    def token_store(self, key: str | Secret | None = None) -> SqlTokenStore:
        """A ``TokenStore`` in this database (``key`` seals the tokens)."""
        return SqlTokenStore(self.engine, key=key, clock=self._clock, create=False)

    def subscription_store(self) -> SqlSubscriptionStore:
        """A ``SubscriptionStore`` in this database."""
        return SqlSubscriptionStore(self.engine, create=False)

    def close(self) -> None:
        """Release pooled connections (of an engine this store created)."""
        if self._owns_engine:
            dispose(self.engine)

    def _scrub(self) -> None:
        """After removing data for privacy, on SQLite: merge the removed
        rows' words out of the search index, then clear the write-ahead log
        of the page images that held any of it (best effort, see
        ``empty_log``). Deleted rows' pages were overwritten as they went
        (``secure_delete``)."""
        if self.engine.dialect.name != "sqlite":
            return
        failures: tuple[type[Exception], ...] = (StoreError, *self._errors)
        try:
            with self._tx(write=True) as conn:
                sql_search.merge_away_deleted(conn)
            emptied = empty_log(self.engine)
        except failures as exc:  # the removal itself is committed
            log.warning("could not clear removed data from the SQLite files: %s", exc)
            return
        if not emptied:
            log.warning(
                "a reader kept the SQLite log: page images from before a removal stay "
                "in it until writers start it over"
            )

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        try:
            with (
                engine_lock(self.engine),
                self.engine.connect().execution_options(commlink_write=write) as conn,
                conn.begin(),
            ):
                yield conn
        except self._errors as exc:
            raise store_error(exc) from exc

    # channels and sync state

    def save_channel(self, channel: Channel) -> None:
        if not channel.id:
            raise InvalidInput("channel id must not be empty")
        with self._tx(write=True) as conn:
            before = None
            if self._outbox or self._on_events is not None:
                query = sa.select(channels).where(channels.c.id == channel.id)
                stored = conn.execute(query).mappings().first()
                if stored is not None:
                    change = settings_change(channel_from_row(stored).settings, channel.settings)
                    # only a change that reaches what the channel stored emits events
                    if change.blocked or change.minimise is not None:
                        before = self._snapshot(conn, channel_id=channel.id)
            withdrew = sql_privacy.save_channel(conn, channel)
            events = self._since(conn, before)
        if withdrew:
            self._scrub()
        self._publish(events)

    def channel(self, channel_id: str) -> Channel | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(channels).where(channels.c.id == channel_id)).mappings()
            found = row.first()
        return None if found is None else channel_from_row(found)

    def channels(self) -> Sequence[Channel]:
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(channels).order_by(channels.c.id)).mappings().all()
        return [channel_from_row(r) for r in rows]

    def remove_channel(self, channel_id: str) -> None:
        changes = self._changes(channel_id)
        with self._tx(write=True) as conn:
            dropped = sql_delete.delete_assocs(conn, channel_id, None, None)
            if changes is not None:
                changes.finish(conn, *dropped)
            for table in (cursors, channel_states, skips):
                conn.execute(sa.delete(table).where(table.c.channel_id == channel_id))
            marker = channel_id + QUEUE_MARKER_SUFFIX
            conn.execute(sa.delete(leases).where(leases.c.channel_id.in_([channel_id, marker])))
            gone: set[str] = set()
            sql_delete.collect(conn, channel_id, *dropped, gone_keys=gone)
            sql_delete.forget_unstored_links(conn, gone)
            conn.execute(sa.delete(channels).where(channels.c.id == channel_id))
            events = self._record(conn, changes)
        self._scrub()
        self._publish(events)

    def channel_state(self, channel_id: str) -> ChannelState | None:
        with self._tx(write=False) as conn:
            query = sa.select(channel_states).where(channel_states.c.channel_id == channel_id)
            found = conn.execute(query).mappings().first()
        return None if found is None else state_from_row(found)

    def channel_states(self) -> dict[str, ChannelState]:
        """Every channel's state in one query (what a dispatcher reads)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(channel_states)).mappings().all()
        return {str(row["channel_id"]): state_from_row(row) for row in rows}

    def save_channel_state(self, state: ChannelState) -> None:
        require_aware(state.next_attempt, "next_attempt")
        require_aware(state.last_success, "last_success")
        tracked = self._outbox or self._on_events is not None
        events: list[HostEvent] = []
        with self._tx(write=True) as conn:
            if tracked:
                query = sa.select(channel_states).where(
                    channel_states.c.channel_id == state.channel_id
                )
                found = conn.execute(query).mappings().first()
                previous = None if found is None else state_from_row(found)
                change = state_change(previous, state, self._clock())
                events = [change] if change is not None else []
            row = state_row(state)
            upsert(
                conn, channel_states, [row], ["channel_id"], [k for k in row if k != "channel_id"]
            )
            if events and self._outbox:
                events = write_outbox(conn, events)
        self._publish(events)

    def acquire_lease(self, channel_id: str, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        with self._tx(write=True) as conn:
            moment = UtcDateTime()
            m = mark(conn)
            # one atomic statement: take the row when free, expired or already ours
            # (plain SQL: a step renews its lease after every batch)
            found = fetch(
                conn,
                f"INSERT INTO {leases.name} (channel_id, holder, expires_at) "
                f"VALUES ({m}, {m}, {m}) "
                "ON CONFLICT (channel_id) DO UPDATE SET holder = excluded.holder, "
                f"expires_at = excluded.expires_at WHERE {leases.name}.holder = {m} "
                f"OR {leases.name}.expires_at <= {m} RETURNING holder",
                channel_id,
                holder,
                moment.process_bind_param(now + ttl, conn.dialect),
                holder,
                moment.process_bind_param(now, conn.dialect),
            )
            return bool(found)

    def held_leases(self, keys: Collection[str]) -> dict[str, Lease]:
        now = self._clock()
        found: dict[str, Lease] = {}
        with self._tx(write=False) as conn:
            for part in chunks(sorted(set(keys)), 5000):
                query = sa.select(leases).where(
                    among(conn, leases.c.channel_id, part), leases.c.expires_at > now
                )
                for row in conn.execute(query).mappings():
                    found[str(row["channel_id"])] = Lease(row["holder"], row["expires_at"])
        return found

    def release_lease(self, channel_id: str, holder: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                sa.delete(leases).where(
                    leases.c.channel_id == channel_id, leases.c.holder == holder
                )
            )

    # the write side

    def commit(self, batch: SyncBatch) -> None:
        validate_batch(batch)
        rows = len(batch.messages) + len(batch.events)
        check = not self._has_statistics and rows >= STATISTICS_AFTER_ROWS
        changes = self._changes(batch.channel_id, batch.scope_id)
        try:
            with self._tx(write=True) as conn:
                sql_write.commit_batch(conn, batch, changes)
                if check:
                    ensure_statistics(conn)
                events = self._record(conn, changes)
        except StoreError as exc:
            # a value the database will not hold (a NUL, an over-long key):
            # the engine isolates the record and skips it with this reason
            if exc.__cause__ is not None and refuses_value(exc.__cause__):
                raise InvalidInput(f"the database refused a value: {exc}") from exc
            raise
        except (KeyError, ValueError, UnicodeError) as exc:
            raise InvalidInput(f"unstorable value: {type(exc).__name__}: {exc!r}"[:300]) from exc
        self._has_statistics = self._has_statistics or check
        self._publish(events)

    def cursor(self, channel_id: str, scope_id: str) -> str | None:
        with self._tx(write=False) as conn:
            query = sa.select(cursors.c.cursor).where(
                cursors.c.channel_id == channel_id, cursors.c.scope_id == scope_id
            )
            found: str | None = conn.execute(query).scalar()
        return found

    def scope_ids(self, channel_id: str) -> Sequence[str]:
        selects = [
            sa.select(t.c.scope_id).where(t.c.channel_id == channel_id)
            for t in (cursors, message_assocs, event_assocs)
        ]
        with self._tx(write=False) as conn:
            found = set(conn.execute(sa.union(*selects)).scalars())
        return sorted(found)

    def drop_scope(self, channel_id: str, scope_id: str) -> None:
        changes = self._changes(channel_id, scope_id)
        with self._tx(write=True) as conn:
            dropped = sql_delete.delete_assocs(conn, channel_id, scope_id, None)
            if changes is not None:
                changes.finish(conn, *dropped)
            conn.execute(
                sa.delete(cursors).where(
                    cursors.c.channel_id == channel_id, cursors.c.scope_id == scope_id
                )
            )
            sql_delete.collect(conn, channel_id, *dropped)
            events = self._record(conn, changes)
        self._publish(events)

    def known_ids(self, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
        with self._tx(write=False) as conn:
            return sql_read.known_ids(conn, channel_id, scope_id, _storable(ids))

    def count_associations(
        self, channel_id: str, scope_id: str | None = None, *, kind: ChannelKind | None = None
    ) -> int:
        tables = [
            table
            for table, skip in (
                (message_assocs, ChannelKind.CALENDAR),
                (event_assocs, ChannelKind.MAIL),
            )
            if kind is not skip
        ]
        total = 0
        with self._tx(write=False) as conn:
            m = mark(conn)
            for table in tables:
                # an event object's id has a row per event of it (its exceptions)
                where, params = f"channel_id = {m}", [channel_id]
                if scope_id is not None:
                    where, params = f"{where} AND scope_id = {m}", [channel_id, scope_id]
                sql = (
                    "SELECT count(*) FROM (SELECT DISTINCT scope_id, provider_id "
                    f"FROM {table.name} WHERE {where}) ids"
                )
                total += int(fetch(conn, sql, *params)[0][0])
        return total

    def threads_by_message_ids(self, message_ids: Collection[str]) -> Mapping[str, str]:
        with self._tx(write=False) as conn:
            return sql_read.threads_by_message_ids(conn, _storable(message_ids))

    def thread_links(self, channel_id: str, message_ids: Collection[str]) -> ThreadLinks:
        with self._tx(write=False) as conn:
            return sql_read.thread_links(conn, channel_id, _storable(message_ids))

    def linked_addresses(self, target: Target) -> set[str]:
        query = sa.select(address_links.c.key).where(
            address_links.c.kind == target.kind.value, address_links.c.target_id == target.id
        )
        with self._tx(write=False) as conn:
            return set(conn.execute(query).scalars())

    def stored_addresses(self, keys: Collection[str] | None = None) -> set[str]:
        def keys_of(
            conn: Connection, table: sa.Table, part: Sequence[str] | None
        ) -> sa.Select[tuple[str]]:
            query = sa.select(table.c.key).where(table.c.key != "")
            return query if part is None else query.where(among(conn, table.c.key, part))

        parts: list[Sequence[str] | None] = (
            [None] if keys is None else list(chunks(sorted(set(keys))))
        )
        found: set[str] = set()
        with self._tx(write=False) as conn:
            for part in parts:
                query = sa.union(keys_of(conn, participants, part), keys_of(conn, attendees, part))
                found.update(str(k) for k in conn.execute(query).scalars())
        return found

    def relink(self, changes: Sequence[AddressLinks]) -> None:
        for change in changes:
            validate_links(change.key, [link.id for link in change.links])
        with self._tx(write=True) as conn:
            sql_write.replace_links(conn, changes)

    def delete_matching(self, channel_id: str, entries: Collection[str]) -> int:
        with self._tx(write=True) as conn:
            before = self._snapshot(conn, channel_id=channel_id)
            removed = sql_delete.delete_matching(conn, channel_id, entries)
            events = self._since(conn, before)
        if removed:
            self._scrub()
        self._publish(events)
        return removed

    # the read side (visibility applied here)

    def timeline(
        self, target: Target, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[ThreadSummary]:
        with self._tx(write=False) as conn:
            return sql_read.timeline(conn, target, viewer, page)

    def thread(
        self, thread_id: str, viewer: Viewer, page: PageRequest | None = None
    ) -> ThreadView | None:
        """The thread as ``viewer`` may see it, oldest first; one page of it
        when ``page`` is given (read by keyset in SQL; ``ThreadView.next``
        resumes)."""
        with self._tx(write=False) as conn:
            return sql_read.thread(conn, thread_id, viewer, page)

    def search(
        self, query: SearchQuery, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[SearchHit]:
        """Messages matching ``query`` as ``viewer`` may see them
        (``SearchableStore``); ``InvalidInput`` while the search index is off."""
        require_viewer(viewer)
        with self._tx(write=False) as conn:
            if not sql_search.index_kept(conn):
                raise InvalidInput(
                    "this store keeps no search index: store.set_search_index(True) builds it"
                )
            return sql_search.search(conn, query, viewer, page)

    @property
    def search_index(self) -> bool:
        """Whether commits keep the search index (``set_search_index``)."""
        with self._tx(write=False) as conn:
            return sql_search.index_kept(conn)

    @property
    def search_bodies(self) -> bool:
        """Whether the search index holds the words of bodies (``set_search_index``)."""
        with self._tx(write=False) as conn:
            return sql_search.index_setting(conn).bodies

    def set_search_index(self, on: bool, *, bodies: bool = True) -> None:
        """Keep the search index (``True``: a new database's setting) or not;
        ``bodies=False`` keeps it without the words of bodies.

        The setting is the database's, so every process using it follows.
        Off, commits skip the index (a first import into SQLite takes about
        a third less time), the index is emptied and ``search`` raises
        ``InvalidInput``: for a host that searches with its own engine, fed
        by host events. Without bodies, a search finds mail by its people and
        subject only, for most of the time saved. On, the index is built
        from every stored copy. Each change in one transaction, during which
        commits wait."""
        with self._tx(write=True) as conn:
            if is_postgres(conn):
                # in-flight commits finish first, and later ones read the new setting
                conn.exec_driver_sql(f"LOCK TABLE {message_copies.name} IN SHARE MODE")
            sql_search.keep_index(conn, on, bodies)

    def message_source(
        self, thread_id: str, message_id: str, viewer: Viewer
    ) -> MessageSource | None:
        """Where ``viewer`` may fetch the message's attachments from (``FULL`` only)."""
        with self._tx(write=False) as conn:
            return sql_sources.message_source(conn, thread_id, message_id, viewer)

    def events(
        self, target: Target, viewer: Viewer, window: Window, page: PageRequest = FIRST_PAGE
    ) -> Page[EventSummary]:
        require_aware(window.start, "window start")
        require_aware(window.end, "window end")
        with self._tx(write=False) as conn:
            return sql_read.event_page(conn, target, viewer, window, page)

    def skips(
        self, channel_id: str, viewer: Viewer, message_id: str | None = None
    ) -> Sequence[Skip]:
        require_viewer(viewer)
        with self._tx(write=False) as conn:
            return sql_privacy.read_skips(conn, channel_id, viewer, message_id)

    def skip_reasons(self, channel_id: str, ids: Collection[str]) -> dict[str, Reason]:
        """The skip reason of each of ``ids`` that a skip record holds, in one
        read per chunk (the engine's ``SkipReasonLookup``)."""
        found: dict[str, Reason] = {}
        wanted = sorted(set(_storable(ids)))
        with self._tx(write=False) as conn:
            for chunk in chunks(wanted):
                query = sa.select(skips.c.provider_id, skips.c.reason).where(
                    skips.c.channel_id == channel_id, among(conn, skips.c.provider_id, chunk)
                )
                found.update((pid, Reason(reason)) for pid, reason in conn.execute(query))
        return found

    # erasure

    def erase_address(self, address: str) -> ErasureReport:
        key = erasure_key(address)
        now = self._clock()
        with self._tx(write=True) as conn:
            before = self._snapshot(conn, key=key)
            report = sql_privacy.erase(conn, key, now)
            events = self._since(conn, before)
        if report.messages or report.events or report.skips or report.links:
            self._scrub()
        self._publish(events)
        return report

    def erased(self, keys: Collection[str]) -> set[str]:
        normal = {k: address_key(k) for k in _storable(keys)}
        with self._tx(write=False) as conn:
            found = sql_write.erased_among(conn, {n for n in normal.values() if n})
        return {k for k, n in normal.items() if n in found}

    def forget_erasure(self, address: str) -> bool:
        """Remove an address's tombstone (mail from or to it may be imported
        again); whether there was one. Not part of the ``Store`` port."""
        key = erasure_key(address)
        with self._tx(write=True) as conn:
            gone = conn.execute(sa.delete(erased).where(erased.c.key == key))
            return bool(gone.rowcount)
