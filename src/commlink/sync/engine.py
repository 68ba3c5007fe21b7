"""The sync engine: one channel, one step, every batch committed atomically.

A step walks the channel's scopes (folders, calendars). A scope without a
cursor gets a full pass: a snapshot cursor first, then pages of ids, each
page fetched, run through the policy and committed together with the page
token that resumes it. When the listing ends, the pass sweeps what it did
not see and the scope turns incremental from the snapshot. Incremental
steps ask the provider for changes since the cursor; an expired cursor
starts a new full pass that reconciles with what is stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ..credentials import redact_text
from ..errors import (
    AuthError,
    CommlinkError,
    ConfigError,
    CursorExpired,
    InvalidInput,
    RateLimited,
    SweepRefused,
    TransientError,
)
from ..model import Channel, ChannelKind, Folder
from ..ports import AssociationCounter, CalendarProvider, Directory, MailProvider, Scope, Store
from ..records import ChannelState, ChannelStatus, Reason, Skip, SyncBatch, SyncStage
from .aliases import reported_aliases, with_aliases
from .cursor import ScopeCursor
from .fetching import CalendarFetcher, Fetcher, MailFetcher, Parts
from .folder_cache import FolderCache
from .report import Backoff, Progress, SyncReport

__all__ = ["MAX_SWEEP_SHARE", "SWEEP_ALLOWANCE", "SyncEngine"]

log = logging.getLogger("commlink.sync")

#: The default ``max_sweep_share``: a step may not delete more than half of
#: what a channel holds through a sweep or by dropping vanished scopes.
MAX_SWEEP_SHARE = 0.5
#: A sweep (or drop) of at most this many ids is never refused, so small
#: channels can lose most of their few items.
SWEEP_ALLOWANCE = 10

Provider = MailProvider | CalendarProvider


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _LeaseLost(CommlinkError):
    """Another runner took the channel over; this one stops quietly."""


class _Heartbeat:
    """Renews a channel's lease every third of its time-to-live while a step
    runs, so a short lease outlives slow batches and a dead holder (a crash,
    a killed process) frees the channel within one ``lease_ttl``."""

    def __init__(self, store: Store, channel_id: str, holder: str, ttl: timedelta) -> None:
        self._store, self._channel_id, self._holder, self._ttl = store, channel_id, holder, ttl
        self._every = max(ttl.total_seconds() / 3, 0.01)
        self._done = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{channel_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self._every):
            try:
                if not self._store.acquire_lease(self._channel_id, self._holder, self._ttl):
                    self.lost = True
                    return
            except Exception:  # a store hiccup: the next beat tries again
                log.warning("could not renew a lease", exc_info=True)


@attrs.define
class _Run:
    channel: Channel
    fetcher: Fetcher
    report: SyncReport
    folders: Mapping[str, Folder]
    selection: str
    batches_left: int | None
    heartbeat: _Heartbeat | None = None


class SyncEngine:
    """Runs sync steps for channels against a store and a CRM directory.

    ``batch_size`` ids are fetched and committed together; ``max_batches``
    bounds one step so a runner can interleave channels during long imports
    (``None``: run until caught up). ``progress`` receives a ``Progress``
    after every committed batch. ``folder_ttl`` lists a channel's folders at
    most that often (a quiet pass then costs only the change checks); a
    failure or an expired cursor lists them afresh. Engines made per task
    share a ``folder_cache`` (one per process) to keep the lists between tasks.
    A provider that offers ``aliases()`` (``ports.AliasSource``) is asked for
    the owner's aliases whenever the folders are listed; they are kept in the
    channel's state (``ChannelState.aliases``) and judge mail together with
    the configured ``ChannelSettings.aliases``.

    A step holds the channel's lease (``lease_ttl``, one minute by default),
    renewed in the background while it runs: a runner that dies frees the
    channel within ``lease_ttl``.

    No silent mass deletion: a provider that lists no folders or calendars
    at all while the channel holds some, a full pass whose sweep would
    remove more than ``max_sweep_share`` of the ids the channel holds, or
    folders gone from the listing that hold more than that share, stop the
    step with ``SweepRefused`` (recorded as the channel's ``last_error``,
    counted as a failure) and delete nothing. Removing at most
    ``sweep_allowance`` ids is always allowed. To accept a mass deletion,
    run one step with ``max_sweep_share=None``, which turns the guard off.
    The share needs a store that counts (``ports.AssociationCounter``, as
    both built-in stores do).
    """

    def __init__(
        self,
        store: Store,
        directory: Directory,
        *,
        batch_size: int = 500,
        max_batches: int | None = None,
        max_failures: int = 5,
        lease_ttl: timedelta = timedelta(minutes=1),
        backoff: Backoff | None = None,
        progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        holder: str | None = None,
        folder_ttl: timedelta | None = None,
        folder_cache: FolderCache | None = None,
        max_sweep_share: float | None = MAX_SWEEP_SHARE,
        sweep_allowance: int = SWEEP_ALLOWANCE,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("must be positive", field="batch_size")
        if max_sweep_share is not None and not 0 <= max_sweep_share <= 1:
            raise ConfigError("must be between 0 and 1, or None", field="max_sweep_share")
        if sweep_allowance < 0:
            raise ConfigError("must not be negative", field="sweep_allowance")
        self.max_sweep_share = max_sweep_share
        self.sweep_allowance = sweep_allowance
        self.store = store
        self.directory = directory
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.max_failures = max_failures
        self.lease_ttl = lease_ttl
        self.backoff = backoff or Backoff()
        self.progress = progress
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.folder_ttl = folder_ttl
        self._folders = folder_cache if folder_cache is not None else FolderCache()

    # -- public entry points -------------------------------------------------

    def run(self, channel: Channel, provider: Provider) -> SyncReport:
        """One sync step for ``channel``; never raises for provider trouble.

        The outcome (status, failures, next attempt) is saved as the
        channel's state and returned in the report.
        """
        started = time.monotonic()
        report = SyncReport(channel.id)
        if not self.store.acquire_lease(channel.id, self.holder, self.lease_ttl):
            report.leased = False
            report.busy_until = self.clock() + self.lease_ttl
            report.status = self._state(channel.id).status
            return report
        try:
            self.store.save_channel(channel)
            state = self._state(channel.id)
            with _Heartbeat(self.store, channel.id, self.holder, self.lease_ttl) as heartbeat:
                self._run_scopes(channel, provider, report, state, heartbeat)
        except _LeaseLost:
            report.errors.append("lease lost to another runner")
        except AuthError as exc:
            self._folders.forget(channel.id)
            self._fail(channel.id, report, exc, auth=True)
        except Exception as exc:  # provider, store or bug: keep the reason, retry later
            log.warning("sync of %s failed: %s", channel.id, _described(exc), exc_info=True)
            self._folders.forget(channel.id)  # a vanished folder, perhaps
            self._fail(channel.id, report, exc, auth=False)
        finally:
            self.store.release_lease(channel.id, self.holder)
            report.duration = time.monotonic() - started
        return report

    def connect_failed(self, channel: Channel, exc: Exception) -> SyncReport:
        """Record that no provider could be built for ``channel`` (the host's
        factory raised): ``AuthError`` makes it ``FAILED_AUTH``, anything else
        counts as a failed step with back-off. Never raises."""
        report = SyncReport(channel.id)
        try:
            self.store.save_channel(channel)
        except Exception:
            log.warning("could not save channel %s", channel.id, exc_info=True)
        self._fail(channel.id, report, exc, auth=isinstance(exc, AuthError))
        return report

    def request_resync(self, channel_id: str, *, refetch: bool = False) -> None:
        """Make the next step of a channel a full reconciling pass.

        ``refetch`` re-reads messages already stored (use it after a policy
        change such as a blocklist entry removed or visibility raised).
        """
        for scope_id in self.store.scope_ids(channel_id):
            current = ScopeCursor.decode(self.store.cursor(channel_id, scope_id))
            marker = (current or ScopeCursor("full", generation=0)).restart(refetch=refetch)
            self.store.commit(SyncBatch(channel_id, scope_id, cursor=marker.encode()))

    # -- the step ------------------------------------------------------------

    def _run_scopes(
        self,
        channel: Channel,
        provider: Provider,
        report: SyncReport,
        state: ChannelState,
        heartbeat: _Heartbeat | None = None,
    ) -> None:
        fetcher = self._fetcher(channel, provider)
        folders, listed_now = self._folder_list(channel.id, fetcher)
        # the owner's aliases are refreshed with the folders, else the last known
        found = reported_aliases(provider, channel, state.aliases) if listed_now else state.aliases
        if found != state.aliases:
            state = attrs.evolve(state, aliases=found)
            self._save_state(state)
        judged = with_aliases(channel, state.aliases)
        if judged is not channel:
            channel, fetcher = judged, self._fetcher(judged, provider)
        stored = set(self.store.scope_ids(channel.id))
        if not folders and stored and self.max_sweep_share is not None:
            what = "folders" if channel.kind is ChannelKind.MAIL else "calendars"
            held = max(self._count(channel), 0)
            raise SweepRefused(
                f"the provider listed no {what} at all while {len(stored)} scope(s) of the"
                " channel are stored; nothing was deleted (a failed or unauthenticated"
                " listing is never taken for an empty account)",
                would_remove=held,
                held=held,
            )
        selected = [f for f in folders if channel.settings.folders.selects(f)]
        scopes = list(fetcher.source.scopes(selected))
        run = _Run(
            channel,
            fetcher,
            report,
            {f.id: f for f in folders},
            _fingerprint(selected),
            self.max_batches,
            heartbeat,
        )
        wanted = {s.id for s in scopes}
        listed = {f.id for f in folders}
        # deselected scopes go at once (the user's choice); scopes whose folder
        # is gone from the listing go at the end of a complete step, guarded
        for deselected in sorted((stored - wanted) & listed):
            report.deleted += max(self._count(channel, deselected), 0)
            self.store.drop_scope(channel.id, deselected)
        vanished = sorted(stored - wanted - listed)
        if state.status is ChannelStatus.NOT_SYNCED:
            self._save_state(attrs.evolve(state, status=ChannelStatus.ONGOING))
        complete = True
        refused: list[SweepRefused] = []
        for scope in scopes:
            report.scopes += 1
            try:
                complete &= self._sync_scope(run, scope)
            except SweepRefused as exc:
                log.warning("sync of %s/%s: %s", channel.id, scope.id, exc)
                refused.append(exc)
                complete = False
        if refused:
            raise refused[0]
        if complete and vanished:
            self._drop_vanished(run, vanished)
        report.complete = complete
        report.status = ChannelStatus.ACTIVE if complete else ChannelStatus.ONGOING
        self._save_state(
            ChannelState(
                channel.id,
                status=report.status,
                stage=SyncStage.INCREMENTAL if complete else SyncStage.FULL_IMPORT,
                failures=0,
                last_error="",
                next_attempt=None,
                last_success=self.clock(),
                aliases=state.aliases,
            )
        )

    def _sync_scope(self, run: _Run, scope: Scope) -> bool:
        """Bring one scope up to date; False when the batch budget ran out."""
        channel_id = run.channel.id
        cursor = ScopeCursor.decode(self.store.cursor(channel_id, scope.id))
        selection = run.selection if scope.folder is None else ""
        if cursor is not None and cursor.mode == "incremental" and cursor.selection != selection:
            # a mailbox-wide scope whose folder selection changed: re-judge everything
            cursor = attrs.evolve(cursor.restart(refetch=True), selection=selection)
        while True:
            fresh = False  # a snapshot taken in this very step
            if cursor is None or cursor.mode == "full":
                before = cursor.provider if cursor else ""
                cursor = self._full_pass(run, scope, cursor, selection)
                if cursor is None:
                    return False
                fresh = cursor.provider != before
            try:
                return self._incremental(run, scope, cursor)
            except CursorExpired as exc:
                if fresh:
                    raise TransientError(f"fresh cursor of {scope.id} expired at once") from exc
                log.info("cursor of %s/%s expired (%s): full resync", channel_id, scope.id, exc)
                self._folders.forget(channel_id)
                run.report.resyncs += 1
                cursor = cursor.restart()

    def _full_pass(
        self, run: _Run, scope: Scope, cursor: ScopeCursor | None, selection: str
    ) -> ScopeCursor | None:
        """Page through a full listing; returns the incremental cursor at the end,
        or ``None`` when the batch budget ran out first (the pass resumes later)."""
        channel_id = run.channel.id
        if cursor is None or not cursor.provider:
            generation = (cursor.generation if cursor else 0) + 1
            refetch = cursor.refetch if cursor else False
            snapshot = run.fetcher.source.snapshot(scope)
            held = self._count(run.channel, scope.id) if self.max_sweep_share is not None else -1
            cursor = ScopeCursor(
                "full", snapshot, None, generation, selection, 0, refetch, held=held
            )
            self._commit(run, scope, Parts(), cursor, generation, stage="snapshot")
        refetch = cursor.refetch
        while True:
            if run.batches_left is not None and run.batches_left <= 0:
                return None
            page = run.fetcher.source.list_page(scope, cursor.page)
            ids = list(dict.fromkeys(page.ids))
            known = set() if refetch else self.store.known_ids(channel_id, scope.id, ids)
            new_ids = [i for i in ids if i not in known]
            parts = run.fetcher.process(scope, new_ids, run.folders) if new_ids else Parts()
            parts = attrs.evolve(parts, seen=tuple(i for i in ids if i in known))
            run.report.unchanged += len(known)
            done = cursor.done + len(ids)
            if page.next is None:
                self._check_sweep(run, scope, cursor, done)
                final = ScopeCursor(
                    "incremental", cursor.provider, None, cursor.generation, selection
                )
                before = self._count(run.channel, scope.id)
                if before >= 0 and refetch:
                    known = self.store.known_ids(channel_id, scope.id, ids)
                fresh = [i for i in ids if i not in known]
                self._commit(
                    run, scope, parts, final, cursor.generation, stage="full", sweep=True, done=done
                )
                if before >= 0:  # what the sweep removed, for the report
                    added = self.store.known_ids(channel_id, scope.id, fresh) if fresh else ()
                    after = self._count(run.channel, scope.id)
                    run.report.deleted += max(0, before + len(added) - after)
                return final
            cursor = attrs.evolve(cursor, page=page.next, done=done)
            self._commit(run, scope, parts, cursor, cursor.generation, stage="full", done=done)

    def _incremental(self, run: _Run, scope: Scope, cursor: ScopeCursor) -> bool:
        while True:
            if run.batches_left is not None and run.batches_left <= 0:
                return False
            changes = run.fetcher.source.changes(scope, cursor.provider)
            upserted = list(dict.fromkeys(changes.upserted))
            deleted = tuple(dict.fromkeys(d for d in changes.deleted if d not in set(upserted)))
            chunks = list(_chunks(upserted, self.batch_size)) or [[]]
            for n, chunk in enumerate(chunks):
                parts = run.fetcher.process(scope, chunk, run.folders) if chunk else Parts()
                last = n == len(chunks) - 1
                if last:
                    parts = attrs.evolve(parts, deleted=parts.deleted + deleted)
                    cursor = attrs.evolve(cursor, provider=changes.cursor)
                if last or parts.records_count:
                    self._commit(
                        run, scope, parts, cursor if last else None, cursor.generation,
                        stage="incremental",
                    )  # fmt: skip
            if changes.complete:
                return True

    # -- the sweep guard -----------------------------------------------------

    def _count(self, channel: Channel, scope_id: str | None = None) -> int:
        """Ids the channel (or one scope) holds; -1 when the store cannot count."""
        if not isinstance(self.store, AssociationCounter):
            return -1
        return self.store.count_associations(channel.id, scope_id, kind=channel.kind)

    def _guard(self, channel: Channel, loss: int, what: str) -> None:
        """``SweepRefused`` when removing ``loss`` ids is more than the channel
        may lose in one step."""
        share = self.max_sweep_share
        if share is None or loss <= self.sweep_allowance:
            return
        held = self._count(channel)
        if held < 0 or loss <= share * held:
            return
        raise SweepRefused(
            f"{what} would remove {loss} of the {held} ids channel {channel.id!r} holds,"
            f" more than max_sweep_share={share:g}; nothing was deleted (to accept it,"
            " run one step with SyncEngine(max_sweep_share=None))",
            would_remove=loss,
            held=held,
        )

    def _check_sweep(self, run: _Run, scope: Scope, cursor: ScopeCursor, listed: int) -> None:
        """Before the sweep that ends a full pass: the ids the scope held when
        the pass began, less those the listing found, may not be too many."""
        if self.max_sweep_share is None:
            return
        held = cursor.held if cursor.held >= 0 else self._count(run.channel, scope.id)
        if held < 0:
            return
        self._guard(
            run.channel,
            held - listed,
            f"the sweep of {scope.id!r} (the listing found {listed} ids where {held} were stored)",
        )

    def _drop_vanished(self, run: _Run, vanished: Sequence[str]) -> None:
        """Drop the scopes whose folder the provider no longer lists (deleted
        or renamed), unless together they hold too much of the channel."""
        counts = {scope_id: self._count(run.channel, scope_id) for scope_id in vanished}
        self._guard(
            run.channel,
            sum(max(n, 0) for n in counts.values()),
            f"dropping {len(vanished)} scope(s) no longer listed ({', '.join(vanished)[:200]})",
        )
        for scope_id in vanished:
            self.store.drop_scope(run.channel.id, scope_id)
            run.report.deleted += max(counts[scope_id], 0)

    # -- committing ----------------------------------------------------------

    def _commit(
        self,
        run: _Run,
        scope: Scope,
        parts: Parts,
        cursor: ScopeCursor | None,
        generation: int,
        *,
        stage: str,
        sweep: bool = False,
        done: int = 0,
    ) -> None:
        if parts.seen or parts.deleted:
            companions = run.fetcher.companions
            parts = attrs.evolve(
                parts,
                seen=(*parts.seen, *companions(parts.seen)),
                deleted=(*parts.deleted, *companions(parts.deleted)),
            )
        batch = parts.batch(run.channel.id, scope.id, cursor, generation, sweep)
        for committed in self._commit_isolating(batch):
            run.report.imported += len(committed.messages) + len(committed.events)
            skipped_ids = {s.provider_id for s in committed.skipped}
            run.report.deleted += len(set(committed.deleted) - skipped_ids)
            for skip in committed.skipped:
                run.report.skipped[skip.reason] += 1
        run.report.batches += 1
        run.report.fetched += parts.fetched
        run.report.contacts_created += parts.created
        # a quiet change check is not work: a channel with more scopes than
        # the budget must still finish a quiet pass
        if run.batches_left is not None and (parts.records_count or stage == "full"):
            run.batches_left -= 1
        lost = run.heartbeat is not None and run.heartbeat.lost
        if lost or not self.store.acquire_lease(run.channel.id, self.holder, self.lease_ttl):
            raise _LeaseLost(run.channel.id)
        if self.progress is not None and stage != "snapshot":
            self.progress(Progress(run.channel.id, scope.id, stage, done, run.report.imported))

    def _commit_isolating(self, batch: SyncBatch) -> Iterator[SyncBatch]:
        """Commit a batch; if the store refuses it as invalid, bisect to find
        the records it refuses, record those as skipped with the store's
        reason and commit the rest. Any other failure (a lost connection, a
        crash) propagates: the whole batch is retried on the next step."""
        try:
            self.store.commit(batch)
            yield batch
            return
        except InvalidInput as exc:
            if not batch.messages and not batch.events:
                raise
            failure = exc
        records_m, records_e = batch.messages, batch.events
        if len(records_m) + len(records_e) == 1:
            bad_id = (
                records_m[0].message.provider_id if records_m else records_e[0].event.provider_id
            )
            skip = Skip(bad_id, Reason.ERROR, f"store refused it: {failure}"[:500])
            rest = attrs.evolve(
                batch,
                messages=(),
                events=(),
                skipped=(*batch.skipped, skip),
                deleted=(*batch.deleted, bad_id),
            )
            yield from self._commit_isolating(rest)
            return
        half_m, half_e = len(records_m) // 2, len(records_e) // 2
        first = SyncBatch(
            batch.channel_id,
            batch.scope_id,
            messages=records_m[:half_m],
            events=records_e[:half_e],
            links=batch.links,
            generation=batch.generation,
        )
        second = attrs.evolve(batch, messages=records_m[half_m:], events=records_e[half_e:])
        yield from self._commit_isolating(first)
        yield from self._commit_isolating(second)

    # -- state ---------------------------------------------------------------

    def _folder_list(self, channel_id: str, fetcher: Fetcher) -> tuple[list[Folder], bool]:
        """The channel's folders, listed at most once per ``folder_ttl``, and
        whether they were listed just now (not taken from the cache)."""
        if self.folder_ttl is None:
            return list(fetcher.folders()), True
        cached = self._folders.get(channel_id, self.folder_ttl)
        if cached is not None:
            return cached, False
        folders = list(fetcher.folders())
        self._folders.put(channel_id, folders)
        return folders, True

    def _fetcher(self, channel: Channel, provider: Provider) -> Fetcher:
        if channel.kind is ChannelKind.MAIL:
            assert isinstance(provider, MailProvider)
            return MailFetcher(channel, provider, self.store, self.directory)
        assert isinstance(provider, CalendarProvider)
        return CalendarFetcher(channel, provider, self.store, self.directory)

    def _state(self, channel_id: str) -> ChannelState:
        return self.store.channel_state(channel_id) or ChannelState(channel_id)

    def _save_state(self, state: ChannelState) -> None:
        self.store.save_channel_state(state)

    def _fail(self, channel_id: str, report: SyncReport, exc: Exception, *, auth: bool) -> None:
        report.errors.append(_described(exc))
        try:
            state = self._state(channel_id)
            if auth:
                status, failures, next_attempt = ChannelStatus.FAILED_AUTH, state.failures, None
            elif isinstance(exc, RateLimited):
                # the provider's pace, not a fault: it never makes a channel FAILED
                status, failures = ChannelStatus.THROTTLED, state.failures
                next_attempt = self.clock() + self.backoff.delay(1, exc.retry_after)
            else:
                failures = state.failures + 1
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                status = ChannelStatus.FAILED if failures >= self.max_failures else state.status
                if status is ChannelStatus.NOT_SYNCED:
                    status = ChannelStatus.ONGOING
                next_attempt = self.clock() + self.backoff.delay(failures, retry_after)
            report.status = status
            self._save_state(
                attrs.evolve(
                    state,
                    status=status,
                    failures=failures,
                    last_error=_described(exc)[:1000],
                    next_attempt=next_attempt,
                )
            )
        except Exception:  # the store itself is down: the report still says why
            log.warning("could not save the state of %s", channel_id, exc_info=True)


def _described(exc: BaseException) -> str:
    """``Type: message`` of an error, credentials masked (a third-party
    library's message may quote a URL with a password or a header)."""
    return redact_text(f"{type(exc).__name__}: {exc}")


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _fingerprint(selected: Sequence[Folder]) -> str:
    text = "|".join(sorted(f.id for f in selected))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
