"""Immutable values that flow through commlink.

Everything here is a frozen ``attrs`` class or an enum: no IO, no behaviour
beyond small derived properties. Providers produce these values, the policy
layer reasons over them and stores persist them.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .errors import ConfigError

__all__ = [
    "Limits",
    "ALWAYS_EXCLUDED_KINDS",
    "Address",
    "Attachment",
    "Attendee",
    "CalendarContactPolicy",
    "Channel",
    "ChannelKind",
    "ChannelSettings",
    "ContactPolicy",
    "Detail",
    "Direction",
    "Event",
    "EventStatus",
    "Folder",
    "FolderKind",
    "FolderSelection",
    "Message",
    "Participant",
    "ResponseStatus",
    "Role",
    "UNVERIFIED_SENDER",
    "Visibility",
    "sender_unverified",
]


class Role(enum.Enum):
    """The header a participant was found in."""

    FROM = "from"
    SENDER = "sender"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    REPLY_TO = "reply_to"


class Direction(enum.Enum):
    """Whether the channel owner sent or received a message."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class FolderKind(enum.Enum):
    """What a folder (or Gmail label) is for."""

    INBOX = "inbox"
    SENT = "sent"
    ARCHIVE = "archive"
    ALL = "all"
    IMPORTANT = "important"
    STARRED = "starred"
    CATEGORY = "category"
    DRAFTS = "drafts"
    SPAM = "spam"
    TRASH = "trash"
    CALENDAR = "calendar"
    CUSTOM = "custom"


#: Folders never imported, whatever the selection says.
ALWAYS_EXCLUDED_KINDS = frozenset({FolderKind.DRAFTS, FolderKind.SPAM, FolderKind.TRASH})


class Visibility(enum.Enum):
    """How much of a channel's mail other CRM users may see.

    The channel owner always sees everything that is stored.
    """

    METADATA = "metadata"
    SUBJECT = "subject"
    FULL = "full"

    @property
    def rank(self) -> int:
        return _VISIBILITY_RANK[self]


_VISIBILITY_RANK = {Visibility.METADATA: 0, Visibility.SUBJECT: 1, Visibility.FULL: 2}


class Detail(enum.Enum):
    """How much a provider fetches: headers only, or the whole message."""

    METADATA = "metadata"
    FULL = "full"


class ContactPolicy(enum.Enum):
    """Which correspondents of a mail channel become new CRM contacts."""

    NONE = "none"
    SENT = "sent"
    SENT_AND_RECEIVED = "sent_and_received"


class CalendarContactPolicy(enum.Enum):
    """Which meeting participants become new CRM contacts."""

    NONE = "none"
    AS_PARTICIPANT = "as_participant"
    AS_ORGANIZER = "as_organizer"
    BOTH = "both"


class ResponseStatus(enum.Enum):
    """An attendee's answer to an invitation (iCalendar PARTSTAT)."""

    NEEDS_ACTION = "needs_action"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"
    DELEGATED = "delegated"


class EventStatus(enum.Enum):
    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class ChannelKind(enum.Enum):
    MAIL = "mail"
    CALENDAR = "calendar"


@attrs.frozen(slots=True)
class Address:
    """A normalised email address.

    ``key`` is the comparison key: lower-cased, with the domain in its ASCII
    (IDNA) form, so ``Foo@Bücher.de`` and ``foo@xn--bcher-kva.de`` share one
    key. ``email`` is the form to show (Unicode domain). An address that
    failed validation has ``valid=False``, an empty ``key`` and keeps the
    header text in ``raw``; it is never matched, blocked or created.
    """

    key: str
    email: str
    name: str = ""
    valid: bool = True
    raw: str = ""

    @property
    def domain(self) -> str:
        """The ASCII (IDNA) domain, lower-cased; empty when invalid."""
        return self.key.rpartition("@")[2]

    @property
    def local(self) -> str:
        return self.key.rpartition("@")[0]


@attrs.frozen(slots=True)
class Participant:
    address: Address
    role: Role


