"""Skip records: what is kept to explain a left-out message, and who sees it.

A skip record answers "why is this email missing?". Mail the policy kept
out of the CRM must not be kept in it all the same, so a skip for mail left
out as internal, blocked or erased (``PRIVATE_REASONS``) keeps only its
provider id, reason, date, a generic detail and a digest of its Message-ID
(enough to look it up by Message-ID, not to read it back): no subject, no
sender, no matching rule. The channel's owner may opt in to keeping the
details of internal and blocked mail (``ChannelSettings.skip_details``);
erased mail never keeps them.

Who sees what (``visible_skips``): the channel's owner sees the records as
kept; any other CRM user sees, for any channel, only the reason, the date
and the ids. Every channel is visible at ``METADATA`` at least, which shows
more than that (participants and times of imported mail), so a colleague
learns that something was left out and why, never what it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

import attrs

from ..model import Channel, ChannelSettings, Event, Message
from ..records import Reason, Skip, Viewer

__all__ = [
    "DIGEST_PREFIX",
    "PRIVATE_REASONS",
    "erased_skip",
    "involves",
    "keeps_details",
    "message_id_digest",
    "minimise_skip",
    "require_viewer",
    "visible_skips",
]

#: Reasons whose skip records keep no subject and no sender by default.
PRIVATE_REASONS = frozenset({Reason.INTERNAL, Reason.BLOCKED, Reason.ERASED})

#: What a kept Message-ID digest starts with (a Message-ID has an ``@``).
DIGEST_PREFIX = "sha256:"

_GENERIC = {
    Reason.INTERNAL: "every participant is inside the organisation",
    Reason.BLOCKED: "a participant matches the blocklist",
    Reason.ERASED: "a participant's address was erased",
}


def message_id_digest(message_id: str) -> str:
    """The form a private skip keeps its Message-ID in ('' stays '')."""
    if not message_id or message_id.startswith(DIGEST_PREFIX):
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return DIGEST_PREFIX + digest


def keeps_details(reason: Reason, settings: ChannelSettings) -> bool:
    """Whether a skip for ``reason`` may keep its subject, sender and detail."""
    if reason is Reason.ERASED:
        return False
    return reason not in PRIVATE_REASONS or settings.skip_details


def minimise_skip(skip: Skip, settings: ChannelSettings) -> Skip:
    """What is kept of a skip record for a channel with these settings."""
    return skip if keeps_details(skip.reason, settings) else _without_details(skip)


def _without_details(skip: Skip) -> Skip:
    if skip.reason not in PRIVATE_REASONS:
        return skip
    kept = Skip(
        provider_id=skip.provider_id,
        reason=skip.reason,
        detail=_GENERIC[skip.reason],
        message_id=message_id_digest(skip.message_id),
        date=skip.date,
    )
    return skip if kept == skip else kept


def involves(item: Message | Event, keys: Collection[str]) -> bool:
    """Whether one of these address keys takes part in a message (any role)
    or an event (organiser or attendee)."""
    return bool(keys) and any(a.key in keys for a in item.addresses() if a.key)


def erased_skip(item: Message | Event) -> Skip:
    """The skip record of a message or event left out because an address in
    it was erased: provider id, reason, date and Message-ID (or UID) only
    (``minimise_skip`` keeps the last as a digest)."""
    if isinstance(item, Message):
        return Skip(item.provider_id, Reason.ERASED, message_id=item.message_id, date=item.date)
    return Skip(item.provider_id, Reason.ERASED, message_id=item.uid, date=item.start)


def require_viewer(viewer: object) -> Viewer:
    """``viewer`` when it is a ``Viewer``; ``TypeError`` otherwise (reads
    that apply visibility need to know who reads)."""
    if not isinstance(viewer, Viewer):
        raise TypeError(f"a Viewer is required, got {type(viewer).__name__}")
    return viewer


def visible_skips(
    viewer: Viewer, channel: Channel | None, kept: Iterable[Skip], message_id: str | None = None
) -> list[Skip]:
    """The skip records of ``channel`` (those kept for it) as ``viewer`` may
    see them, by provider id; only those of one Message-ID when given.

    Records are minimised for the channel's current settings first (an
    owner who turned ``skip_details`` off never sees details again); other
    users see every record as if the owner had not opted in. A Message-ID
    kept as a digest is shown only to a caller asking for it by that
    Message-ID. ``None`` for ``channel`` (unknown) shows nothing.
    """
    require_viewer(viewer)
    if channel is None:
        return []
    owner = viewer.user_id == channel.user_id
    digest = message_id_digest(message_id) if message_id is not None else None
    found: list[Skip] = []
    for stored in kept:
        skip = minimise_skip(stored, channel.settings) if owner else _without_details(stored)
        if message_id is not None:
            if skip.message_id not in (message_id, digest):
                continue
            shown_id = message_id
        else:
            shown_id = "" if skip.message_id.startswith(DIGEST_PREFIX) else skip.message_id
        if owner:
            skip = attrs.evolve(skip, message_id=shown_id)
        else:
            skip = Skip(skip.provider_id, skip.reason, message_id=shown_id, date=skip.date)
        found.append(skip)
    found.sort(key=lambda s: s.provider_id)
    return found
