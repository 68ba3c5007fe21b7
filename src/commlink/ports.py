"""The ports: what providers, stores and host directories must offer.

They are ``typing.Protocol``s, so a host implements them without inheriting
from anything. Every call is batched: nothing here is called per message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs

from .model import Attachment, Channel, ChannelKind, Detail, Event, Folder, Message
from .records import (
    AddressLinks,
    ChannelState,
    CompanyRef,
    ErasureReport,
    EventSummary,
    Lease,
    MessageSource,
    NewContact,
    OAuthToken,
    OpportunityRef,
    Page,
    PageRequest,
    PersonRef,
    PushSubscription,
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

__all__ = [
    "AliasSource",
    "AssociationCounter",
    "AttachmentSource",
    "CalendarProvider",
    "ChangeSet",
    "Directory",
    "FetchedEvent",
    "FetchedMessage",
    "IdPage",
    "LeaseReader",
    "MailProvider",
    "MessageSources",
    "PushSource",
    "Scope",
    "ScopeWatcher",
    "SearchableStore",
    "Store",
    "SubscriptionStore",
    "TokenStore",
    "Warmable",
]


@attrs.frozen(slots=True)
class Scope:
    """A unit of sync with its own cursor: a folder, a calendar or a mailbox."""

    id: str
    folder: Folder | None = None


@attrs.frozen(slots=True)
class IdPage:
    """One page of a full listing, newest first; ``next`` resumes it."""

    ids: tuple[str, ...]
    next: str | None = None


@attrs.frozen(slots=True)
class ChangeSet:
    """What changed since a cursor.

    ``complete`` is false when the provider has more changes to page
    through: call ``changes`` again with ``cursor``.
    """

    upserted: tuple[str, ...]
    deleted: tuple[str, ...]
    cursor: str
    complete: bool = True


@attrs.frozen(slots=True)
class FetchedMessage:
    """A message as a provider returns it.

    Either ``raw`` RFC 5322 bytes (headers only when fetched with
    ``Detail.METADATA``) or an already mapped ``message``; ``error`` is set
    when the provider could not return it (it is skipped with that reason).
    ``folders``, ``thread_hint`` and ``date`` come from the provider's own
    metadata and win over what the headers say. ``oversize`` is the size in
    bytes of a message larger than ``Limits.max_message_bytes``: ``raw``
    then holds its headers only, and it is imported with the warning
    ``too-large:<bytes>``. ``left_out`` names the file attachments whose
    content ``raw`` leaves out (their parts are empty), as (section, decoded
    size) pairs; ``size`` is then the whole message's size at the provider.
    """

    provider_id: str
    raw: bytes | None = None
    message: Message | None = None
    folders: tuple[str, ...] = ()
    thread_hint: str | None = None
    date: datetime | None = None
    error: str | None = None
    oversize: int | None = None
    left_out: tuple[tuple[str, int], ...] = ()
    size: int | None = None


@attrs.frozen(slots=True)
class FetchedEvent:
    """One calendar object: a single event, or a series with its overrides.

    ``dropped`` names the VEVENTs of the object that could not be used, as
    ``(uid, reason)`` pairs, when the rest of it could.
    """

    provider_id: str
    events: tuple[Event, ...] = ()
    error: str | None = None
    dropped: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class MailProvider(Protocol):
    """A mailbox: IMAP, Gmail, Microsoft Graph, EWS, mbox/Maildir files."""

    def folders(self) -> Sequence[Folder]: ...

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """The scopes to sync for the selected folders (Gmail: one)."""
        ...

    def snapshot(self, scope: Scope) -> str:
        """A cursor taken before a full listing starts."""
        ...

    def list_page(self, scope: Scope, page: str | None) -> IdPage: ...

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """Changes since ``cursor``; raises ``CursorExpired`` when it is stale."""
        ...

    def fetch(
        self, scope: Scope, ids: Sequence[str], detail: Detail
    ) -> Iterator[FetchedMessage]: ...

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """Push/IDLE wake-ups for a scope, or ``None`` when not supported."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ScopeWatcher(Protocol):
    """A provider that watches many scopes at once (IMAP NOTIFY, or IDLE on
    several connections; EWS streaming notifications for many folders).

    The watch holds connections of its own, so the provider may be closed
    while it runs. Its iterator yields the id of each scope that changed
    (``""`` when the server does not say which) and ends when the
    connection is lost; the caller then polls, or watches again later.
    """

    def watch_scopes(self, scopes: Sequence[Scope]) -> AbstractContextManager[Iterator[str]] | None:
        """Wake-ups for these scopes, or ``None`` when the server offers no push."""
        ...


