"""Which copy of a message a viewer may fetch attachments from.

The copy is the one the viewer is shown (``copies.choose``), and only when
shown in ``FULL``: a colleague allowed less gets nothing, and a copy in
another channel carrying a forged identical Message-ID is never used for a
viewer who is shown their own copy. Both reference stores call this.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Attachment, Visibility
from ..records import MessageSource, Viewer
from .copies import Holder, choose

__all__ = ["chosen_source"]


def chosen_source(
    viewer: Viewer,
    message_id: str,
    copies: Iterable[tuple[Holder, tuple[Attachment, ...]]],
    locations: Iterable[tuple[str, str, str]],
) -> MessageSource | None:
    """The source of ``message_id`` for ``viewer``: ``copies`` are every
    channel's copy (its holder and attachments), ``locations`` every
    ``(channel_id, scope_id, provider_id)`` holding the message."""
    held = {holder.channel_id: (holder, attachments) for holder, attachments in copies}
    found = choose(viewer, (holder for holder, _ in held.values()))
    if found is None or found[1] is not Visibility.FULL:
        return None
    channel_id = found[0].channel_id
    places = tuple(sorted((s, p) for c, s, p in locations if c == channel_id))
    if not places:
        return None
    return MessageSource(channel_id, message_id, places, held[channel_id][1])
