"""No silent mass deletion: counting what a channel holds, and refusing a
step that would remove too much of it (``SweepRefused``)."""

from __future__ import annotations

from ..errors import SweepRefused
from ..model import Channel, ChannelKind
from ..ports import AssociationCounter, Store

__all__ = ["count", "refuse_mass_deletion"]


def count(
    store: Store, channel: Channel, scope_id: str | None = None, kind: ChannelKind | None = None
) -> int:
    """Ids the channel (or one scope) holds of ``kind`` (both kinds when
    ``None``); -1 when the store cannot count."""
    if not isinstance(store, AssociationCounter):
        return -1
    return store.count_associations(channel.id, scope_id, kind=kind)


def refuse_mass_deletion(
    store: Store, channel: Channel, loss: int, what: str, share: float | None, allowance: int
) -> None:
    """``SweepRefused`` when removing ``loss`` ids is more than the channel
    may lose in one step: over ``allowance`` and over ``share`` of it."""
    if share is None or loss <= allowance:
        return
    held = count(store, channel, kind=channel.kind)
    if held < 0 or loss <= share * held:
        return
    raise SweepRefused(
        f"{what} would remove {loss} of the {held} ids channel {channel.id!r} holds,"
        f" more than max_sweep_share={share:g}; nothing was deleted (to accept it,"
        " run one step with SyncEngine(max_sweep_share=None))",
        would_remove=loss,
        held=held,
    )