@runtime_checkable
class CalendarProvider(Protocol):
    """A calendar source: CalDAV, Google Calendar, Graph, EWS, .ics files."""

    def calendars(self) -> Sequence[Folder]: ...

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]: ...

    def snapshot(self, scope: Scope) -> str: ...

    def list_page(self, scope: Scope, page: str | None) -> IdPage: ...

    def changes(self, scope: Scope, cursor: str) -> ChangeSet: ...

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]: ...

    def close(self) -> None: ...


@runtime_checkable
class Warmable(Protocol):
    """A provider that can start the first round trips of its next sync
    (discovery) in the background, so they overlap the caller's own
    start-up, e.g. opening its store. ``warm`` returns at once; the
    provider's next listing uses the answer (raising its error, if it
    failed), or asks again if it is stale."""

    def warm(self) -> None: ...


@runtime_checkable
class AliasSource(Protocol):
    """A provider that knows the mailbox owner's other addresses (Gmail
    send-as, Graph proxy addresses, EWS ``ResolveNames``).

    The sync engine asks when it lists folders and treats what it gets as
    untrusted: invalid, overlong and surplus entries are dropped.
    """

    def aliases(self) -> Sequence[str]: ...


@runtime_checkable
class AttachmentSource(Protocol):
    """A provider that fetches an attachment's content on demand.

    ``attachments`` are the message's stored attachments and ``index`` the
    one wanted (a provider that names attachments its own way matches them
    by position, name and type). Yields the decoded content in chunks;
    raises ``AttachmentTooLarge`` past ``max_bytes`` and ``NotFound`` when
    the message or the part is gone. Nothing is stored.
    """

    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]: ...


@runtime_checkable
class PushSource(Protocol):
    """A provider that notifies a host's HTTPS endpoint (Gmail through
    Pub/Sub, Google Calendar channels, Graph subscriptions).

    Where the notifications go (the notification URL, the Pub/Sub topic) is
    the provider's own configuration. ``PushKeeper`` (``commlink.sync.push``)
    drives these calls and keeps the results in a ``SubscriptionStore``.
    """

    def push_resources(self, scopes: Sequence[Scope]) -> Sequence[str]:
        """The resources to watch for these scopes (Gmail: the mailbox, one;
        Graph: one per folder or calendar)."""
        ...

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        """Create a subscription, or renew ``current``; the result may carry a
        new id (Google Calendar channels cannot be extended, only replaced)."""
        ...

    def unsubscribe(self, subscription: PushSubscription) -> None:
        """Stop notifications; one already gone at the provider is not an error."""
        ...


@runtime_checkable
class TokenStore(Protocol):
    """Where OAuth grants live: the host's vault, or the reference SQL table.

    Every refresh and every rotated refresh token is saved through it, so a
    grant survives restarts and is shared by the processes using it. ``key``
    names one connected account (by default the channel id).
    """

    def load_token(self, key: str) -> OAuthToken | None: ...

    def save_token(self, key: str, token: OAuthToken) -> None: ...

    def delete_token(self, key: str) -> None: ...


@runtime_checkable
class SubscriptionStore(Protocol):
    """Persisted push subscriptions, so that renewals and routing survive restarts."""

    def save_subscription(self, subscription: PushSubscription) -> None:
        """Insert or replace (by ``id``)."""
        ...

    def subscription(self, subscription_id: str) -> PushSubscription | None: ...

    def subscriptions(
        self,
        *,
        channel_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        expiring_before: datetime | None = None,
    ) -> Sequence[PushSubscription]:
        """Subscriptions matching every filter given (all of them without one)."""
        ...

    def delete_subscription(self, subscription_id: str) -> None: ...


