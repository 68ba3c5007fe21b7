"""Bringing one scope up to date within a sync step.

A scope without a cursor gets a full pass (a snapshot first, then pages of
ids, each committed with the token that resumes it, and a sweep at the
end); then incremental passes from the provider's cursor. A mailbox-wide
scope whose folder selection changed re-judges the labels concerned
(``sync.labels``); a reconcile leaves skipped mail alone while its reason
holds (``sync.settled``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta

import attrs

from ..errors import CursorExpired, TransientError
from ..model import Channel, Folder, FolderSelection
from ..ports import CalendarProvider, MailProvider, Scope, Store
from ..records import SyncBatch
from .committing import commit_counted
from .cursor import ScopeCursor, remembered
from .fetching import Fetcher, Parts
from .labels import GAINED, LabelSource, recheck_plan, relabel_plan, relabelled
from .lease import Heartbeat, LeaseLost
from .report import Progress, SyncReport
from .settled import SettledSkips
from .sweep_guard import count, refuse_mass_deletion

__all__ = ["ScopeSync", "Step"]

log = logging.getLogger("commlink.sync")

Provider = MailProvider | CalendarProvider


@attrs.define
class Step:
    """What the scopes of one sync step of a channel share."""

    channel: Channel
    provider: Provider
    fetcher: Fetcher
    report: SyncReport
    folders: Mapping[str, Folder]
    #: the fingerprint earlier versions kept of the selected folders
    legacy_selection: str
    batches_left: int | None
    settled: SettledSkips
    #: makes a fetcher judging as a channel (another folder selection)
    make_fetcher: Callable[[Channel], Fetcher]
    #: called when a cursor expired (the folder list is read afresh next time)
    on_expired: Callable[[], None]
    heartbeat: Heartbeat | None = None
    judges: dict[FolderSelection, Fetcher] = attrs.field(factory=dict)

    @property
    def key(self) -> str:
        """The channel's judging key (``settled.judging_key``)."""
        return self.settled.key

    def judge(self, folders: FolderSelection | None) -> Fetcher:
        """The fetcher judging with ``folders`` (the channel's own selection
        when ``None``): a mailbox-wide scope is judged with the selection
        its cursor records until a relabel moves it on."""
        if folders is None or folders == self.channel.settings.folders:
            return self.fetcher
        found = self.judges.get(folders)
        if found is None:
            settings = attrs.evolve(self.channel.settings, folders=folders)
            channel = attrs.evolve(self.channel, settings=settings)
            found = self.judges[folders] = self.make_fetcher(channel)
        return found


