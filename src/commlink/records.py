"""Values that cross the ``Store`` and ``Directory`` ports.

Write side: a ``SyncBatch`` (what one sync step commits atomically).
Read side: targets, viewers, pages, thread and event summaries.
CRM side: references to the host's people, companies and opportunities.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Generic, TypeVar

import attrs

from .credentials import Secret
from .model import (
    Address,
    Attachment,
    Attendee,
    Direction,
    Event,
    EventStatus,
    Message,
    Participant,
    Visibility,
    sender_unverified,
)

__all__ = [
    "AddressLinks",
    "ChannelState",
    "ChannelStatus",
    "CompanyRef",
    "Decision",
    "EventRecord",
    "ErasureReport",
    "EventSummary",
    "Lease",
    "Link",
    "MessageRecord",
    "MessageSource",
    "MessageView",
    "NewContact",
    "OAuthToken",
    "PushSubscription",
    "OpportunityRef",
    "Page",
    "PageRequest",
    "PersonRef",
    "Reason",
    "SearchHit",
    "SearchQuery",
    "Skip",
    "SyncBatch",
    "SyncStage",
    "Target",
    "TargetKind",
    "ThreadLinks",
    "ThreadSummary",
    "ThreadView",
    "Viewer",
    "Window",
]

T = TypeVar("T")


class Reason(enum.Enum):
    """Why a message or event was kept or left out."""

    IMPORTED = "imported"
    INTERNAL = "internal"
    GROUP = "group"
    BLOCKED = "blocked"
    EXCLUDED_FOLDER = "excluded_folder"
    INVALID = "invalid"
    ERROR = "error"
    #: a participant's address was erased (``Store.erase_address``): mail
    #: from or to it is never imported again
    ERASED = "erased"
    #: the receiving server found the sender forged, and the channel leaves
    #: such mail out (``ChannelSettings.skip_unverified``)
    UNVERIFIED = "unverified"


@attrs.frozen(slots=True)
class Decision:
    """The policy's verdict on one message or event, with its reason."""

    keep: bool
    reason: Reason
    detail: str = ""


class TargetKind(enum.Enum):
    PERSON = "person"
    COMPANY = "company"
    OPPORTUNITY = "opportunity"


@attrs.frozen(slots=True)
class Target:
    """A CRM record whose email and meetings are asked for."""

    kind: TargetKind
    id: str


@attrs.frozen(slots=True)
class Link:
    """A link from an address to a CRM record."""

    kind: TargetKind
    id: str


@attrs.frozen(slots=True)
class AddressLinks:
    """Every CRM record an address key links to (replaces what was stored)."""

    key: str
    links: tuple[Link, ...] = ()


@attrs.frozen(slots=True)
class PersonRef:
    id: str
    company_id: str | None = None
    name: str = ""


@attrs.frozen(slots=True)
class CompanyRef:
    id: str
    name: str = ""


@attrs.frozen(slots=True)
class OpportunityRef:
    id: str
    company_id: str | None = None
    name: str = ""


@attrs.frozen(slots=True)
class NewContact:
    """A person commlink asks the host to create (contact auto-creation).

    ``company_domain`` is a work domain whose company the person belongs to
    (created if no company owns it or a parent domain); ``company_name`` is
    the name for such a new company (the policy fills it with
    ``commlink.policy.contacts.company_name_for``, so every directory names
    companies alike).
    """

    address: Address
    first_name: str = ""
    last_name: str = ""
    company_domain: str | None = None
    company_name: str = ""

    @property
    def name(self) -> str:
        """The new person's name: first and last name, else the display name,
        else the address."""
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.address.name or self.address.email


@attrs.frozen(slots=True)
class MessageRecord:
    """A message the policy kept, minimised for its channel's visibility.

    ``thread_keys`` are extra ids the store finds the message's thread by
    (a provider's own thread id), indexed like its references.
    """

    message: Message
    thread_id: str
    direction: Direction
    thread_keys: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class EventRecord:
    """An event the policy kept, minimised for its channel's visibility."""

    event: Event


@attrs.frozen(slots=True)
class Skip:
    """A message or event left out, and why (answers "why is it missing?").

    What is kept follows ``commlink.policy.skips.minimise_skip``: mail left
    out as internal, blocked or erased keeps no subject and no sender (its
    ``message_id`` is kept as a digest, so it can still be looked up) unless
    the channel's owner opted in with ``ChannelSettings.skip_details``.
    """

    provider_id: str
    reason: Reason
    detail: str = ""
    message_id: str = ""
    subject: str = ""
    sender: str = ""
    date: datetime | None = None