@runtime_checkable
class Directory(Protocol):
    """The host CRM's people, companies and opportunities.

    commlink asks with address keys (``Address.key``) and ASCII domains,
    lower-cased. Matching is case-insensitive and by IDNA 2008 whatever form
    the CRM holds (compare with ``commlink.addresses.address_key`` and
    ``normalise_domain``); answers are keyed by the caller's input.
    ``commlink.testing.directory_conformance`` checks an implementation.
    """

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        """The person holding each address, for the addresses someone holds."""
        ...

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        """The company owning each domain exactly (parents are asked for separately)."""
        ...

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        """Open opportunities keyed by the company or person id they belong to
        (a person's are those where they are a point of contact)."""
        ...

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        """Create people (and their companies); returns them by address key.

        An address someone already holds returns that person, and a contact
        given twice is created once. A ``company_domain`` links the person to
        the company owning it, created if none does; never for a free-mail
        domain.
        """
        ...


@runtime_checkable
class Store(Protocol):
    """Where commlink keeps what it synced; hosts may implement their own."""

    # channels and sync state
    def save_channel(self, channel: Channel) -> None:
        """Save a channel. A change to a stored channel applies to what it
        stored at once, in the same transaction: blocklist entries it adds
        remove the channel's matching mail and events (as
        ``delete_matching``); a lower visibility minimises the channel's
        stored copies to the new level (``policy.visibility.minimise_message``
        and ``minimise_event``); turning ``skip_details`` off strips the
        details of its skip records (``policy.skips.minimise_skip``)."""
        ...

    def channel(self, channel_id: str) -> Channel | None: ...

    def channels(self) -> Sequence[Channel]: ...

    def remove_channel(self, channel_id: str) -> None:
        """Forget a channel and everything only it contributed: its copies
        (with their participants, references, events and attendees), skip
        records, cursors, state, leases (its queue marker
        ``"<channel id>#queued"`` included) and the links of addresses no
        stored copy holds any more."""
        ...

    def channel_state(self, channel_id: str) -> ChannelState | None: ...

    def channel_states(self) -> Mapping[str, ChannelState]:
        """Every stored channel state by channel id, in one read (dispatchers)."""
        ...

    def save_channel_state(self, state: ChannelState) -> None: ...

    def acquire_lease(self, channel_id: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew the channel's lease; a lease past its TTL is taken over."""
        ...

    def release_lease(self, channel_id: str, holder: str) -> None: ...

    # the write side
    def commit(self, batch: SyncBatch) -> None:
        """Apply a batch atomically and idempotently; raises ``InvalidInput``
        (writing nothing) for a malformed batch.

        Skip records are kept as the channel's settings allow
        (``policy.skips.minimise_skip``); a deleted provider id takes its
        skip record with it (unless the batch records a new one). Records
        in which an erased address takes part are not stored: they are
        recorded as skips with ``Reason.ERASED``, and links of erased
        addresses are dropped."""
        ...

    def cursor(self, channel_id: str, scope_id: str) -> str | None: ...

    def scope_ids(self, channel_id: str) -> Sequence[str]:
        """Scopes with a cursor or stored associations."""
        ...

    def drop_scope(self, channel_id: str, scope_id: str) -> None:
        """Delete a scope's associations and cursor (a deselected folder)."""
        ...

    def known_ids(self, channel_id: str, scope_id: str, ids: Collection[str]) -> set[str]: ...

    def threads_by_message_ids(self, message_ids: Collection[str]) -> Mapping[str, str]:
        """Thread ids of stored messages with these Message-IDs, and of
        stored messages that reference them."""
        ...

    def thread_links(self, channel_id: str, message_ids: Collection[str]) -> ThreadLinks:
        """The threads these ids lead to, seen from one channel: what a
        batch of the channel may join (``policy.threads.joinable_threads``).

        Stored messages with these Message-IDs (with whether the channel
        holds a copy of each), the threads of the channel's own copies that
        reference them, and which of them other channels' copies reference."""
        ...

    def linked_addresses(self, target: Target) -> set[str]:
        """Address keys currently linked to a CRM record."""
        ...

    def stored_addresses(self, keys: Collection[str] | None = None) -> set[str]:
        """Address keys of stored participants and attendees (among ``keys``)."""
        ...

    def relink(self, changes: Sequence[AddressLinks]) -> None:
        """Replace the links of these address keys."""
        ...

    def delete_matching(self, channel_id: str, entries: Collection[str]) -> int:
        """Remove the channel's messages whose sender or participants match
        blocklist entries (addresses or ``@domain``); returns how many."""
        ...

    # the read side (visibility is applied here)
    def timeline(
        self, target: Target, viewer: Viewer, page: PageRequest = ...
    ) -> Page[ThreadSummary]: ...

    def thread(
        self, thread_id: str, viewer: Viewer, page: PageRequest | None = None
    ) -> ThreadView | None:
        """A thread's messages as ``viewer`` may see them, oldest first (by
        the shown copy's date, then Message-ID); ``None`` for a thread with no
        stored message. With ``page``: at most ``page.limit`` messages after
        ``page.after``, and ``ThreadView.next`` to resume (``None`` on the
        last page); the pages together are the whole thread."""
        ...

    def events(
        self, target: Target, viewer: Viewer, window: Window, page: PageRequest = ...
    ) -> Page[EventSummary]: ...

    def skips(
        self, channel_id: str, viewer: Viewer, message_id: str | None = None
    ) -> Sequence[Skip]:
        """Why messages of a channel were left out (optionally one Message-ID),
        as ``viewer`` may see it (``policy.skips.visible_skips``): the
        channel's owner sees the records as kept, anyone else only reasons,
        dates and ids."""
        ...

    # erasure (right to erasure: GDPR Art. 17)
    def erase_address(self, address: str) -> ErasureReport:
        """Remove an address and everything only it brought, in every
        channel: stored mail and events it took part in (the whole channel
        copy), skip records naming it and its links; then keep a tombstone
        so that mail from or to it is never imported again (``commit``
        records such mail as skipped with ``Reason.ERASED``). Raises
        ``InvalidInput`` for an invalid address."""
        ...

    def erased(self, keys: Collection[str]) -> set[str]:
        """Those of these address keys that were erased, in one read (the
        sync side may ask before running the policy)."""
        ...


@runtime_checkable
class MessageSources(Protocol):
    """A store that tells where a viewer may fetch a message's attachments
    from (both built-in stores implement it)."""

    def message_source(
        self, thread_id: str, message_id: str, viewer: Viewer
    ) -> MessageSource | None:
        """The copy of the message (of that thread) the viewer is shown, when
        shown in ``FULL``; ``None`` otherwise (not there, or not ``FULL``)."""
        ...


@runtime_checkable
class SearchableStore(Protocol):
    """A store that can search what it synced; both reference stores do.

    ``commlink.testing.conformance_search.SearchConformance`` checks an
    implementation.
    """

    def search(
        self, query: SearchQuery, viewer: Viewer, page: PageRequest = ...
    ) -> Page[SearchHit]:
        """Messages matching ``query``, newest first (then by Message-ID,
        descending), as ``viewer`` may see them.

        Each message is judged on the one copy the viewer sees (the copy
        ``Store.thread`` shows), and its words count only where that copy's
        visibility shows them: participants' names and addresses always,
        the subject from ``SUBJECT``, the body at ``FULL``. Words and
        limits are those of ``commlink.stores.search_terms``. Raises
        ``InvalidInput`` for a query past those limits, a bad page token or
        participant address, or a naive window.
        """
        ...


@runtime_checkable
class LeaseReader(Protocol):
    """A store that tells who holds leases and until when; every built-in
    store does. ``contrib.celery``'s ``dispatch`` uses it to queue a channel
    again whose task message the broker lost (a store without it leaves
    such a channel until its queue marker expires)."""

    def held_leases(self, keys: Collection[str]) -> Mapping[str, Lease]:
        """The leases among ``keys`` that are held now (not expired), by key,
        in one read per few thousand keys."""
        ...


@runtime_checkable
class AssociationCounter(Protocol):
    """A store that can count what a channel holds; ``SyncEngine`` uses it to
    refuse a sweep that would remove too much (``max_sweep_share``). Both
    built-in stores implement it; a store without it gets only the engine's
    empty-listing check."""

    def count_associations(
        self, channel_id: str, scope_id: str | None = None, *, kind: ChannelKind | None = None
    ) -> int:
        """Provider ids stored for the channel (or one of its scopes): of
        messages for ``ChannelKind.MAIL``, of calendar objects for
        ``ChannelKind.CALENDAR`` (a mail channel's invitations among them),
        of both for ``None``."""
        ...