@attrs.define
class ScopeSync:
    """Brings scopes up to date for a ``SyncEngine`` (its settings)."""

    store: Store
    batch_size: int
    max_sweep_share: float | None
    sweep_allowance: int
    holder: str
    lease_ttl: timedelta
    progress: Callable[[Progress], None] | None

    def sync(self, run: Step, scope: Scope) -> bool:
        """Bring one scope up to date; False when the batch budget ran out."""
        channel_id = run.channel.id
        saved = self.store.cursor(channel_id, scope.id)
        cursor = decoded = ScopeCursor.decode(saved)
        wide = scope.folder is None  # one scope for the mailbox: folders are labels
        if cursor is not None and wide:
            cursor = self._adopted(run, cursor)
        if cursor is not None and cursor.mode != "full" and cursor.judged not in ("", run.key):
            # skip records made from now on follow other settings than the older ones
            cursor = attrs.evolve(cursor, judged="")
            self._save_cursor(run, scope, cursor)
        while True:
            fresh = False  # a snapshot taken in this very step
            if cursor is None or cursor.mode == "full":
                before = cursor.provider if cursor else ""
                cursor = self._full_pass(run, scope, cursor)
                if cursor is None:
                    return False
                fresh = cursor.provider != before
            # a re-check of the left-out labels may come before the selection's change
            current = run.channel.settings.folders
            while wide and (cursor.mode == "labels" or cursor.folders != current):
                cursor = self._relabel(run, scope, cursor)
                if cursor is None:
                    return False
                if cursor.mode == "full":
                    break
            if cursor.mode == "full":
                continue
            try:
                # (the text the store holds is this cursor's only while it is the one read)
                return self._incremental(run, scope, cursor, saved if cursor is decoded else None)
            except CursorExpired as exc:
                if fresh:
                    raise TransientError(f"fresh cursor of {scope.id} expired at once") from exc
                log.info("cursor of %s/%s expired (%s): full resync", channel_id, scope.id, exc)
                run.on_expired()
                run.report.resyncs += 1
                cursor = cursor.restart()

    def _adopted(self, run: Step, cursor: ScopeCursor) -> ScopeCursor:
        """A mailbox-wide scope's cursor with the folder selection its items
        were judged under; a cursor of an earlier version knows only a
        fingerprint of the selected folders: taken as the current selection
        when it matches, else everything is judged again."""
        if cursor.folders is not None or cursor.mode == "labels":
            return cursor
        if cursor.selection and cursor.selection == run.legacy_selection:
            return attrs.evolve(cursor, folders=run.channel.settings.folders)
        return cursor.restart(refetch=True)

    def _full_pass(self, run: Step, scope: Scope, cursor: ScopeCursor | None) -> ScopeCursor | None:
        """Page through a full listing; returns the incremental cursor at the end,
        or ``None`` when the batch budget ran out first (the pass resumes later)."""
        channel_id = run.channel.id
        if cursor is None or not cursor.provider:
            generation = (cursor.generation if cursor else 0) + 1
            refetch = cursor.refetch if cursor else False
            snapshot = run.fetcher.source.snapshot(scope)
            held = self._count(run.channel, scope.id) if self.max_sweep_share is not None else -1
            folders = None
            if scope.folder is None:  # judged as before, so a later relabel knows what changed
                folders = cursor.folders if cursor is not None and not refetch else None
                if folders is None:
                    folders = run.channel.settings.folders
            cursor = ScopeCursor(
                "full",
                snapshot,
                None,
                generation,
                refetch=refetch,
                held=held,
                folders=folders,
                judged=cursor.judged if cursor else "",
                pass_key=run.key,
                markers=cursor.markers if cursor else (),
                reconciling=cursor is not None,
            )
            self._commit(run, scope, Parts(), cursor, generation, stage="snapshot")
        refetch = cursor.refetch
        fetcher = run.judge(cursor.folders)
        while True:
            if run.batches_left is not None and run.batches_left <= 0:
                return None
            if cursor.pass_key != run.key and (cursor.pass_key or cursor.judged):
                # the judging settings changed halfway: trust no skip record any more
                cursor = attrs.evolve(cursor, pass_key="", judged="")
            page = run.fetcher.source.list_page(scope, cursor.page)
            ids = list(dict.fromkeys(page.ids))
            known = set() if refetch else self.store.known_ids(channel_id, scope.id, ids)
            settled, trusting = self._settled(run, scope, cursor, ids, known)
            new_ids = [i for i in ids if i not in known and i not in settled]
            parts = fetcher.process(scope, new_ids, run.folders) if new_ids else Parts()
            parts = attrs.evolve(parts, seen=tuple(i for i in ids if i in known))
            run.report.unchanged += len(known) + len(settled)
            done = cursor.done + len(ids)
            markers = remembered(ids, cursor.markers) if cursor.done == 0 else cursor.markers
            if page.next is None:
                self._check_sweep(run, scope, cursor, done)
                final = self._after_full_pass(run, scope, cursor, markers)
                self._commit(
                    run, scope, parts, final, cursor.generation, stage="full", sweep=True, done=done
                )
                return final
            cursor = attrs.evolve(
                cursor, page=page.next, done=done, trusting=trusting, markers=markers
            )
            self._commit(run, scope, parts, cursor, cursor.generation, stage="full", done=done)

    def _after_full_pass(
        self, run: Step, scope: Scope, cursor: ScopeCursor, markers: tuple[str, ...]
    ) -> ScopeCursor:
        """Incremental from the pass's snapshot; for a mailbox-wide scope that
        reconciled, the labels its selection leaves out are re-judged first
        (see ``sync.labels``)."""
        final = ScopeCursor(
            "incremental",
            cursor.provider,
            None,
            cursor.generation,
            folders=cursor.folders,
            judged=cursor.pass_key,
            markers=markers,
        )
        source = run.fetcher.source
        if cursor.folders is None or not cursor.reconciling or cursor.refetch:
            return final
        if not isinstance(source, LabelSource):
            return final
        plan = recheck_plan(cursor.folders, list(run.fetcher.folders()))
        if not plan:
            return final
        return attrs.evolve(final, mode="labels", target=cursor.folders, pending=plan)

    def _settled(
        self, run: Step, scope: Scope, cursor: ScopeCursor, ids: Sequence[str], known: set[str]
    ) -> tuple[set[str], bool]:
        """The listed ids skipped before for a reason that still holds (see
        ``sync.settled``), and whether the listing reached ids the scope judged."""
        trusting = cursor.trusting or scope.folder is None
        if cursor.refetch:
            return set(), trusting
        return run.settled.trusted(
            ids, known, judged=cursor.judged, markers=set(cursor.markers), trusting=trusting
        )

    def _relabel(self, run: Step, scope: Scope, cursor: ScopeCursor) -> ScopeCursor | None:
        """Re-judge the labels whose selection changed (see ``sync.labels``);
        returns the incremental cursor, ``None`` when the batch budget ran
        out, or a full pass when the provider cannot list a label."""
        source = run.fetcher.source
        if cursor.mode != "labels":
            if not isinstance(source, LabelSource) or cursor.folders is None:
                return cursor.restart(refetch=True)
            target = run.channel.settings.folders
            # listed afresh: a label made since the cached list may be one that changed
            plan = relabel_plan(cursor.folders, target, list(run.fetcher.folders()))
            cursor = attrs.evolve(cursor, mode="labels", page=None, target=target, pending=plan)
            log.info("folder selection of %s changed: re-judging %s", run.channel.id, plan)
            if plan:
                self._save_cursor(run, scope, cursor)
        assert isinstance(source, LabelSource)
        assert cursor.target is not None
        fetcher = run.judge(cursor.target)
        while cursor.pending:
            if run.batches_left is not None and run.batches_left <= 0:
                return None
            entry = cursor.pending[0]
            page = source.label_page(scope, entry[1:], cursor.page)
            ids = list(dict.fromkeys(page.ids))
            known = self.store.known_ids(run.channel.id, scope.id, ids)
            if entry[0] == GAINED:  # left out for their folder, perhaps
                unknown = [i for i in ids if i not in known]
                settled = self._settled(run, scope, cursor, unknown, known)[0]
                wanted = [i for i in unknown if i not in settled]
            else:  # kept perhaps only for this label
                wanted = [i for i in ids if i in known]
            parts = fetcher.process(scope, wanted, run.folders) if wanted else Parts()
            run.report.unchanged += len(ids) - len(wanted)
            if page.next is not None:
                cursor = attrs.evolve(cursor, page=page.next)
            else:
                cursor = attrs.evolve(cursor, page=None, pending=cursor.pending[1:])
            then = cursor if cursor.pending else relabelled(cursor)
            self._commit(run, scope, parts, then, cursor.generation, stage="labels")
        return relabelled(cursor)

    def _incremental(
        self, run: Step, scope: Scope, cursor: ScopeCursor, saved: str | None = None
    ) -> bool:
        """Apply the scope's changes since ``cursor``. ``saved``: the cursor
        text the store holds; a pass that changes nothing and would store
        that same text commits nothing (a quiet pass writes no cursor)."""
        fetcher = run.judge(cursor.folders)
        while True:
            if run.batches_left is not None and run.batches_left <= 0:
                return False
            changes = run.fetcher.source.changes(scope, cursor.provider)
            upserted = list(dict.fromkeys(changes.upserted))
            deleted = tuple(dict.fromkeys(d for d in changes.deleted if d not in set(upserted)))
            chunks = list(_chunks(upserted, self.batch_size)) or [[]]
            for n, chunk in enumerate(chunks):
                parts = fetcher.process(scope, chunk, run.folders) if chunk else Parts()
                last = n == len(chunks) - 1
                if last:
                    parts = attrs.evolve(parts, deleted=parts.deleted + deleted)
                    cursor = attrs.evolve(
                        cursor,
                        provider=changes.cursor,
                        markers=remembered(upserted, cursor.markers),
                    )
                    if not upserted and not deleted and cursor.encode() == saved:
                        break  # nothing happened and the store holds this cursor
                    saved = None
                if last or parts.records_count:
                    self._commit(
                        run, scope, parts, cursor if last else None, cursor.generation,
                        stage="incremental",
                    )  # fmt: skip
            if changes.complete:
                return True

    def _save_cursor(self, run: Step, scope: Scope, cursor: ScopeCursor) -> None:
        batch = SyncBatch(
            run.channel.id, scope.id, cursor=cursor.encode(), generation=cursor.generation
        )
        self.store.commit(batch)

    # -- the sweep guard -----------------------------------------------------

    def _count(self, channel: Channel, scope_id: str | None = None) -> int:
        """Ids the channel (or one scope) holds; -1 when the store cannot count."""
        return count(self.store, channel, scope_id, channel.kind)

    def _held(self, channel: Channel, scope_id: str) -> int:
        """Items a scope holds, a mail channel's invitations included (what
        the report counts); -1 when the store cannot count."""
        return count(self.store, channel, scope_id)

    def _guard(self, channel: Channel, loss: int, what: str) -> None:
        share, allowance = self.max_sweep_share, self.sweep_allowance
        refuse_mass_deletion(self.store, channel, loss, what, share, allowance)

    def _check_sweep(self, run: Step, scope: Scope, cursor: ScopeCursor, listed: int) -> None:
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

    def _commit(
        self,
        run: Step,
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
        held = (lambda: self._held(run.channel, scope.id)) if sweep else None
        commit_counted(self.store, batch, run.report, held)
        run.report.batches += 1
        run.report.fetched += parts.fetched
        run.report.contacts_created += parts.created
        # a quiet change check is not work: a channel with more scopes than
        # the budget must still finish a quiet pass
        if run.batches_left is not None and (parts.records_count or stage in ("full", "labels")):
            run.batches_left -= 1
        lost = run.heartbeat is not None and run.heartbeat.lost
        if lost or not self.store.acquire_lease(run.channel.id, self.holder, self.lease_ttl):
            raise LeaseLost(run.channel.id)
        if self.progress is not None and stage != "snapshot":
            self.progress(Progress(run.channel.id, scope.id, stage, done, run.report.imported))


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
