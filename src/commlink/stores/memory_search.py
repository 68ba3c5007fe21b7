"""Search in ``MemoryStore``: a scan of every logical message.

This is the reference meaning of ``SearchableStore.search``: each message is
judged on the one copy the viewer sees (``stores.copies.choose``), at the
visibility it is shown at, and only in the fields that visibility shows.
"""

from __future__ import annotations

from datetime import datetime

from ..model import Visibility
from ..records import Page, PageRequest, SearchHit, SearchQuery, Viewer
from .common import StoredMessage, thread_token
from .copies import Holder, choose, holder_of
from .memory_state import State, linked_keys
from .search_terms import document, hit_of, matches, prepare

__all__ = ["search"]


def _threads_of(state: State, query: SearchQuery) -> set[str] | None:
    if query.target is None:
        return None
    keys = linked_keys(state, query.target)
    return {
        state.threads[mid]
        for (mid, _channel), copy in state.copies.items()
        if any(p.address.valid and p.address.key in keys for p in copy.participants)
    }


def search(state: State, query: SearchQuery, viewer: Viewer, page: PageRequest) -> Page[SearchHit]:
    prepared = prepare(query, page)
    threads = _threads_of(state, query)
    holders: dict[str, list[Holder]] = {}
    for mid, channel_id in state.copies:
        channel = state.channels.get(channel_id)
        if channel is not None and (threads is None or state.threads[mid] in threads):
            holders.setdefault(mid, []).append(holder_of(channel))
    found: list[tuple[datetime, str, StoredMessage, Visibility]] = []
    for mid, held in holders.items():
        chosen = choose(viewer, held)
        if chosen is None:
            continue
        holder, visibility = chosen
        stored = state.copies[(mid, holder.channel_id)].stored(mid, state.threads[mid])
        window = query.window
        if window is not None and not window.start <= stored.date < window.end:
            continue
        if prepared.after is not None and (stored.date, mid) >= prepared.after:
            continue
        if prepared.participant is not None and not any(
            p.address.key == prepared.participant for p in stored.participants
        ):
            continue
        if prepared.parsed.phrases and not matches(prepared.parsed, document(stored), visibility):
            continue
        found.append((stored.date, mid, stored, visibility))
    found.sort(key=lambda row: (row[0], row[1]), reverse=True)
    chosen_rows = found[: page.limit]
    token = None
    if len(found) > page.limit:
        token = thread_token(chosen_rows[-1][0], chosen_rows[-1][1])
    hits = (hit_of(row[2], row[3], prepared.parsed) for row in chosen_rows)
    return Page(items=tuple(hits), next=token)