@attrs.frozen(slots=True)
class ErasureReport:
    """What ``Store.erase_address`` removed for one address.

    ``key`` is the erased address key. ``messages`` and ``events`` count the
    stored items (a channel's provider id in one folder or calendar) removed
    because the address took part in them (sender, recipient, organiser or
    attendee), in every channel; ``skips`` the skip records naming it;
    ``links`` its links to CRM records. ``erased_at`` is when the address was
    first erased (its tombstone: mail from or to it is never imported again).
    """

    key: str
    erased_at: datetime
    messages: int = 0
    events: int = 0
    skips: int = 0
    links: int = 0


@attrs.frozen(slots=True)
class ThreadLinks:
    """The store's threading index for some ids, seen from one channel
    (``Store.thread_links``).

    ``stored`` maps each id that is a stored message's Message-ID to that
    message's thread, whichever channels hold it, and ``held`` names those
    the channel holds a copy of. ``referenced`` maps an id to the thread of
    the oldest of the channel's own copies referencing it (In-Reply-To,
    References or a provider thread node); ``elsewhere`` names the ids that
    copies of other channels reference.
    """

    stored: Mapping[str, str] = attrs.field(factory=dict)
    held: frozenset[str] = frozenset()
    referenced: Mapping[str, str] = attrs.field(factory=dict)
    elsewhere: frozenset[str] = frozenset()

    @property
    def claimed(self) -> frozenset[str]:
        """Every id some stored thread may be named after."""
        return frozenset(self.stored) | frozenset(self.referenced) | self.elsewhere


