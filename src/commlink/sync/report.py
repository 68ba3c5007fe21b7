"""What a sync run reports: counts by outcome and reason, timing, errors."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import datetime, timedelta

import attrs

from ..errors import MAX_RETRY_AFTER
from ..records import ChannelStatus, Reason

# jitter from a generator of its own: the process-wide `random` state is the
# host's (and a test framework's), never to be disturbed from background threads
_JITTER = random.SystemRandom()

__all__ = ["Backoff", "Progress", "SyncReport"]


@attrs.define
class SyncReport:
    """The outcome of one ``SyncEngine.run`` for one channel.

    The counts are of stored items (a message, or a calendar object with its
    overrides, in one folder or calendar), so they add up: with a store that
    counts (``ports.AssociationCounter``), what a channel holds after a run
    less what it held before is ``imported - deleted``.

    ``imported``: items stored that were not before. ``updated``: stored
    items written again (a changed event, a relabelled message, a re-judged
    one that stays). ``deleted``: stored items removed, for whatever reason
    (deleted at the source, removed by a sweep, a folder deselected or gone,
    a re-judged message now left out); never ids that were not stored, such
    as a skipped message deleted at the source or an event already
    cancelled when first seen. ``skipped``: the policy's verdicts of this
    run that left an item out, by reason. ``unchanged``: ids a listing found
    that needed no fetch (stored already, or skipped before for a reason
    that still holds). ``fetched``: items the provider returned.
    """

    channel_id: str
    status: ChannelStatus = ChannelStatus.ONGOING
    imported: int = 0
    deleted: int = 0
    unchanged: int = 0
    updated: int = 0
    skipped: Counter[Reason] = attrs.field(factory=Counter)
    batches: int = 0
    fetched: int = 0
    scopes: int = 0
    resyncs: int = 0
    contacts_created: int = 0
    duration: float = 0.0
    errors: list[str] = attrs.field(factory=list)
    complete: bool = False
    leased: bool = True
    #: When the run found the channel busy: the latest time another runner's
    #: lease can last without being renewed (it is free by then if that
    #: runner died).
    busy_until: datetime | None = None

    def summary(self) -> str:
        """One line: status and every count, e.g. ``ch: active, 3 imported,
        0 updated, 1 deleted, 2 skipped (group 2), 40 unchanged in 0.52s``."""
        if not self.leased:
            until = f"; free by {self.busy_until:%Y-%m-%d %H:%M:%S} UTC if that runner died"
            return f"{self.channel_id}: busy, another runner is syncing it" + (
                until if self.busy_until is not None else ""
            )
        skipped = ", ".join(f"{r.value} {n}" for r, n in sorted(self.skipped.items(), key=str))
        return (
            f"{self.channel_id}: {self.status.value}, {self.imported} imported, "
            f"{self.updated} updated, {self.deleted} deleted, "
            f"{sum(self.skipped.values())} skipped"
            + (f" ({skipped})" if skipped else "")
            + f", {self.unchanged} unchanged in {self.duration:.2f}s"
        )


@attrs.frozen(slots=True)
class Progress:
    """Emitted after each committed batch of a long import."""

    channel_id: str
    scope_id: str
    stage: str
    done: int
    imported: int


@attrs.frozen(slots=True)
class Backoff:
    """Exponential back-off with full jitter, capped; honours Retry-After."""

    base: float = 30.0
    cap: float = 3600.0
    jitter: bool = True

    def delay(self, failures: int, retry_after: float | None = None) -> timedelta:
        """The wait before the next attempt; a provider's ``retry_after`` is
        honoured up to ``MAX_RETRY_AFTER`` (one day)."""
        ceiling = min(self.cap, self.base * (2 ** min(max(0, failures - 1), 64)))
        seconds = _JITTER.uniform(ceiling / 2, ceiling) if self.jitter else ceiling
        if retry_after is not None and math.isfinite(retry_after):
            seconds = max(seconds, min(retry_after, MAX_RETRY_AFTER))
        elif retry_after is not None:
            seconds = MAX_RETRY_AFTER
        return timedelta(seconds=seconds)
