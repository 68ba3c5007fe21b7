"""Least data in ``DjangoStore``: settings changes that apply to what a
channel stored, skip records as a viewer may see them, and erasure.

Every function runs inside the caller's transaction on the alias ``using``
(see ``commlink.stores.privacy`` for the rules, shared with the reference
stores).
"""

from __future__ import annotations

from datetime import datetime

from django.db import connections
from django.db.models import Q
from django.db.models.functions import Lower

from ...model import Channel, Visibility
from ...policy.skips import PRIVATE_REASONS, message_id_digest, minimise_skip, visible_skips
from ...records import ErasureReport, Skip, Viewer
from ...stores.privacy import mentions, settings_change
from ...stores.sql_rows import (
    SKIP_COLUMNS,
    channel_from_row,
    channel_row,
    skip_from_row,
    skip_tuple,
)
from . import models as m
from .store_delete import forget_unstored_links, remove_matching
from .store_rows import as_row, chunked, is_postgres
from .store_write import ERASURE_LOCK

__all__ = ["erase", "minimise_channel", "read_skips", "save_channel", "strip_skips"]


def save_channel(using: str, channel: Channel) -> None:
    """Save a channel; a change to a stored one applies to what it stored
    (see ``privacy.settings_change``)."""
    channels = m.Channel.objects.using(using)
    stored = channels.filter(id=channel.id).values().first()
    row = channel_row(channel)
    channels.bulk_create(
        [m.Channel(**row)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=[k for k in row if k != "id"],
    )
    if stored is None:
        return
    change = settings_change(channel_from_row(as_row(stored)).settings, channel.settings)
    if change.blocked:
        remove_matching(using, channel.id, change.blocked)
    if change.minimise is not None:
        minimise_channel(using, channel.id, change.minimise)
    if change.strip_skips:
        strip_skips(using, channel)


def minimise_channel(using: str, channel_id: str, visibility: Visibility) -> None:
    """Minimise a channel's stored copies to ``visibility``, as
    ``minimise_message`` and ``minimise_event`` store them: at ``METADATA``
    no body or snippet, no event description, location or conference link.
    A minimised copy loses its content digest, so a later fetch rewrites it."""
    if visibility is not Visibility.METADATA:
        return
    m.MessageCopy.objects.using(using).filter(channel_id=channel_id).filter(
        Q(body__isnull=False) | Q(html__isnull=False) | ~Q(snippet="")
    ).update(body=None, html=None, snippet="", content_hash="")
    m.Event.objects.using(using).filter(channel_id=channel_id).filter(
        ~Q(description="") | ~Q(location="") | ~Q(conference_url="")
    ).update(description="", location="", conference_url="")


def strip_skips(using: str, channel: Channel) -> None:
    """Rewrite the channel's skip records as its settings allow (details of
    internal and blocked mail withdrawn)."""
    reasons = sorted(r.value for r in PRIVATE_REASONS)
    skips = m.SkipRecord.objects.using(using)
    changed = []
    for row in skips.filter(channel_id=channel.id, reason__in=reasons).values():
        skip = skip_from_row(as_row(row))
        kept = minimise_skip(skip, channel.settings)
        if kept != skip:
            values = dict(zip(SKIP_COLUMNS, skip_tuple(channel.id, kept), strict=True))
            changed.append(m.SkipRecord(**values))
    if changed:
        skips.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["channel_id", "provider_id"],
            update_fields=list(SKIP_COLUMNS[2:]),
        )


def read_skips(using: str, channel_id: str, viewer: Viewer, message_id: str | None) -> list[Skip]:
    """A channel's skip records as ``viewer`` may see them (``visible_skips``)."""
    stored = m.Channel.objects.using(using).filter(id=channel_id).values().first()
    if stored is None:
        return []
    query = m.SkipRecord.objects.using(using).filter(channel_id=channel_id)
    if message_id is not None:
        query = query.filter(message_id__in=sorted({message_id, message_id_digest(message_id)}))
    kept = [skip_from_row(as_row(r)) for r in query.order_by("provider_id").values()]
    return visible_skips(viewer, channel_from_row(as_row(stored)), kept, message_id)


def erase(using: str, key: str, now: datetime) -> ErasureReport:
    """Erase an address key in every channel (see ``Store.erase_address``)."""
    if is_postgres(using):  # no commit runs meanwhile (see store_write.ERASURE_LOCK)
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ERASURE_LOCK])
    gone_keys: set[str] = set()
    messages, events = remove_matching(using, None, [key], gone_keys)
    skips = m.SkipRecord.objects.using(using)
    # candidates found by the database, confirmed by the shared rule
    candidates = skips.annotate(sender_key=Lower("sender")).filter(
        Q(sender_key=key) | Q(detail__icontains=key) | Q(subject__icontains=key)
    )
    named = [row["id"] for row in candidates.values() if mentions(skip_from_row(as_row(row)), key)]
    for part in chunked(named):
        skips.filter(id__in=part).delete()
    links = m.AddressLink.objects.using(using).filter(key=key)
    link_count = links.count()
    links.delete()
    tombstone, _ = m.Erasure.objects.using(using).get_or_create(
        key=key, defaults={"erased_at": now}
    )
    forget_unstored_links(using, gone_keys - {key})
    return ErasureReport(key, tombstone.erased_at, messages, events, len(named), link_count)
