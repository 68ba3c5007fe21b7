"""``MemoryStore``: the reference ``Store`` kept in process memory.

Meant for tests, demos and small hosts. Reads scan what is stored, so it is
not meant for very large mailboxes. A commit works on a copy of the state
and swaps it in at the end, so a failure leaves nothing of the batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ..addresses import address_key
from ..errors import InvalidInput
from ..events import EventSink, HostEvent
from ..model import Channel, ChannelKind
from ..policy.skips import minimise_skip, require_viewer, visible_skips
from ..records import (
    AddressLinks,
    ChannelState,
    ErasureReport,
    EventSummary,
    Lease,
    MessageSource,
    Page,
    PageRequest,
    Reason,
    SearchHit,
    SearchQuery,
    Skip,
    SyncBatch,
    Target,
    ThreadLinks,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from . import memory_search, memory_state
from .common import (
    FIRST_PAGE,
    EventKey,
    entry_matcher,
    event_version,
    require_aware,
    validate_batch,
    validate_links,
)
from .copies import holder_of
from .memory_state import (
    EventAssoc,
    MessageAssoc,
    State,
    collect,
    copy_of,
    forget_unstored_links,
    minimise_channel,
    remove_matching,
)
from .outbox import deliver_after_commit, state_change
from .outbox_memory import MemoryOutbox, state_events
from .privacy import (
    QUEUE_MARKER_SUFFIX,
    batch_keys,
    erasure_key,
    forgotten_skips,
    mentions,
    prepare_batch,
    settings_change,
)
from .sources import chosen_source

__all__ = ["MemoryStore"]

log = logging.getLogger("commlink.stores")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sink_failed(exc: Exception) -> None:
    log.warning("the host event sink failed: %s", type(exc).__name__)


class MemoryStore:
    """An in-memory ``Store``; thread-safe, one lock around every call.

    Content is kept per channel: each channel holding a message or an event
    keeps its own copy, and readers see one copy they are entitled to (see
    ``stores.copies``).

    ``clock`` gives the current aware UTC time (for lease expiry).
    Host events (``commlink.events``): with ``outbox`` each write appends
    its events to ``outbox()`` in the same step; ``on_events`` is called
    with them after each write (in process, not crash-safe).
    ``fault_hook``, for tests only, is called before each write step of a
    commit; an exception it raises aborts that commit.
    """

    def __init__(
        self,
        clock: Callable[[], datetime] = _utcnow,
        *,
        outbox: bool = False,
        on_events: EventSink | None = None,
    ) -> None:
        self._state = State()
        self._lock = threading.RLock()
        self._clock = clock
        self._outbox = MemoryOutbox(clock) if outbox else None
        self._on_events = on_events
        self.fault_hook: Callable[[], None] | None = None

    def outbox(self) -> MemoryOutbox:
        """The host event outbox (``MemoryStore(outbox=True)``)."""
        if self._outbox is None:
            raise InvalidInput("this store keeps no outbox: MemoryStore(outbox=True)")
        return self._outbox

    def _swap(
        self, state: State, channels: Collection[str], batch: SyncBatch | None = None
    ) -> list[HostEvent]:
        """Make ``state`` current (the caller holds the lock); returns the
        host events of the change in ``channels``, persisted when there is
        an outbox."""
        events: list[HostEvent] = []
        if self._outbox is not None or self._on_events is not None:
            events = state_events(self._state, state, channels, self._clock(), batch)
        if self._outbox is not None and events:
            events = self._outbox.append(events)
        self._state = state
        return events

    def _publish(self, events: Sequence[HostEvent]) -> None:
        deliver_after_commit(self._on_events, events, _sink_failed)

    # channels and sync state

    def save_channel(self, channel: Channel) -> None:
        if not channel.id:
            raise InvalidInput("channel id must not be empty")
        with self._lock:
            stored = self._state.channels.get(channel.id)
            change = settings_change(stored.settings if stored else None, channel.settings)
            if not change:
                self._state.channels[channel.id] = channel
                return
            state = self._state.copy()
            state.channels[channel.id] = channel
            if change.blocked:
                remove_matching(state, channel.id, entry_matcher(change.blocked))
            if change.minimise is not None:
                minimise_channel(state, channel.id, change.minimise)
            if change.strip_skips:
                for key, skip in list(state.skips.items()):
                    if key[0] == channel.id:
                        state.skips[key] = minimise_skip(skip, channel.settings)
            collect(state)
            events = self._swap(state, {channel.id})
        self._publish(events)

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            return self._state.channels.get(channel_id)

    def channels(self) -> Sequence[Channel]:
        with self._lock:
            return [self._state.channels[k] for k in sorted(self._state.channels)]

    def remove_channel(self, channel_id: str) -> None:
        with self._lock:
            state = self._state.copy()
            before = memory_state.stored_addresses(state)
            for table in (state.message_assocs, state.event_assocs):
                for key in [k for k in table if k[0] == channel_id]:
                    del table[key]
            for key2 in [k for k in state.cursors if k[0] == channel_id]:
                del state.cursors[key2]
            for key2 in [k for k in state.skips if k[0] == channel_id]:
                del state.skips[key2]
            state.states.pop(channel_id, None)
            state.leases.pop(channel_id, None)
            state.leases.pop(channel_id + QUEUE_MARKER_SUFFIX, None)
            state.channels.pop(channel_id, None)
            collect(state)
            forget_unstored_links(state, before)
            events = self._swap(state, {channel_id})
        self._publish(events)

    def channel_state(self, channel_id: str) -> ChannelState | None:
        with self._lock:
            return self._state.states.get(channel_id)

    def channel_states(self) -> dict[str, ChannelState]:
        """Every channel's state (what a dispatcher reads)."""
        with self._lock:
            return dict(self._state.states)

    def save_channel_state(self, state: ChannelState) -> None:
        require_aware(state.next_attempt, "next_attempt")
        require_aware(state.last_success, "last_success")
        with self._lock:
            change = state_change(self._state.states.get(state.channel_id), state, self._clock())
            self._state.states[state.channel_id] = state
            events = [] if change is None else [change]
            if self._outbox is not None and events:
                events = self._outbox.append(events)
            if self._on_events is None:
                return
        self._publish(events)

    def acquire_lease(self, channel_id: str, holder: str, ttl: timedelta) -> bool:
        with self._lock:
            now = self._clock()
            current = self._state.leases.get(channel_id)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._state.leases[channel_id] = (holder, now + ttl)
            return True

    def held_leases(self, keys: Collection[str]) -> dict[str, Lease]:
        with self._lock:
            now = self._clock()
            return {
                key: Lease(found[0], found[1])
                for key in keys
                if (found := self._state.leases.get(key)) is not None and found[1] > now
            }

    def release_lease(self, channel_id: str, holder: str) -> None:
        with self._lock:
            current = self._state.leases.get(channel_id)
            if current is not None and current[0] == holder:
                del self._state.leases[channel_id]

    # the write side

    def _step(self) -> None:
        if self.fault_hook is not None:
            self.fault_hook()

    def commit(self, batch: SyncBatch) -> None:
        validate_batch(batch)
        with self._lock:
            channel = self._state.channels.get(batch.channel_id)
            if channel is None:
                raise InvalidInput(f"unknown channel {batch.channel_id!r}")
            erased = batch_keys(batch) & self._state.erased.keys() if self._state.erased else ()
            batch = prepare_batch(batch, channel.settings, erased)
            state = self._state.copy()
            self._apply(state, batch)
            collect(state)
            events = self._swap(state, {batch.channel_id}, batch)
        self._publish(events)

    def _apply(self, state: State, batch: SyncBatch) -> None:
        ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
        for record in batch.messages:
            self._step()
            msg = record.message
            state.threads[msg.message_id] = record.thread_id
            key = (msg.message_id, ch)  # only this channel's copy changes
            state.copies[key] = copy_of(record, state.copies.get(key))
            self._step()
            state.message_assocs[(ch, sc, msg.provider_id)] = MessageAssoc(
                msg.message_id, gen, msg.folders, record.direction
            )
        grouped: dict[str, list[EventKey]] = {}
        for event_record in batch.events:
            self._step()
            event = event_record.event
            event_key: EventKey = (event.uid, event.recurrence_id)
            # the channel's most recent version, whatever order they come in
            current = state.events.get((ch, event_key))
            if current is None or event_version(event) >= event_version(current):
                state.events[(ch, event_key)] = event
            grouped.setdefault(event.provider_id, []).append(event_key)
        for provider_id, keys in grouped.items():
            self._step()
            state.event_assocs[(ch, sc, provider_id)] = EventAssoc(tuple(keys), gen)
        self._relink(state, batch.links)
        for old, new in batch.thread_merges:
            self._step()
            for mid, thread_id in list(state.threads.items()):
                if thread_id == old:
                    state.threads[mid] = new
        for provider_id in batch.deleted:
            self._step()
            state.message_assocs.pop((ch, sc, provider_id), None)
            state.event_assocs.pop((ch, sc, provider_id), None)
        for provider_id in batch.seen:
            self._step()
            assoc = state.message_assocs.get((ch, sc, provider_id))
            if assoc is not None:
                state.message_assocs[(ch, sc, provider_id)] = attrs.evolve(assoc, generation=gen)
            event_assoc = state.event_assocs.get((ch, sc, provider_id))
            if event_assoc is not None:
                state.event_assocs[(ch, sc, provider_id)] = attrs.evolve(
                    event_assoc, generation=gen
                )
        for provider_id in forgotten_skips(batch):
            self._step()
            state.skips.pop((ch, provider_id), None)
        for skip in batch.skipped:
            self._step()
            state.skips[(ch, skip.provider_id)] = skip
        if batch.cursor is not None:
            self._step()
            state.cursors[(ch, sc)] = batch.cursor
        if batch.sweep:
            self._step()
            for table in (state.message_assocs, state.event_assocs):
                stale = [
                    k for k, a in table.items() if k[0] == ch and k[1] == sc and a.generation < gen
                ]
                for k in stale:
                    del table[k]

    def _relink(self, state: State, changes: Iterable[AddressLinks]) -> None:
        for change in changes:
            self._step()
            if change.links:
                state.links[change.key] = frozenset(change.links)
            else:
                state.links.pop(change.key, None)

    def cursor(self, channel_id: str, scope_id: str) -> str | None:
        with self._lock:
            return self._state.cursors.get((channel_id, scope_id))

    def scope_ids(self, channel_id: str) -> Sequence[str]:
        with self._lock:
            state = self._state
            found = {s for c, s in state.cursors if c == channel_id}
            found.update(k[1] for k in state.message_assocs if k[0] == channel_id)
            found.update(k[1] for k in state.event_assocs if k[0] == channel_id)
            return sorted(found)

    def drop_scope(self, channel_id: str, scope_id: str) -> None:
        with self._lock:
            state = self._state.copy()
            for table in (state.message_assocs, state.event_assocs):
                for key in [k for k in table if k[0] == channel_id and k[1] == scope_id]:
                    del table[key]
            state.cursors.pop((channel_id, scope_id), None)
            collect(state)
            events = self._swap(state, {channel_id})
        self._publish(events)

    def known_ids(self, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
        with self._lock:
            state = self._state
            return {
                i
                for i in ids
                if (channel_id, scope_id, i) in state.message_assocs
                or (channel_id, scope_id, i) in state.event_assocs
            }

    def count_associations(
        self, channel_id: str, scope_id: str | None = None, *, kind: ChannelKind | None = None
    ) -> int:
        with self._lock:
            state = self._state
            tables: list[Mapping[tuple[str, str, str], object]] = []
            if kind is not ChannelKind.CALENDAR:
                tables.append(state.message_assocs)
            if kind is not ChannelKind.MAIL:
                tables.append(state.event_assocs)
            return sum(
                1
                for table in tables
                for key in table
                if key[0] == channel_id and (scope_id is None or key[1] == scope_id)
            )

    def threads_by_message_ids(self, message_ids: Collection[str]) -> Mapping[str, str]:
        with self._lock:
            return memory_state.threads_by_message_ids(self._state, message_ids)

    def thread_links(self, channel_id: str, message_ids: Collection[str]) -> ThreadLinks:
        with self._lock:
            return memory_state.thread_links(self._state, channel_id, message_ids)

    def linked_addresses(self, target: Target) -> set[str]:
        with self._lock:
            return memory_state.linked_keys(self._state, target)

    def stored_addresses(self, keys: Collection[str] | None = None) -> set[str]:
        with self._lock:
            found = memory_state.stored_addresses(self._state)
        return found if keys is None else found & set(keys)

    def relink(self, changes: Sequence[AddressLinks]) -> None:
        for change in changes:
            validate_links(change.key, [link.id for link in change.links])
        with self._lock:
            state = self._state.copy()
            self._relink(state, changes)
            self._state = state

    def delete_matching(self, channel_id: str, entries: Collection[str]) -> int:
        matches = entry_matcher(entries)
        with self._lock:
            state = self._state.copy()
            # the channel's own copies: another channel's copy never deletes one
            removed = remove_matching(state, channel_id, matches)
            collect(state)
            events = self._swap(state, {channel_id})
        self._publish(events)
        return sum(removed)

    # erasure

    def erase_address(self, address: str) -> ErasureReport:
        key = erasure_key(address)
        with self._lock:
            state = self._state.copy()
            before = memory_state.stored_addresses(state)
            messages, events = remove_matching(state, None, lambda k: k == key)
            named = [k for k, skip in state.skips.items() if mentions(skip, key)]
            for skip_key in named:
                del state.skips[skip_key]
            links = state.links.pop(key, frozenset())
            erased_at = state.erased.setdefault(key, self._clock())
            collect(state)
            forget_unstored_links(state, before)
            changes = self._swap(state, set(state.channels) | set(self._state.channels))
        self._publish(changes)
        return ErasureReport(key, erased_at, messages, events, len(named), len(links))

    def erased(self, keys: Collection[str]) -> set[str]:
        with self._lock:
            tombstones = self._state.erased
            return {k for k in keys if address_key(k) in tombstones} if tombstones else set()

    def forget_erasure(self, address: str) -> bool:
        """Remove an address's tombstone (mail from or to it may be imported
        again); whether there was one. Not part of the ``Store`` port."""
        key = erasure_key(address)
        with self._lock:
            return self._state.erased.pop(key, None) is not None

    # the read side (visibility and the choice of copy applied here)

    def timeline(
        self, target: Target, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[ThreadSummary]:
        with self._lock:
            return memory_state.timeline(self._state, target, viewer, page)

    def thread(
        self, thread_id: str, viewer: Viewer, page: PageRequest | None = None
    ) -> ThreadView | None:
        """The thread as ``viewer`` may see it, oldest first; one page of it
        when ``page`` is given (``ThreadView.next`` resumes)."""
        with self._lock:
            return memory_state.thread(self._state, thread_id, viewer, page)

    def message_source(
        self, thread_id: str, message_id: str, viewer: Viewer
    ) -> MessageSource | None:
        """Where ``viewer`` may fetch the message's attachments from (``FULL`` only)."""
        with self._lock:
            state = self._state
            if state.threads.get(message_id) != thread_id:
                return None
            copies = [
                (holder_of(state.channels[channel_id]), copy.attachments)
                for (mid, channel_id), copy in state.copies.items()
                if mid == message_id and channel_id in state.channels
            ]
            places = [k for k, a in state.message_assocs.items() if a.message_id == message_id]
            return chosen_source(viewer, message_id, copies, places)

    def events(
        self, target: Target, viewer: Viewer, window: Window, page: PageRequest = FIRST_PAGE
    ) -> Page[EventSummary]:
        require_aware(window.start, "window start")
        require_aware(window.end, "window end")
        with self._lock:
            return memory_state.events_page(self._state, target, viewer, window, page)

    def search(
        self, query: SearchQuery, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[SearchHit]:
        """Messages matching ``query`` as ``viewer`` may see them (``SearchableStore``)."""
        require_viewer(viewer)
        with self._lock:
            return memory_search.search(self._state, query, viewer, page)

    def skip_reasons(self, channel_id: str, ids: Collection[str]) -> dict[str, Reason]:
        """The skip reason of each of ``ids`` that a skip record holds."""
        with self._lock:
            held = self._state.skips
            return {i: held[(channel_id, i)].reason for i in ids if (channel_id, i) in held}

    def skips(
        self, channel_id: str, viewer: Viewer, message_id: str | None = None
    ) -> Sequence[Skip]:
        require_viewer(viewer)
        with self._lock:
            kept = [skip for key, skip in self._state.skips.items() if key[0] == channel_id]
            return visible_skips(viewer, self._state.channels.get(channel_id), kept, message_id)
