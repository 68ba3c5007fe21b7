"""``MemoryStore``: the reference ``Store`` kept in process memory.

Meant for tests, demos and small hosts. Reads scan what is stored, so it is
not meant for very large mailboxes. A commit works on a copy of the state
and swaps it in at the end, so a failure leaves nothing of the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ..errors import InvalidInput
from ..model import Channel, Direction, Event, Visibility
from ..records import (
    AddressLinks,
    ChannelState,
    EventSummary,
    Link,
    MessageRecord,
    Page,
    PageRequest,
    Skip,
    SyncBatch,
    Target,
    ThreadSummary,
    ThreadView,
    Viewer,
    Window,
)
from .common import (
    FIRST_PAGE,
    EventKey,
    StoredMessage,
    effective_visibility,
    entry_matcher,
    event_summary,
    event_version,
    message_view,
    page_events,
    require_aware,
    resolve_threads,
    select_occurrences,
    summarise_thread,
    thread_after,
    thread_token,
    validate_batch,
    validate_links,
    validate_page,
)

__all__ = ["MemoryStore"]

AssocKey = tuple[str, str, str]  # (channel_id, scope_id, provider_id)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen(slots=True)
class _Logical:
    stored: StoredMessage
    refs: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class _MessageAssoc:
    message_id: str
    generation: int
    folders: tuple[str, ...]
    direction: Direction


@attrs.frozen(slots=True)
class _EventAssoc:
    keys: tuple[EventKey, ...]
    generation: int


@attrs.define(slots=True)
class _State:
    channels: dict[str, Channel] = attrs.Factory(dict)
    states: dict[str, ChannelState] = attrs.Factory(dict)
    leases: dict[str, tuple[str, datetime]] = attrs.Factory(dict)
    messages: dict[str, _Logical] = attrs.Factory(dict)
    message_assocs: dict[AssocKey, _MessageAssoc] = attrs.Factory(dict)
    events: dict[EventKey, Event] = attrs.Factory(dict)
    event_assocs: dict[AssocKey, _EventAssoc] = attrs.Factory(dict)
    links: dict[str, frozenset[Link]] = attrs.Factory(dict)
    cursors: dict[tuple[str, str], str] = attrs.Factory(dict)
    skips: dict[tuple[str, str], Skip] = attrs.Factory(dict)

    def copy(self) -> _State:
        return _State(
            channels=dict(self.channels),
            states=dict(self.states),
            leases=dict(self.leases),
            messages=dict(self.messages),
            message_assocs=dict(self.message_assocs),
            events=dict(self.events),
            event_assocs=dict(self.event_assocs),
            links=dict(self.links),
            cursors=dict(self.cursors),
            skips=dict(self.skips),
        )


def _stored(record: MessageRecord, previous: _Logical | None) -> _Logical:
    msg = record.message
    body = msg.body
    if body is None and previous is not None:
        body = previous.stored.body  # never replace a known body with nothing
    stored = StoredMessage(
        message_id=msg.message_id,
        thread_id=record.thread_id,
        date=msg.date,
        subject=msg.subject,
        snippet=msg.snippet,
        body=body,
        attachments=msg.attachments,
        participants=msg.participants,
    )
    return _Logical(stored=stored, refs=(*msg.in_reply_to, *msg.references, *record.thread_keys))


class MemoryStore:
    """An in-memory ``Store``; thread-safe, one lock around every call.

    ``clock`` gives the current aware UTC time (for lease expiry).
    ``fault_hook``, for tests only, is called before each write step of a
    commit; an exception it raises aborts that commit.
    """

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._clock = clock
        self.fault_hook: Callable[[], None] | None = None

    # channels and sync state

    def save_channel(self, channel: Channel) -> None:
        if not channel.id:
            raise InvalidInput("channel id must not be empty")
        with self._lock:
            self._state.channels[channel.id] = channel

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            return self._state.channels.get(channel_id)

    def channels(self) -> Sequence[Channel]:
        with self._lock:
            return [self._state.channels[k] for k in sorted(self._state.channels)]

    def remove_channel(self, channel_id: str) -> None:
        with self._lock:
            state = self._state.copy()
            for table in (state.message_assocs, state.event_assocs):
                for key in [k for k in table if k[0] == channel_id]:
                    del table[key]
            for key2 in [k for k in state.cursors if k[0] == channel_id]:
                del state.cursors[key2]
            for key2 in [k for k in state.skips if k[0] == channel_id]:
                del state.skips[key2]
            state.states.pop(channel_id, None)
            state.leases.pop(channel_id, None)
            state.channels.pop(channel_id, None)
            self._collect(state)
            self._state = state

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
            self._state.states[state.channel_id] = state

    def acquire_lease(self, channel_id: str, holder: str, ttl: timedelta) -> bool:
        with self._lock:
            now = self._clock()
            current = self._state.leases.get(channel_id)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._state.leases[channel_id] = (holder, now + ttl)
            return True

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
            if batch.channel_id not in self._state.channels:
                raise InvalidInput(f"unknown channel {batch.channel_id!r}")
            state = self._state.copy()
            self._apply(state, batch)
            self._collect(state)
            self._state = state

    def _apply(self, state: _State, batch: SyncBatch) -> None:
        ch, sc, gen = batch.channel_id, batch.scope_id, batch.generation
        for record in batch.messages:
            self._step()
            msg = record.message
            previous = state.messages.get(msg.message_id)
            state.messages[msg.message_id] = _stored(record, previous)
            self._step()
            state.message_assocs[(ch, sc, msg.provider_id)] = _MessageAssoc(
                msg.message_id, gen, msg.folders, record.direction
            )
        grouped: dict[str, list[EventKey]] = {}
        for event_record in batch.events:
            self._step()
            event = event_record.event
            key: EventKey = (event.uid, event.recurrence_id)
            current = state.events.get(key)
            if current is None or event_version(event) >= event_version(current):
                state.events[key] = event
            grouped.setdefault(event.provider_id, []).append(key)
        for provider_id, keys in grouped.items():
            self._step()
            state.event_assocs[(ch, sc, provider_id)] = _EventAssoc(tuple(keys), gen)
        self._relink(state, batch.links)
        for old, new in batch.thread_merges:
            self._step()
            for mid, logical in list(state.messages.items()):
                if logical.stored.thread_id == old:
                    stored = attrs.evolve(logical.stored, thread_id=new)
                    state.messages[mid] = attrs.evolve(logical, stored=stored)
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
        for skip in batch.skipped:
            self._step()
            state.skips[(ch, skip.provider_id)] = skip
        for provider_id in {r.message.provider_id for r in batch.messages} | {
            r.event.provider_id for r in batch.events
        }:
            self._step()
            state.skips.pop((ch, provider_id), None)
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

    def _relink(self, state: _State, changes: Iterable[AddressLinks]) -> None:
        for change in changes:
            self._step()
            if change.links:
                state.links[change.key] = frozenset(change.links)
            else:
                state.links.pop(change.key, None)

    @staticmethod
    def _collect(state: _State) -> None:
        """Drop logical messages and events that lost their last association."""
        live = {a.message_id for a in state.message_assocs.values()}
        for mid in [m for m in state.messages if m not in live]:
            del state.messages[mid]
        live_events = {k for a in state.event_assocs.values() for k in a.keys}
        for key in [k for k in state.events if k not in live_events]:
            del state.events[key]

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
            self._collect(state)
            self._state = state

    def known_ids(self, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]:
        with self._lock:
            state = self._state
            return {
                i
                for i in ids
                if (channel_id, scope_id, i) in state.message_assocs
                or (channel_id, scope_id, i) in state.event_assocs
            }

    def threads_by_message_ids(self, message_ids: Collection[str]) -> Mapping[str, str]:
        wanted = set(message_ids)
        with self._lock:
            messages = self._state.messages
            own = {m: messages[m].stored.thread_id for m in wanted if m in messages}
            referencing = [
                (ref, lg.stored.date, lg.stored.message_id, lg.stored.thread_id)
                for lg in messages.values()
                for ref in lg.refs
                if ref in wanted
            ]
        return resolve_threads(own, referencing)

    def linked_addresses(self, target: Target) -> set[str]:
        link = Link(kind=target.kind, id=target.id)
        with self._lock:
            return {key for key, links in self._state.links.items() if link in links}

    def stored_addresses(self, keys: Collection[str] | None = None) -> set[str]:
        with self._lock:
            found = {
                p.address.key
                for lg in self._state.messages.values()
                for p in lg.stored.participants
                if p.address.key
            }
            found.update(a.key for e in self._state.events.values() for a in e.addresses() if a.key)
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
            hit_messages = {
                mid
                for mid, lg in state.messages.items()
                if any(matches(p.address.key) for p in lg.stored.participants)
            }
            hit_events = {
                key for key, e in state.events.items() if any(matches(a.key) for a in e.addresses())
            }
            removed = [
                k
                for k, a in state.message_assocs.items()
                if k[0] == channel_id and a.message_id in hit_messages
            ]
            for k in removed:
                del state.message_assocs[k]
            removed_events = [
                k
                for k, ea in state.event_assocs.items()
                if k[0] == channel_id and any(key in hit_events for key in ea.keys)
            ]
            for k in removed_events:
                del state.event_assocs[k]
            self._collect(state)
            self._state = state
            return len(removed) + len(removed_events)

    # the read side

    def _linked_keys(self, target: Target) -> set[str]:
        link = Link(kind=target.kind, id=target.id)
        return {key for key, links in self._state.links.items() if link in links}

    def _visibility(self, viewer: Viewer, channel_ids: Iterable[str]) -> Visibility:
        channels = self._state.channels
        return effective_visibility(
            viewer,
            (
                (channels[c].user_id, channels[c].settings.visibility)
                for c in channel_ids
                if c in channels
            ),
        )

    def _message_channels(self) -> dict[str, list[AssocKey]]:
        found: dict[str, list[AssocKey]] = {}
        for key in sorted(self._state.message_assocs):
            found.setdefault(self._state.message_assocs[key].message_id, []).append(key)
        return found

    def _thread_messages(self, thread_ids: Collection[str]) -> dict[str, list[StoredMessage]]:
        threads: dict[str, list[StoredMessage]] = {}
        for lg in self._state.messages.values():
            if lg.stored.thread_id in thread_ids:
                threads.setdefault(lg.stored.thread_id, []).append(lg.stored)
        for messages in threads.values():
            messages.sort(key=lambda m: (m.date, m.message_id))
        return threads

    def timeline(
        self, target: Target, viewer: Viewer, page: PageRequest = FIRST_PAGE
    ) -> Page[ThreadSummary]:
        validate_page(page)
        with self._lock:
            keys = self._linked_keys(target)
            linked = {
                lg.stored.thread_id
                for lg in self._state.messages.values()
                if any(p.address.valid and p.address.key in keys for p in lg.stored.participants)
            }
            threads = self._thread_messages(linked)
            order = sorted(
                ((msgs[-1].date, tid) for tid, msgs in threads.items()),
                reverse=True,
            )
            if page.after is not None:
                after = thread_after(page.after)
                order = [row for row in order if row < after]
            chosen = order[: page.limit]
            assocs = self._message_channels()
            items = []
            for _last, tid in chosen:
                messages = threads[tid]
                vis = [
                    self._visibility(viewer, (k[0] for k in assocs.get(m.message_id, ())))
                    for m in messages
                ]
                items.append(summarise_thread(tid, messages, vis))
        token = thread_token(*chosen[-1]) if len(order) > page.limit else None
        return Page(items=tuple(items), next=token)

    def thread(self, thread_id: str, viewer: Viewer) -> ThreadView | None:
        with self._lock:
            messages = self._thread_messages({thread_id}).get(thread_id)
            if not messages:
                return None
            assocs = self._message_channels()
            views = []
            for message in messages:
                keys = assocs.get(message.message_id, [])
                vis = self._visibility(viewer, (k[0] for k in keys))
                views.append(message_view(message, self._direction(viewer, keys), vis))
        return ThreadView(thread_id=thread_id, messages=tuple(views))

    def _direction(self, viewer: Viewer, keys: Sequence[AssocKey]) -> Direction:
        channels = self._state.channels
        owned = [k for k in keys if k[0] in channels and channels[k[0]].user_id == viewer.user_id]
        chosen = (owned or list(keys))[0]
        return self._state.message_assocs[chosen].direction

    def events(
        self, target: Target, viewer: Viewer, window: Window, page: PageRequest = FIRST_PAGE
    ) -> Page[EventSummary]:
        validate_page(page)
        require_aware(window.start, "window start")
        require_aware(window.end, "window end")
        with self._lock:
            keys = self._linked_keys(target)
            stored = self._state.events
            linked = {
                k
                for k, e in stored.items()
                if any(a.valid and a.key in keys for a in e.addresses())
            }
            uids = {uid for uid, _ in linked}
            series = {k: e for k, e in stored.items() if k[0] in uids}
            channels_of: dict[EventKey, set[str]] = {}
            for assoc_key, assoc in self._state.event_assocs.items():
                for k in assoc.keys:
                    channels_of.setdefault(k, set()).add(assoc_key[0])
            summaries = [
                event_summary(occ, self._visibility(viewer, sorted(channels_of.get(src, ()))))
                for occ, src in select_occurrences(series, linked, window)
            ]
        return page_events(summaries, page)

    def skips(self, channel_id: str, message_id: str | None = None) -> Sequence[Skip]:
        with self._lock:
            skips = self._state.skips
            return [
                skips[key]
                for key in sorted(skips)
                if key[0] == channel_id
                and (message_id is None or skips[key].message_id == message_id)
            ]
