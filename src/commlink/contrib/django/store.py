"""``DjangoStore``: the ``Store`` port on the Django ORM.

Its tables are the app's models (``commlink_orm_*``, created by the app's
migrations), in the database ``using`` names. It works on SQLite and
PostgreSQL and passes the same conformance suite as the reference stores.
Every database error is raised as ``StoreError``; a value the database
refuses (a NUL byte in PostgreSQL text, a key over the index size limit)
as ``InvalidInput``, so the sync engine isolates that record.

A commit is one ``transaction.atomic`` block; when the caller is already
inside one, the commit is a savepoint of it. On SQLite, configure the
database with ``"OPTIONS": {"transaction_mode": "IMMEDIATE"}`` when several
threads or processes write: a writer then waits for the lock instead of
failing to upgrade a read transaction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Q

from ...addresses import address_key
from ...errors import ConfigError, InvalidInput, StoreError
from ...events import EventSink, HostEvent
from ...model import Channel, ChannelKind
from ...policy.skips import require_viewer
from ...records import (
    AddressLinks,
    ChannelState,
    ErasureReport,
    EventSummary,
    Lease,
    MessageSource,
    Page,
    PageRequest,
    Reason,
    Skip,
    SyncBatch,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from ...stores.common import FIRST_PAGE, require_aware, validate_batch, validate_links
from ...stores.outbox import EventLog, deliver_after_commit, state_change
from ...stores.privacy import QUEUE_MARKER_SUFFIX, erasure_key, settings_change
from ...stores.sql_rows import channel_from_row, state_from_row, state_row
from . import models as m
from . import store_delete, store_privacy, store_read, store_write
from .store_events import CommitEvents, DjangoOutbox, write_outbox
from .store_rows import as_row, chunked
from .store_snapshot import Snapshot, changes_since, snapshot

__all__ = ["DjangoStore"]


log = logging.getLogger("commlink.contrib.django")


def _sink_failed(exc: Exception) -> None:
    log.warning("the host event sink failed: %s", type(exc).__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _storable(keys: Collection[str]) -> Collection[str]:
    """Keys a database can be asked about: one with a NUL byte was never
    stored (PostgreSQL refuses the whole query over it), so it is left out."""
    return keys if not any("\x00" in k for k in keys) else [k for k in keys if "\x00" not in k]


def _refuses_value(exc: BaseException) -> bool:
    """Whether a database error refuses a value in the data (a data
    exception, a value over a size limit) rather than the database failing."""
    cause = exc.__cause__
    state = str(getattr(cause, "sqlstate", "") or getattr(cause, "pgcode", "") or "")
    return state[:2] in ("22", "54") or type(exc).__name__ == "DataError"


class _ThreadConnections:
    """The raw connections a worker thread opened through the store, closed
    when the thread ends: Django leaves a thread's connections open, and
    they would otherwise be dropped unclosed at exit."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        weakref.finalize(self, _close_raw, self.raw)


def _close_raw(raw: dict[str, Any]) -> None:
    for connection in raw.values():
        with contextlib.suppress(Exception):
            connection.close()


_THREAD = threading.local()


def _remember_connection(using: str) -> None:
    if threading.current_thread() is threading.main_thread():
        return
    opened = getattr(_THREAD, "connections", None)
    if opened is None:
        opened = _THREAD.connections = _ThreadConnections()
    raw = connections[using].connection
    if raw is not None:
        opened.raw[using] = raw


