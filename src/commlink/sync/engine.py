"""The sync engine: one channel, one step, every batch committed atomically.

A step takes the channel's lease, lists its folders (or calendars), drops
the scopes no longer selected or listed, and has ``scope_sync.ScopeSync``
bring each scope up to date. A scope without a cursor gets a full pass: a
snapshot cursor first, then pages of ids, each page fetched, run through
the policy and committed together with the page token that resumes it.
When the listing ends, the pass sweeps what it did not see and the scope
turns incremental from the snapshot. Incremental steps ask the provider for
changes since the cursor; an expired cursor starts a new full pass that
reconciles with what is stored. The outcome is saved as the channel's state
and counted in a ``SyncReport``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ..credentials import redact_text
from ..errors import AuthError, ConfigError, RateLimited, SweepRefused
from ..model import Channel, ChannelKind, Folder
from ..ports import CalendarProvider, Directory, MailProvider, Store
from ..records import ChannelState, ChannelStatus, SyncBatch, SyncStage
from .aliases import reported_aliases, with_aliases
from .cursor import ScopeCursor, legacy_selection
from .fetching import CalendarFetcher, Fetcher, MailFetcher
from .folder_cache import FolderCache
from .lease import Heartbeat, LeaseLost
from .report import Backoff, Progress, SyncReport
from .scope_sync import ScopeSync, Step
from .settled import SettledSkips
from .sweep_guard import count, refuse_mass_deletion

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
            with Heartbeat(self.store, channel.id, self.holder, self.lease_ttl) as heartbeat:
                self._run_scopes(channel, provider, report, state, heartbeat)
        except LeaseLost:
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

        Skipped messages are fetched and judged again when the judging
        settings changed since they were skipped (a blocklist entry removed,
        an alias or organisation domain changed; see ``sync.settled``), so a
        plain resync brings back mail such a change no longer leaves out.
        ``refetch`` re-reads every message, stored ones included (use it when
        a change may leave out mail that is stored, or after visibility was
        raised).
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
        heartbeat: Heartbeat | None = None,
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
            held = max(count(self.store, channel, kind=channel.kind), 0)
            raise SweepRefused(
                f"the provider listed no {what} at all while {len(stored)} scope(s) of the"
                " channel are stored; nothing was deleted (a failed or unauthenticated"
                " listing is never taken for an empty account)",
                would_remove=held,
                held=held,
            )
        selected = [f for f in folders if channel.settings.folders.selects(f)]
        scopes = list(fetcher.source.scopes(selected))
        run = Step(
            channel,
            provider,
            fetcher,
            report,
            {f.id: f for f in folders},
            legacy_selection(selected),
            self.max_batches,
            SettledSkips(self.store, channel),
            lambda judging: self._fetcher(judging, provider),
            lambda: self._folders.forget(channel.id),
            heartbeat,
        )
        passes = ScopeSync(
            self.store,
            self.batch_size,
            self.max_sweep_share,
            self.sweep_allowance,
            self.holder,
            self.lease_ttl,
            self.progress,
        )
        wanted = {s.id for s in scopes}
        listed = {f.id for f in folders}
        # deselected scopes go at once (the user's choice); scopes whose folder
        # is gone from the listing go at the end of a complete step, guarded
        for deselected in sorted((stored - wanted) & listed):
            report.deleted += max(count(self.store, channel, deselected), 0)
            self.store.drop_scope(channel.id, deselected)
        vanished = sorted(stored - wanted - listed)
        if state.status is ChannelStatus.NOT_SYNCED:
            self._save_state(attrs.evolve(state, status=ChannelStatus.ONGOING))
        complete = True
        refused: list[SweepRefused] = []
        for scope in scopes:
            report.scopes += 1
            try:
                complete &= passes.sync(run, scope)
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

    def _drop_vanished(self, run: Step, vanished: Sequence[str]) -> None:
        """Drop the scopes whose folder the provider no longer lists (deleted
        or renamed), unless together they hold too much of the channel."""
        channel = run.channel
        loss = sum(max(count(self.store, channel, s, channel.kind), 0) for s in vanished)
        what = f"dropping {len(vanished)} scope(s) no longer listed ({', '.join(vanished)[:200]})"
        refuse_mass_deletion(
            self.store, channel, loss, what, self.max_sweep_share, self.sweep_allowance
        )
        for scope_id in vanished:
            held = count(self.store, channel, scope_id)
            self.store.drop_scope(channel.id, scope_id)
            run.report.deleted += max(held, 0)

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
