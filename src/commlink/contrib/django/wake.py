"""Waking a channel from the web process, for the watch process to sync.

A push notification arrives in a web worker, while the channels are synced
by ``manage.py commlink_watch`` (or Celery). ``flag_wake`` leaves a mark in
the store (a lease named ``"<channel id>#woken"``, the port every store
has); the watch process takes the marks at each tick (``take_woken``) and
syncs those channels at once. A mark lasts ``WOKEN_TTL``: one not taken by
then is moot, since the channel's regular sync has run meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from ...ports import Store

__all__ = ["WOKEN_TTL", "flag_wake", "take_woken", "woken_marker"]

WOKEN_TTL = timedelta(hours=1)
_FLAGGER = "commlink-push"
_PROBE = "commlink-watch"


def woken_marker(channel_id: str) -> str:
    return f"{channel_id}#woken"


def flag_wake(store: Store, channel_id: str) -> None:
    """Ask the watch process to sync ``channel_id`` soon."""
    store.acquire_lease(woken_marker(channel_id), _FLAGGER, WOKEN_TTL)


def take_woken(store: Store, channel_ids: Iterable[str]) -> list[str]:
    """The channels flagged since the last call, their marks removed."""
    woken = []
    for channel_id in channel_ids:
        marker = woken_marker(channel_id)
        # the probe's own lease expires at once: it only tells whether a mark is there
        if store.acquire_lease(marker, _PROBE, timedelta(0)):
            store.release_lease(marker, _PROBE)
        else:
            store.release_lease(marker, _FLAGGER)
            woken.append(channel_id)
    return woken