def _store_error(exc: BaseException) -> StoreError:
    """A ``StoreError`` saying what the database said, in one line, without
    the statement or its parameters (which hold other people's mail)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return StoreError(f"{type(exc).__name__}: {first}"[:300])


class DjangoStore:
    """A ``Store`` (and ``AssociationCounter``, ``MessageSources``) in a Django database.

    ``using`` is the database alias. ``clock`` gives the aware UTC time used
    for leases and erasure dates. Django must run with ``USE_TZ = True``.

    Host events (``commlink.events``): with ``outbox`` every write inserts
    its events into ``commlink_orm_outbox`` in its own transaction, for
    ``outbox()`` to deliver; ``on_events`` is called with them once the
    write commits (``transaction.on_commit``: after the outermost
    transaction, when the caller holds one). A failing sink is logged and
    never fails the write.
    """

    def __init__(
        self,
        using: str = "default",
        *,
        clock: Callable[[], datetime] = _utcnow,
        outbox: bool = False,
        on_events: EventSink | None = None,
    ) -> None:
        if not settings.USE_TZ:
            raise ConfigError("commlink's Django store needs USE_TZ = True")
        if using not in connections:
            raise ConfigError(f"no database {using!r} in settings.DATABASES")
        self.using = using
        self._clock = clock
        self._outbox = outbox
        self._on_events = on_events

    def outbox(self) -> DjangoOutbox:
        """The host event outbox (``DjangoStore(outbox=True)``)."""
        if not self._outbox:
            raise InvalidInput("this store keeps no outbox: DjangoStore(outbox=True)")
        return DjangoOutbox(self.using, self._write, self._read, self._clock)

    def _changes(self, channel_id: str, scope_id: str = "") -> CommitEvents | None:
        if not self._outbox and self._on_events is None:
            return None
        return CommitEvents(channel_id, scope_id, EventLog(self._clock()), using=self.using)

    def _snapshot(
        self, *, channel_id: str | None = None, key: str | None = None
    ) -> Snapshot | None:
        if not self._outbox and self._on_events is None:
            return None
        return snapshot(self.using, channel_id=channel_id, key=key)

    def _since(self, before: Snapshot | None) -> None:
        """Record the events of a write since ``before``."""
        if before is not None:
            self._record(changes_since(self.using, before, self._clock()))

    def _record(self, found: Sequence[HostEvent]) -> None:
        """Write events to the outbox (inside the write's transaction) and
        hand them to ``on_events`` once it commits."""
        if not found:
            return
        events = write_outbox(self.using, found) if self._outbox else list(found)
        if self._on_events is not None:
            sink = self._on_events
            transaction.on_commit(
                lambda: deliver_after_commit(sink, events, _sink_failed), using=self.using
            )

    def __repr__(self) -> str:
        return f"DjangoStore(using={self.using!r})"

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            with transaction.atomic(using=self.using):
                yield
        except DatabaseError as exc:
            raise _store_error(exc) from exc
        finally:
            _remember_connection(self.using)

    @contextmanager
    def _read(self) -> Iterator[None]:
        try:
            yield
        except DatabaseError as exc:
            raise _store_error(exc) from exc
        finally:
            _remember_connection(self.using)

    # channels and sync state

    def save_channel(self, channel: Channel) -> None:
        if not channel.id:
            raise InvalidInput("channel id must not be empty")
        with self._write():
            before = None
            if self._outbox or self._on_events is not None:
                rows = m.Channel.objects.using(self.using).filter(id=channel.id)
                stored = rows.values().first()
                if stored is not None:
                    old = channel_from_row(as_row(stored)).settings
                    change = settings_change(old, channel.settings)
                    # only a change that reaches what the channel stored emits events
                    if change.blocked or change.minimise is not None:
                        before = self._snapshot(channel_id=channel.id)
            store_privacy.save_channel(self.using, channel)
            self._since(before)

    def channel(self, channel_id: str) -> Channel | None:
        with self._read():
            found = m.Channel.objects.using(self.using).filter(id=channel_id).values().first()
        return None if found is None else channel_from_row(as_row(found))

    def channels(self) -> Sequence[Channel]:
        with self._read():
            rows = list(m.Channel.objects.using(self.using).order_by("id").values())
        return [channel_from_row(as_row(r)) for r in rows]

    def remove_channel(self, channel_id: str) -> None:
        using = self.using
        changes = self._changes(channel_id)
        with self._write():
            dropped = store_delete.delete_assocs(using, channel_id, None, None, changes)
            if changes is not None:
                changes.finish(*dropped)
            for model in (m.Cursor, m.ChannelState, m.SkipRecord):
                model.objects.using(using).filter(channel_id=channel_id).delete()
            marker = channel_id + QUEUE_MARKER_SUFFIX
            m.Lease.objects.using(using).filter(channel_id__in=[channel_id, marker]).delete()
            gone: set[str] = set()
            store_delete.collect(using, channel_id, *dropped, gone_keys=gone)
            store_delete.forget_unstored_links(using, gone)
            m.Channel.objects.using(using).filter(id=channel_id).delete()
            self._record(changes.log.events if changes is not None else ())

    def channel_state(self, channel_id: str) -> ChannelState | None:
        with self._read():
            rows = m.ChannelState.objects.using(self.using).filter(channel_id=channel_id)
            found = rows.values().first()
        return None if found is None else state_from_row(as_row(found))

    def channel_states(self) -> dict[str, ChannelState]:
        """Every channel's state in one query (what a dispatcher reads)."""
        with self._read():
            rows = list(m.ChannelState.objects.using(self.using).values())
        return {str(row["channel_id"]): state_from_row(as_row(row)) for row in rows}

    def save_channel_state(self, state: ChannelState) -> None:
        require_aware(state.next_attempt, "next_attempt")
        require_aware(state.last_success, "last_success")
        row = state_row(state)
        tracked = self._outbox or self._on_events is not None
        with self._write():
            if tracked:
                rows = m.ChannelState.objects.using(self.using).filter(channel_id=state.channel_id)
                found = rows.values().first()
                previous = None if found is None else state_from_row(as_row(found))
                change = state_change(previous, state, self._clock())
                self._record([change] if change is not None else [])
            m.ChannelState.objects.using(self.using).bulk_create(
                [m.ChannelState(**row)],
                update_conflicts=True,
                unique_fields=["channel_id"],
                update_fields=[k for k in row if k != "channel_id"],
            )

    def acquire_lease(self, channel_id: str, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        leases = m.Lease.objects.using(self.using)
        with self._write():
            # one conditional update: take the row when expired or already ours
            taken = leases.filter(
                Q(holder=holder) | Q(expires_at__lte=now), channel_id=channel_id
            ).update(holder=holder, expires_at=now + ttl)
            if taken:
                return True
            try:
                with transaction.atomic(using=self.using):
                    leases.create(channel_id=channel_id, holder=holder, expires_at=now + ttl)
            except IntegrityError:
                return False  # held by someone else
            return True

    def held_leases(self, keys: Collection[str]) -> dict[str, Lease]:
        now = self._clock()
        found: dict[str, Lease] = {}
        leases = m.Lease.objects.using(self.using)
        for part in chunked(sorted(set(keys))):
            rows = leases.filter(channel_id__in=part, expires_at__gt=now)
            for key, holder, expires_at in rows.values_list("channel_id", "holder", "expires_at"):
                found[key] = Lease(holder, expires_at)
        return found

    def release_lease(self, channel_id: str, holder: str) -> None:
        with self._write():
            m.Lease.objects.using(self.using).filter(channel_id=channel_id, holder=holder).delete()

    # the write side

    def commit(self, batch: SyncBatch) -> None:
        validate_batch(batch)
        changes = self._changes(batch.channel_id, batch.scope_id)
        try:
            with self._write():
                store_write.commit_batch(self.using, batch, changes)
                self._record(changes.log.events if changes is not None else ())
        except StoreError as exc:
            # a value the database will not hold (a NUL, an over-long key):
            # the engine isolates the record and skips it with this reason
            if exc.__cause__ is not None and _refuses_value(exc.__cause__):
                raise InvalidInput(f"the database refused a value: {exc}") from exc
            raise
        except (KeyError, ValueError, UnicodeError) as exc:
            raise InvalidInput(f"unstorable value: {type(exc).__name__}: {exc!r}"[:300]) from exc

    def cursor(self, channel_id: str, scope_id: str) -> str | None:
        with self._read():
            rows = m.Cursor.objects.using(self.using).filter(
                channel_id=channel_id, scope_id=scope_id
            )
            found = rows.values_list("cursor", flat=True).first()
        return None if found is None else str(found)

    def scope_ids(self, channel_id: str) -> Sequence[str]:
        found: set[str] = set()
        with self._read():
            for model in (m.Cursor, m.MessageAssoc, m.EventAssoc):
                rows = model.objects.using(self.using).filter(channel_id=channel_id)
                found.update(rows.values_list("scope_id", flat=True).distinct())
        return sorted(found)

    def drop_scope(self, channel_id: str, scope_id: str) -> None:
        changes = self._changes(channel_id, scope_id)
        with self._write():
            dropped = store_delete.delete_assocs(self.using, channel_id, scope_id, None, changes)
            if changes is not None:
                changes.finish(*dropped)
            m.Cursor.objects.using(self.using).filter(
                channel_id=channel_id, scope_id=scope_id
            ).delete()
            store_delete.collect(self.using, channel_id, *dropped)
            self._record(changes.log.events if changes is not None else ())

    def known_ids(self, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
        with self._read():
            return store_read.known_ids(self.using, channel_id, scope_id, _storable(ids))

    def count_associations(
        self, channel_id: str, scope_id: str | None = None, *, kind: ChannelKind | None = None
    ) -> int:
        """Provider ids stored for the channel (or one of its scopes)."""
        models: list[type[m.MessageAssoc] | type[m.EventAssoc]] = []
        if kind is not ChannelKind.CALENDAR:
            models.append(m.MessageAssoc)
        if kind is not ChannelKind.MAIL:
            models.append(m.EventAssoc)
        total = 0
        with self._read():
            for model in models:
                rows = model.objects.using(self.using).filter(channel_id=channel_id)
                if scope_id is not None:
                    rows = rows.filter(scope_id=scope_id)
                total += rows.values("scope_id", "provider_id").distinct().count()
        return total

    def threads_by_message_ids(self, message_ids: Collection[str]) -> Mapping[str, str]:
        with self._read():
            return store_read.threads_by_message_ids(self.using, _storable(message_ids))

    def thread_links(self, channel_id: str, message_ids: Collection[str]) -> ThreadLinks:
        with self._read():
            return store_read.thread_links(self.using, channel_id, _storable(message_ids))

    def linked_addresses(self, target: Target) -> set[str]:
        with self._read():
            rows = m.AddressLink.objects.using(self.using).filter(
                kind=target.kind.value, target_id=target.id
            )
            return set(rows.values_list("key", flat=True))

    def stored_addresses(self, keys: Collection[str] | None = None) -> set[str]:
        parts: list[Sequence[str] | None] = (
            [None] if keys is None else list(chunked(sorted(set(_storable(keys)))))
        )
        found: set[str] = set()
        with self._read():
            for part in parts:
                for model in (m.Participant, m.Attendee):
                    rows = model.objects.using(self.using).exclude(key="")
                    if part is not None:
                        rows = rows.filter(key__in=part)
                    found.update(rows.values_list("key", flat=True).distinct())
        return found

    def relink(self, changes: Sequence[AddressLinks]) -> None:
        for change in changes:
            validate_links(change.key, [link.id for link in change.links])
        with self._write():
            store_write.replace_links(self.using, changes)

    def delete_matching(self, channel_id: str, entries: Collection[str]) -> int:
        with self._write():
            before = self._snapshot(channel_id=channel_id)
            removed = sum(store_delete.remove_matching(self.using, channel_id, entries))
            self._since(before)
            return removed

    # the read side (visibility applied here)

    def timeline(
        self, target: Target, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[ThreadSummary]:
        with self._read():
            return store_read.timeline(self.using, target, viewer, page)

    def thread(
        self, thread_id: str, viewer: Viewer, page: PageRequest | None = None
    ) -> ThreadView | None:
        with self._read():
            return store_read.thread(self.using, thread_id, viewer, page)

    def message_source(
        self, thread_id: str, message_id: str, viewer: Viewer
    ) -> MessageSource | None:
        """Where ``viewer`` may fetch the message's attachments from (``FULL`` only)."""
        with self._read():
            return store_read.message_source(self.using, thread_id, message_id, viewer)

    def events(
        self, target: Target, viewer: Viewer, window: Window, page: PageRequest = FIRST_PAGE
    ) -> Page[EventSummary]:
        require_aware(window.start, "window start")
        require_aware(window.end, "window end")
        with self._read():
            return store_read.event_page(self.using, target, viewer, window, page)

    def skips(
        self, channel_id: str, viewer: Viewer, message_id: str | None = None
    ) -> Sequence[Skip]:
        require_viewer(viewer)
        with self._read():
            return store_privacy.read_skips(self.using, channel_id, viewer, message_id)

    def skip_reasons(self, channel_id: str, ids: Collection[str]) -> dict[str, Reason]:
        """The skip reason of each of ``ids`` that a skip record holds, in one
        read per chunk (the engine's ``SkipReasonLookup``)."""
        found: dict[str, Reason] = {}
        with self._read():
            for part in chunked(sorted(set(_storable(ids)))):
                rows = m.SkipRecord.objects.using(self.using).filter(
                    channel_id=channel_id, provider_id__in=part
                )
                found.update(
                    (pid, Reason(reason))
                    for pid, reason in rows.values_list("provider_id", "reason")
                )
        return found

    # erasure

    def erase_address(self, address: str) -> ErasureReport:
        key = erasure_key(address)
        now = self._clock()
        with self._write():
            before = self._snapshot(key=key)
            report = store_privacy.erase(self.using, key, now)
            self._since(before)
            return report

    def erased(self, keys: Collection[str]) -> set[str]:
        normal = {k: address_key(k) for k in _storable(keys)}
        with self._read():
            found = store_write.erased_among(self.using, {n for n in normal.values() if n})
        return {k for k, n in normal.items() if n in found}

    def forget_erasure(self, address: str) -> bool:
        """Remove an address's tombstone (mail from or to it may be imported
        again); whether there was one. Not part of the ``Store`` port."""
        key = erasure_key(address)
        with self._write():
            deleted, _ = m.Erasure.objects.using(self.using).filter(key=key).delete()
            return bool(deleted)
