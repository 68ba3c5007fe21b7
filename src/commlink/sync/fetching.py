"""Fetch a chunk of ids from a provider and turn it into batch parts.

Mail and calendars differ only here: what is fetched, how it is parsed and
which policy judges it. The engine drives both the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import attrs

from ..errors import CommlinkError
from ..model import Channel, Detail, Event, EventStatus, Folder, Limits, Message
from ..policy.pipeline import Evaluation, EventEvaluation, evaluate, evaluate_events
from ..policy.skips import erased_skip, involves
from ..policy.threads import joinable_threads, lookup_ids
from ..policy.visibility import detail_for
from ..ports import (
    CalendarProvider,
    ChangeSet,
    Directory,
    FetchedMessage,
    IdPage,
    MailProvider,
    Scope,
    Store,
)
from ..records import AddressLinks, EventRecord, MessageRecord, Reason, Skip, SyncBatch
from .cursor import ScopeCursor

__all__ = ["CalendarFetcher", "Fetcher", "MailFetcher", "Parts", "Source", "parse_fetched"]

log = logging.getLogger("commlink.sync")


@attrs.frozen(slots=True)
class Parts:
    """What a chunk of fetched items contributes to a ``SyncBatch``."""

    messages: tuple[MessageRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    links: tuple[AddressLinks, ...] = ()
    skipped: tuple[Skip, ...] = ()
    deleted: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    merges: tuple[tuple[str, str], ...] = ()
    fetched: int = 0
    created: int = 0

    @property
    def records_count(self) -> int:
        return len(self.messages) + len(self.events) + len(self.skipped) + len(self.deleted)

    def batch(
        self,
        channel_id: str,
        scope_id: str,
        cursor: ScopeCursor | None,
        generation: int,
        sweep: bool,
    ) -> SyncBatch:
        return SyncBatch(
            channel_id,
            scope_id,
            messages=self.messages,
            events=self.events,
            links=self.links,
            deleted=self.deleted,
            skipped=self.skipped,
            seen=self.seen,
            thread_merges=self.merges,
            cursor=cursor.encode() if cursor is not None else None,
            generation=generation,
            sweep=sweep,
        )


class Source(Protocol):
    """What the engine asks of a provider, mail or calendar alike."""

    def scopes(self, selected: Sequence[Folder], /) -> Sequence[Scope]: ...
    def snapshot(self, scope: Scope, /) -> str: ...
    def list_page(self, scope: Scope, page: str | None, /) -> IdPage: ...
    def changes(self, scope: Scope, cursor: str, /) -> ChangeSet: ...


class Fetcher(Protocol):
    @property
    def source(self) -> Source: ...
    def folders(self) -> Sequence[Folder]: ...
    def process(self, scope: Scope, ids: Sequence[str], folders: Mapping[str, Folder]) -> Parts: ...
    def companions(self, ids: Sequence[str]) -> tuple[str, ...]:
        """Ids stored alongside these provider ids (a message's invitation),
        to be marked seen or deleted with them."""
        ...


@attrs.define
class MailFetcher:
    channel: Channel
    provider: MailProvider
    store: Store
    directory: Directory

    @property
    def source(self) -> Source:
        return self.provider

    def folders(self) -> Sequence[Folder]:
        return self.provider.folders()

    def companions(self, ids: Sequence[str]) -> tuple[str, ...]:
        if not self.channel.settings.sync_invites:
            return ()
        from ..calendar.invites import INVITE_SUFFIX, invite_id

        return tuple(invite_id(i) for i in ids if not i.endswith(INVITE_SUFFIX))

    def process(self, scope: Scope, ids: Sequence[str], folders: Mapping[str, Folder]) -> Parts:
        detail = detail_for(self.channel.settings)
        messages: list[Message] = []
        errors: list[Skip] = []
        returned: set[str] = set()
        for item in self.provider.fetch(scope, ids, detail):
            returned.add(item.provider_id)
            if item.error is not None:
                errors.append(Skip(item.provider_id, Reason.ERROR, item.error))
            elif item.message is not None or item.raw is not None:
                messages.append(parse_fetched(item, detail, self.channel.settings.limits))
            else:
                errors.append(Skip(item.provider_id, Reason.ERROR, "provider returned no content"))
            del item  # its raw bytes go before the provider reads the next message
        vanished = tuple(i for i in ids if i not in returned)
        messages, erased = _without_erased(messages, self.store)
        errors.extend(erased)
        links = self.store.thread_links(self.channel.id, lookup_ids(messages, self.channel.id))
        known_threads, claimed = joinable_threads(links, messages), links.claimed
        verdict, poisoned = _judge(
            messages,
            lambda ms: evaluate(ms, self.channel, folders, self.directory, known_threads, claimed),
            lambda m: m.provider_id,
        )
        errors.extend(poisoned)
        skipped = (*verdict.skipped, *errors)
        parts = Parts(
            messages=verdict.records,
            links=verdict.links,
            skipped=skipped,
            deleted=(*(s.provider_id for s in skipped), *vanished),
            merges=verdict.merges,
            fetched=len(returned),
            created=len(verdict.created),
        )
        if self.channel.settings.sync_invites:
            kept = {r.message.provider_id for r in verdict.records}
            parts = self._with_invitations(parts, [m for m in messages if m.provider_id in kept])
        return parts

    def _with_invitations(self, parts: Parts, kept: Sequence[Message]) -> Parts:
        """Add the events of the kept messages' invitations, judged by the
        calendar policy, each under its message's invitation id."""
        from ..calendar.invites import invitation
        from ..calendar.storable import storable_event

        most = self.channel.settings.limits.max_participants
        events: list[Event] = []
        problems: list[Skip] = []
        for message in kept:
            found = invitation(message)
            if found is None:
                continue
            if found.problem:
                problems.append(
                    Skip(
                        found.provider_id,
                        Reason.INVALID,
                        found.problem,
                        message_id=message.message_id,
                        subject=message.subject,
                    )
                )
            events.extend(storable_event(e, most) for e in found.events)
        if not events and not problems:
            return parts
        verdict, poisoned = (
            _judge(
                events,
                lambda es: evaluate_events(es, self.channel, self.directory),
                lambda e: e.provider_id,
            )
            if events
            else (EventEvaluation(), [])
        )
        left_out = (*verdict.skipped, *poisoned, *problems)
        kept_ids = {r.event.provider_id for r in verdict.records}
        return attrs.evolve(
            parts,
            events=(*parts.events, *verdict.records),
            links=_merged_links(parts.links, verdict.links),
            skipped=(*parts.skipped, *left_out),
            deleted=(
                *parts.deleted,
                *(s.provider_id for s in left_out if s.provider_id not in kept_ids),
            ),
            created=parts.created + len(verdict.created),
        )


@attrs.define
class CalendarFetcher:
    channel: Channel
    provider: CalendarProvider
    store: Store
    directory: Directory

    @property
    def source(self) -> Source:
        return self.provider

    def folders(self) -> Sequence[Folder]:
        return self.provider.calendars()

    def companions(self, ids: Sequence[str]) -> tuple[str, ...]:
        return ()

    def process(self, scope: Scope, ids: Sequence[str], folders: Mapping[str, Folder]) -> Parts:
        from ..calendar.storable import storable_event

        most = self.channel.settings.limits.max_participants
        events: list[Event] = []
        errors: list[Skip] = []
        dropped: list[Skip] = []
        gone: list[str] = []
        returned: set[str] = set()
        for item in self.provider.fetch(scope, ids):
            returned.add(item.provider_id)
            dropped.extend(
                Skip(f"{item.provider_id}#{uid}", Reason.INVALID, code, message_id=uid)
                for uid, code in item.dropped
            )
            if item.error is not None:
                errors.append(Skip(item.provider_id, Reason.ERROR, item.error))
            elif not item.events or _cancelled(item.events):
                gone.append(item.provider_id)
            else:
                events.extend(storable_event(e, most) for e in item.events)
        vanished = tuple(i for i in ids if i not in returned)
        events, erased = _without_erased(events, self.store)
        errors.extend(erased)
        verdict, poisoned = _judge(
            events,
            lambda es: evaluate_events(es, self.channel, self.directory),
            lambda e: e.provider_id,
        )
        errors.extend(poisoned)
        kept = {r.event.provider_id for r in verdict.records}
        judged_out = {e.provider_id for e in events} - kept
        return Parts(
            events=verdict.records,
            links=verdict.links,
            skipped=(*verdict.skipped, *errors, *dropped),
            deleted=(*sorted(judged_out), *gone, *(s.provider_id for s in errors), *vanished),
            fetched=len(returned),
            created=len(verdict.created),
        )


V = TypeVar("V", Evaluation, EventEvaluation)
Item = TypeVar("Item", Message, Event)


def _judge(
    items: Sequence[Item], judge: Callable[[Sequence[Item]], V], key: Callable[[Item], str]
) -> tuple[V, list[Skip]]:
    """Judge a batch; when the policy fails on it (one item trips it), judge
    the items one at a time, skip those it cannot judge, then judge the rest
    together (so directory calls stay batched)."""
    try:
        return judge(items), []
    except CommlinkError:
        raise
    except Exception:
        log.warning("policy failed on a batch; isolating the item", exc_info=True)
    good: list[Item] = []
    poisoned: list[Skip] = []
    for item in items:
        try:
            judge([item])
        except CommlinkError:
            raise
        except Exception as exc:
            poisoned.append(Skip(key(item), Reason.ERROR, f"policy failed: {exc!r}"[:500]))
        else:
            good.append(item)
    return judge(good), poisoned


def _merged_links(
    first: Sequence[AddressLinks], second: Sequence[AddressLinks]
) -> tuple[AddressLinks, ...]:
    """One entry per address key (both come from the same directory)."""
    merged = {link.key: link for link in first}
    merged.update((link.key, link) for link in second)
    return tuple(merged.values())


def parse_fetched(item: FetchedMessage, detail: Detail, limits: Limits | None = None) -> Message:
    """A fetched item as the engine reads it: the message the provider mapped,
    or its raw bytes parsed (with the provider's date, folders and thread
    hint, and the attachments it left out filled in); headers only, with
    ``too-large``, when it was ``oversize``. Raises ``ValueError`` for an
    item with neither."""
    if item.message is not None:
        return _too_large(item.message, item.oversize)
    if item.raw is None:
        raise ValueError(f"{item.provider_id}: the provider returned no content")
    # the parsers are imported with the first fetch: a quiet step needs none
    from ..mime.parse import parse_message
    from ..mime.parts import fill_left_out

    parsed = parse_message(
        item.raw,
        provider_id=item.provider_id,
        detail=detail if item.oversize is None else Detail.METADATA,
        fallback_date=item.date,
        folders=item.folders,
        thread_hint=item.thread_hint,
        limits=limits,
    )
    return _too_large(fill_left_out(parsed, item.left_out, item.size), item.oversize)


def _too_large(message: Message, size: int | None) -> Message:
    """A message the provider fetched headers only because it is larger than
    ``Limits.max_message_bytes``: no body, its real size, a warning."""
    if size is None:
        return message
    return attrs.evolve(
        message,
        body=None,
        snippet="",
        attachments=(),
        calendar_parts=(),
        size=size,
        warnings=(*message.warnings, f"too-large:{size}"),
    )


def _cancelled(events: Sequence[Event]) -> bool:
    """A cancelled series or single event (cancelled overrides are kept)."""
    return any(e.recurrence_id is None and e.status is EventStatus.CANCELLED for e in events)


def _without_erased(items: list[Item], store: Store) -> tuple[list[Item], list[Skip]]:
    """Leave out what involves an erased address (one batched read), before
    the policy can link it or create a contact from it. A calendar object
    goes whole: every event under a provider id that involves one."""
    keys = {a.key for item in items for a in item.addresses() if a.key}
    erased = store.erased(keys) if keys else set()
    if not erased:
        return items, []
    gone = {i.provider_id for i in items if involves(i, erased)}
    skips: dict[str, Skip] = {}
    for item in items:
        if item.provider_id in gone:
            skips.setdefault(item.provider_id, erased_skip(item))
    return [i for i in items if i.provider_id not in gone], list(skips.values())