@attrs.frozen(slots=True)
class Attachment:
    """Metadata of an attachment; its content is never stored.

    ``part`` locates the part in its message: the MIME section path as IMAP
    numbers it (``"2"``, ``"1.3"``; ``""`` when unknown), which is how its
    content is fetched on demand (see ``commlink.attachments``).
    """

    filename: str
    content_type: str
    size: int
    inline: bool = False
    content_id: str = ""
    part: str = ""


@attrs.frozen(slots=True)
class Folder:
    """A mail folder, Gmail label or calendar of a channel."""

    id: str
    name: str
    kind: FolderKind = FolderKind.CUSTOM
    parent: str | None = None


#: The warning of a message whose From domain, by the receiving server's
#: checks, did not send it (``sender-unverified:<method>``).
UNVERIFIED_SENDER = "sender-unverified"


def sender_unverified(warnings: tuple[str, ...]) -> bool:
    """Whether these warnings (a message's, or a stored copy's as a viewer
    sees them) say the From domain did not send the message."""
    return bool(warnings) and any(w.startswith(UNVERIFIED_SENDER) for w in warnings)


@attrs.frozen(slots=True)
class Message:
    """One email as read from a provider, before policy.

    ``provider_id`` identifies it within its channel; ``message_id`` is the
    RFC 5322 Message-ID without angle brackets (synthesised from a content
    hash when the header is missing, with ``synthetic_id`` set).
    ``body`` is ``None`` when only metadata was fetched. ``html`` is the
    message's HTML part, sanitised (``mime.html.sanitize_html``), or ``None``
    (no HTML part, metadata only, or ``Limits.max_html_chars`` of 0).
    """

    provider_id: str
    message_id: str
    date: datetime
    subject: str = ""
    participants: tuple[Participant, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    thread_hint: str | None = None
    folders: tuple[str, ...] = ()
    body: str | None = None
    html: str | None = None
    snippet: str = ""
    attachments: tuple[Attachment, ...] = ()
    calendar_parts: tuple[str, ...] = ()
    list_id: str = ""
    list_unsubscribe: str = ""
    precedence: str = ""
    auto_submitted: str = ""
    size: int = 0
    synthetic_id: bool = False
    warnings: tuple[str, ...] = ()

    def addresses(self, *roles: Role) -> tuple[Address, ...]:
        """Addresses of the given roles (all roles when none given)."""
        return tuple(p.address for p in self.participants if not roles or p.role in roles)

    @property
    def sender(self) -> Address | None:
        for p in self.participants:
            if p.role is Role.FROM:
                return p.address
        return None

    @property
    def sender_unverified(self) -> bool:
        """Whether the receiving server says the From domain did not send it
        (the warning ``sender-unverified``, see ``mime.authres``)."""
        return sender_unverified(self.warnings)


@attrs.frozen(slots=True)
class Attendee:
    address: Address
    status: ResponseStatus = ResponseStatus.NEEDS_ACTION
    organizer: bool = False
    optional: bool = False


@attrs.frozen(slots=True)
class Event:
    """One calendar event (a series master, a single event or an override).

    ``uid`` is the iCalendar UID; ``recurrence_id`` is set on an overridden
    instance of a series (``None`` for the master or a single event).
    ``recurrence`` holds the RRULE/RDATE/EXDATE lines of a series master.
    """

    provider_id: str
    uid: str
    start: datetime
    end: datetime
    title: str = ""
    description: str = ""
    location: str = ""
    all_day: bool = False
    timezone: str = ""
    recurrence_id: datetime | None = None
    recurrence: tuple[str, ...] = ()
    status: EventStatus = EventStatus.CONFIRMED
    organizer: Attendee | None = None
    attendees: tuple[Attendee, ...] = ()
    conference_url: str = ""
    calendar_id: str = ""
    sequence: int = 0
    updated: datetime | None = None
    warnings: tuple[str, ...] = ()

    def addresses(self) -> tuple[Address, ...]:
        found = [a.address for a in self.attendees]
        if self.organizer is not None:
            found.append(self.organizer.address)
        return tuple(found)


@attrs.frozen(slots=True)
class FolderSelection:
    """Which folders of a channel are imported.

    Entries are folder ids or folder kind values (``"inbox"``, ``"sent"``,
    ``"archive"``, ...). An empty ``include`` means every folder. Spam,
    trash and drafts are always excluded.
    """

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    def selects(self, folder: Folder) -> bool:
        if folder.kind in ALWAYS_EXCLUDED_KINDS:
            return False
        tokens = (folder.id, folder.kind.value)
        if any(t in self.exclude for t in tokens):
            return False
        return not self.include or any(t in self.include for t in tokens)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ConfigError(f"must be at least 1, not {value}", field=attribute.name)


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ConfigError(f"must be at least 0, not {value}", field=attribute.name)


@attrs.frozen(slots=True)
class Limits:
    """How much one channel may cost: every value an outsider's mail can
    drive has a bound here (see ``docs/limits.md``).

    ``max_message_bytes``: a larger message (by the provider's size, before
    fetching) is imported with its headers only and the warning
    ``too-large``. ``fetch_batch_bytes``: message bytes held in memory by one
    fetch request. ``max_text_chars``: stored body text; longer text is cut
    (warning ``text-truncated``). ``max_participants``: participants stored
    per message (warning ``participants-truncated``).
    ``max_contacts_per_message``: contacts auto-created from one message;
    mail with more than ``max_recipients_for_contacts`` recipients creates
    none (fan-out mail is not a relationship). ``max_attachment_bytes``: the
    decoded size of an attachment fetched on demand; a larger one is refused.
    ``max_html_chars``: the sanitised HTML kept (``Message.html``); longer HTML
    is cut before it is sanitised (warning ``html-truncated``); ``0`` keeps
    no HTML.
    """

    max_message_bytes: int = attrs.field(default=25 * 2**20, validator=_positive)
    fetch_batch_bytes: int = attrs.field(default=32 * 2**20, validator=_positive)
    max_text_chars: int = attrs.field(default=256 * 1024, validator=_positive)
    max_participants: int = attrs.field(default=500, validator=_positive)
    max_contacts_per_message: int = attrs.field(default=20, validator=_positive)
    max_recipients_for_contacts: int = attrs.field(default=50, validator=_positive)
    max_attachment_bytes: int = attrs.field(default=50 * 2**20, validator=_positive)
    max_html_chars: int = attrs.field(default=2**20, validator=_not_negative)


@attrs.frozen(slots=True, cache_hash=True)
class ChannelSettings:
    """What a channel may keep and show.

    ``owner`` and ``aliases`` are address keys of the mailbox owner;
    ``org_domains`` are the organisation's domains (subdomains count);
    ``blocklist`` entries are addresses or ``@domain`` (subdomains too).
    ``skip_details``: skip records of mail left out as internal or blocked
    keep its subject, sender and the rule that matched (shown to the
    channel's owner only); off by default, when they keep only the provider
    id, the reason, the date and a generic detail.
    ``skip_unverified``: leave out mail the policy would keep but whose
    receiving server found its sender forged (``Message.sender_unverified``:
    DMARC, or Exchange Online's composite authentication, failed), with the
    skip reason ``unverified``; off by default, when such mail is imported
    and marked.
    """

    owner: str
    aliases: frozenset[str] = frozenset()
    org_domains: frozenset[str] = frozenset()
    visibility: Visibility = Visibility.FULL
    contact_policy: ContactPolicy = ContactPolicy.SENT
    calendar_contact_policy: CalendarContactPolicy = CalendarContactPolicy.AS_PARTICIPANT
    folders: FolderSelection = FolderSelection()
    sync_internal: bool = False
    blocklist: frozenset[str] = frozenset()
    create_companies: bool = True
    sync_invites: bool = False
    limits: Limits = Limits()
    skip_details: bool = False
    skip_unverified: bool = False

    @property
    def own_addresses(self) -> frozenset[str]:
        return self.aliases | {self.owner}


@attrs.frozen(slots=True)
class Channel:
    """A connected mailbox or calendar owned by one CRM user."""

    id: str
    user_id: str
    kind: ChannelKind
    provider: str
    settings: ChannelSettings
