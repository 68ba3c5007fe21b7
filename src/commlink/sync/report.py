"""What a sync run reports: counts by outcome and reason, timing, errors."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import attrs

from ..records import ChannelStatus, Reason

__all__ = ["Backoff", "Progress", "SyncReport"]


@attrs.define
class SyncReport:
    """The outcome of one ``SyncEngine.run`` for one channel."""

    channel_id: str
    status: ChannelStatus = ChannelStatus.ONGOING
    imported: int = 0
    deleted: int = 0
    unchanged: int = 0
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

    def summary(self) -> str:
        skipped = ", ".join(f"{r.value} {n}" for r, n in sorted(self.skipped.items(), key=str))
        return (
            f"{self.channel_id}: {self.status.value}, {self.imported} imported, "
            f"{self.deleted} deleted, {sum(self.skipped.values())} skipped"
            + (f" ({skipped})" if skipped else "")
            + f" in {self.duration:.2f}s"
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
        ceiling = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        seconds = random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        return timedelta(seconds=seconds)
