"""Committing a batch: records the store refuses are isolated, and what the
commit did to stored items is counted in the report."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from ..errors import InvalidInput
from ..ports import Store
from ..records import Reason, Skip, SyncBatch
from .report import SyncReport

__all__ = ["commit_counted", "commit_isolating", "record_ids"]


def record_ids(batch: SyncBatch) -> set[str]:
    """Provider ids a batch stores (a calendar object's events share one)."""
    ids = {r.message.provider_id for r in batch.messages}
    ids.update(r.event.provider_id for r in batch.events)
    return ids


def commit_counted(
    store: Store, batch: SyncBatch, report: SyncReport, held: Callable[[], int] | None = None
) -> None:
    """Commit ``batch`` and count it in ``report``: items stored anew
    (``imported``), written again (``updated``), removed (``deleted``, never
    an id that was not stored) and skipped. ``held`` counts the scope's
    items (both kinds); given for a sweeping batch, what the sweep removed
    besides is counted too."""
    touched = record_ids(batch) | set(batch.deleted)
    stored = store.known_ids(batch.channel_id, batch.scope_id, touched) if touched else set()
    before = held() if held is not None else -1
    written: set[str] = set()
    removed: set[str] = set()
    for committed in commit_isolating(store, batch):
        ids = record_ids(committed)
        written |= ids
        removed |= (set(committed.deleted) - ids) & stored
        for skip in committed.skipped:
            report.skipped[skip.reason] += 1
    new = written - stored
    added = store.known_ids(batch.channel_id, batch.scope_id, new) if new else set()
    report.imported += len(added)
    report.updated += len(written & stored)
    report.deleted += len(removed)
    if held is not None and before >= 0:
        report.deleted += max(0, before + len(added) - len(removed) - held())


def commit_isolating(store: Store, batch: SyncBatch) -> Iterator[SyncBatch]:
    """Commit a batch; if the store refuses it as invalid, bisect to find
    the records it refuses, record those as skipped with the store's
    reason and commit the rest. Any other failure (a lost connection, a
    crash) propagates: the whole batch is retried on the next step."""
    try:
        store.commit(batch)
        yield batch
        return
    except InvalidInput as exc:
        if not batch.messages and not batch.events:
            raise
        failure = exc
    records_m, records_e = batch.messages, batch.events
    if len(records_m) + len(records_e) == 1:
        bad_id = records_m[0].message.provider_id if records_m else records_e[0].event.provider_id
        skip = Skip(bad_id, Reason.ERROR, f"store refused it: {failure}"[:500])
        rest = attrs.evolve(
            batch,
            messages=(),
            events=(),
            skipped=(*batch.skipped, skip),
            deleted=(*batch.deleted, bad_id),
        )
        yield from commit_isolating(store, rest)
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
    yield from commit_isolating(store, first)
    yield from commit_isolating(store, second)