@attrs.frozen(slots=True)
class SyncBatch:
    """Everything one sync step writes, committed in one transaction.

    Committing the same batch twice leaves the store as after the first.
    ``seen`` lists provider ids known to be present and unchanged (their
    associations get this batch's ``generation``); when ``sweep`` is set,
    the scope's associations of an older generation are deleted after the
    batch is applied (the end of a full resync). ``cursor`` is the
    provider-specific position that covers this batch; ``None`` keeps the
    stored one. ``thread_merges`` maps thread ids to the ids they merge into.
    """

    channel_id: str
    scope_id: str
    messages: tuple[MessageRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    links: tuple[AddressLinks, ...] = ()
    deleted: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()
    seen: tuple[str, ...] = ()
    thread_merges: tuple[tuple[str, str], ...] = ()
    cursor: str | None = None
    generation: int = 0
    sweep: bool = False


class ChannelStatus(enum.Enum):
    """Where a channel stands.

    ``THROTTLED``: the provider asked to slow down; the channel waits until
    ``next_attempt`` and the wait does not count as a failure.
    ``FAILED_AUTH``: credentials were refused; nothing runs until the user
    reconnects (``Runner.reconnected``). ``FAILED``: too many failures in a
    row; retried after the back-off, ``last_error`` says why.
    """

    NOT_SYNCED = "not_synced"
    ONGOING = "ongoing"
    ACTIVE = "active"
    THROTTLED = "throttled"
    FAILED_AUTH = "failed_auth"
    FAILED = "failed"


class SyncStage(enum.Enum):
    FULL_IMPORT = "full_import"
    INCREMENTAL = "incremental"


@attrs.frozen(slots=True)
class ChannelState:
    """A channel's persisted sync status.

    ``aliases`` are the owner's addresses the provider reported (address
    keys, sorted), kept between steps; the configured ones stay in
    ``ChannelSettings.aliases``.
    """

    channel_id: str
    status: ChannelStatus = ChannelStatus.NOT_SYNCED
    stage: SyncStage = SyncStage.FULL_IMPORT
    failures: int = 0
    last_error: str = ""
    next_attempt: datetime | None = None
    last_success: datetime | None = None
    aliases: tuple[str, ...] = attrs.field(default=(), kw_only=True)


@attrs.frozen(slots=True)
class Lease:
    """Who holds a lease (``Store.acquire_lease``) and until when (aware UTC)."""

    holder: str
    expires_at: datetime


@attrs.frozen(slots=True)
class Viewer:
    """The CRM user reading; the owner of a channel sees all it stored."""

    user_id: str


@attrs.frozen(slots=True)
class PageRequest:
    """Keyset paging: ``after`` is the ``next`` of the previous page."""

    limit: int = 50
    after: str | None = None


@attrs.frozen(slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next: str | None = None


@attrs.frozen(slots=True)
class Window:
    """A half-open time range ``[start, end)``."""

    start: datetime
    end: datetime


@attrs.frozen(slots=True)
class ThreadSummary:
    """One email thread in a record's timeline, as the viewer may see it.

    ``subject`` and ``snippet`` are ``None`` where visibility hides them.
    """

    thread_id: str
    participants: tuple[Participant, ...]
    first_at: datetime
    last_at: datetime
    message_count: int
    visibility: Visibility
    subject: str | None = None
    snippet: str | None = None


@attrs.frozen(slots=True)
class MessageView:
    """One message of a thread, as the viewer may see it.

    ``warnings`` are the parse warnings of the copy shown (``Message.warnings``:
    what was repaired, cut or guessed, such as ``text-truncated`` or
    ``too-large:<bytes>``), as stored (see ``stores.common.stored_warnings``).
    A view shown below ``FULL`` keeps only each code, the part before its
    first ``:``. ``body`` and ``html`` (sanitised HTML, see
    ``commlink.mime.html.render_html`` to show it) are set only at ``FULL``.
    """

    message_id: str
    date: datetime
    direction: Direction
    participants: tuple[Participant, ...]
    visibility: Visibility
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def sender_unverified(self) -> bool:
        """Whether the receiving server says the From domain did not send it
        (``Message.sender_unverified``): show it beside the sender."""
        return sender_unverified(self.warnings)


@attrs.frozen(slots=True)
class MessageSource:
    """Where a viewer allowed ``FULL`` content may read a message from: the
    channel of the copy they are shown, that copy's attachments and the
    ``(scope_id, provider_id)`` of each place the channel holds it."""

    channel_id: str
    message_id: str
    locations: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...] = ()


@attrs.frozen(slots=True)
class SearchQuery:
    """A search over synced mail (see ``SearchableStore``).

    ``text`` holds words (all must match) and ``"quoted phrases"``; letters
    and digits make words, everything else separates them, case is
    ignored. An empty ``text`` matches every message the filters allow.
    ``target`` keeps messages of threads on that record's timeline;
    ``window`` keeps messages dated in it; ``participant`` (an address)
    keeps messages it takes part in.
    """

    text: str = ""
    target: Target | None = None
    window: Window | None = None
    participant: str | None = None


@attrs.frozen(slots=True)
class SearchHit:
    """One message found, as the viewer may see it, newest first.

    ``subject`` is ``None`` below ``SUBJECT``. ``snippet`` (``FULL`` only)
    is a short plain-text excerpt of the body around the first match;
    ``highlights`` are ``(start, end)`` character spans of matched words in
    it. Render both as text: they are the sender's words.
    """

    message_id: str
    thread_id: str
    date: datetime
    participants: tuple[Participant, ...]
    visibility: Visibility
    subject: str | None = None
    snippet: str | None = None
    highlights: tuple[tuple[int, int], ...] = ()


@attrs.frozen(slots=True)
class ThreadView:
    """A thread's messages as the viewer may see them, oldest first.

    When the thread was asked for a page, ``next`` resumes after it
    (``PageRequest(after=view.next)``); ``None`` on the last page.
    """

    thread_id: str
    messages: tuple[MessageView, ...]
    next: str | None = None


@attrs.frozen(slots=True)
class EventSummary:
    """One meeting (or occurrence of a series) as the viewer may see it."""

    uid: str
    start: datetime
    end: datetime
    all_day: bool
    status: EventStatus
    visibility: Visibility
    organizer: Attendee | None = None
    attendees: tuple[Attendee, ...] = ()
    recurrence_id: datetime | None = None
    title: str | None = None
    description: str | None = None
    location: str | None = None
    conference_url: str | None = None


@attrs.frozen(slots=True)
class OAuthToken:
    """An OAuth 2.0 grant as a ``TokenStore`` keeps it.

    ``account`` is the mailbox address the grant is for, when the provider
    said (an ID token's ``email``, Graph's ``preferred_username``).
    ``scopes`` are the scopes granted, which may be fewer than asked for.
    """

    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    account: str = ""

    def expired(self, now: datetime, margin_seconds: float = 60.0) -> bool:
        """True when the access token is gone or ends within ``margin_seconds``."""
        if not self.access_token:
            return True
        if self.expires_at is None:
            return False
        return (self.expires_at - now).total_seconds() <= margin_seconds


@attrs.frozen(slots=True)
class PushSubscription:
    """A provider's promise to notify a host endpoint about one resource.

    ``id`` is the provider's subscription id (Graph's GUID, a Google
    Calendar channel id; Gmail has none, so ``gmail:<account>``).
    ``resource`` is what is watched (a Graph resource path, a calendar id,
    a mailbox). ``account`` routes notifications that name the mailbox
    rather than the subscription (Gmail's ``emailAddress``). ``secret`` is
    checked on every notification (Graph's ``clientState``, a Google
    channel token). ``data`` holds provider specifics such as Google's
    ``resourceId`` or the last ``historyId`` seen.
    """

    id: str
    channel_id: str
    provider: str
    resource: str
    expires_at: datetime
    account: str = ""
    secret: Secret | None = None
    data: Mapping[str, str] = attrs.field(factory=dict)
