"""Contact auto-creation: which correspondents become new CRM people, and their names."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Sequence

from ..addresses import is_free_mail, is_role_address, parse_address
from ..model import (
    Address,
    CalendarContactPolicy,
    ChannelSettings,
    ContactPolicy,
    Direction,
    Event,
    Message,
    Role,
)
from ..records import NewContact
from .filters import Rules, rules_for

__all__ = [
    "company_name_for",
    "contacts_to_create",
    "event_contacts_to_create",
    "names_for",
    "qualifies",
]

_SENT_ROLES = (Role.TO, Role.CC, Role.BCC)
_RECEIVED_ROLES = (Role.FROM, Role.CC, Role.TO)
_LOCAL_SEPARATORS = re.compile(r"[._\-]+")
_SPACES = re.compile(r"\s+")
_QUOTES = "\"'`\u2018\u2019\u201c\u201d"
_WORD_SEPARATORS = re.compile(r"[-_]+")
# Second-level labels under a country code that name no organisation (acme.co.uk).
_GENERIC_SECOND_LEVEL = frozenset(
    {"ac", "co", "com", "edu", "gov", "ltd", "ne", "net", "or", "org", "plc"}
)


def contacts_to_create(
    items: Iterable[tuple[Message, Direction]],
    settings: ChannelSettings,
    known: Collection[str],
) -> list[NewContact]:
    """New contacts per ``settings.contact_policy``, deduplicated, in first-seen order.

    ``SENT``: recipients of outgoing mail; ``SENT_AND_RECEIVED``: also the
    sender and visible recipients of incoming mail. Never the owner, an
    alias, an internal, automated, blocklisted or invalid address, nor a key
    in ``known`` (already a person); nothing from mail whose sender the
    receiving server did not verify (``Message.sender_unverified``).
    """
    policy = settings.contact_policy
    if policy is ContactPolicy.NONE:
        return []
    limits = settings.limits
    picked: list[Address] = []
    for message, direction in items:
        if message.sender_unverified:
            continue  # a forged sender, and whoever the forger wrote to
        if direction is Direction.OUTGOING:
            found = message.addresses(*_SENT_ROLES)
        elif policy is ContactPolicy.SENT_AND_RECEIVED:
            found = message.addresses(*_RECEIVED_ROLES)
        else:
            continue
        recipients = len(message.addresses(Role.TO, Role.CC, Role.BCC))
        if _crowd(recipients, message.warnings, "participants", limits.max_recipients_for_contacts):
            continue  # mail to a crowd is not a relationship with each of them
        mine = _new_contacts(found, settings, known)[: limits.max_contacts_per_message]
        picked.extend(c.address for c in mine)
    return _new_contacts(picked, settings, known)


def _crowd(count: int, warnings: Sequence[str], cut: str, most: int) -> bool:
    """Whether a message's recipients or a meeting's attendees number more
    than ``most``, counting those cut before (``<cut>-truncated:<total>``)."""
    marker = f"{cut}-truncated:"
    return count > most or any(w.startswith(marker) for w in warnings)


def event_contacts_to_create(
    events: Iterable[Event], settings: ChannelSettings, known: Collection[str]
) -> list[NewContact]:
    """New contacts from meetings per ``settings.calendar_contact_policy``.

    ``AS_PARTICIPANT``: attendees other than the organizer;
    ``AS_ORGANIZER``: the organizer; ``BOTH``: everyone. Same exclusions and
    limits as ``contacts_to_create``: a meeting with more attendees than
    ``Limits.max_recipients_for_contacts`` creates no contact, and one
    meeting at most ``Limits.max_contacts_per_message``.
    """
    policy = settings.calendar_contact_policy
    if policy is CalendarContactPolicy.NONE:
        return []
    want_attendees = policy in (CalendarContactPolicy.AS_PARTICIPANT, CalendarContactPolicy.BOTH)
    want_organizer = policy in (CalendarContactPolicy.AS_ORGANIZER, CalendarContactPolicy.BOTH)
    limits = settings.limits
    picked: list[Address] = []
    for event in events:
        if _crowd(
            len(event.attendees), event.warnings, "attendees", limits.max_recipients_for_contacts
        ):
            continue  # as for mail: a crowd is not a relationship with each of them
        found: list[Address] = []
        organizer = event.organizer.address if event.organizer is not None else None
        for attendee in event.attendees:
            is_organizer = attendee.organizer or (
                organizer is not None and organizer.valid and attendee.address.key == organizer.key
            )
            if (want_organizer and is_organizer) or (want_attendees and not is_organizer):
                found.append(attendee.address)
        if want_organizer and organizer is not None:
            found.append(organizer)
        mine = _new_contacts(found, settings, known)[: limits.max_contacts_per_message]
        picked.extend(c.address for c in mine)
    return _new_contacts(picked, settings, known)


def qualifies(address: Address, settings: ChannelSettings) -> bool:
    """Whether an address may become a new contact (ignoring who already exists)."""
    return _qualifies(address, rules_for(settings))


def _qualifies(address: Address, rules: Rules) -> bool:
    return (
        address.valid
        and bool(address.key)
        and address.key not in rules.own
        and not rules.is_internal(address)
        and not is_role_address(address.key)
        and rules.blocked(address) is None
    )


def _new_contacts(
    addresses: Iterable[Address], settings: ChannelSettings, known: Collection[str]
) -> list[NewContact]:
    rules = rules_for(settings)
    chosen: dict[str, Address] = {}
    for address in addresses:
        if address.key in known or not _qualifies(address, rules):
            continue
        current = chosen.get(address.key)
        # Keep the first occurrence, unless a later one brings a display name.
        if current is None or (not _clean_name(current) and _clean_name(address)):
            chosen[address.key] = address
    result = []
    for address in chosen.values():
        first, last = names_for(address)
        domain = address.domain
        company = domain if settings.create_companies and not is_free_mail(domain) else None
        result.append(
            NewContact(
                address=address,
                first_name=first,
                last_name=last,
                company_domain=company,
                company_name=company_name_for(company) if company else "",
            )
        )
    return result


def company_name_for(domain: str) -> str:
    """The name of a company known only by its domain (one rule for every directory).

    The label naming the organisation, hyphens as spaces, words capitalised,
    IDNA labels in Unicode: ``acme-robotics.com``, ``eu.acme-robotics.com``
    and ``acme-robotics.co.uk`` give ``"Acme Robotics"``; ``xn--bcher-kva.de``
    gives ``"Bücher"``.
    """
    labels = [label for label in domain.strip().strip(".").lower().split(".") if label]
    if not labels:
        return ""
    index = -2 if len(labels) > 1 else -1
    if len(labels) > 2 and len(labels[-1]) == 2 and labels[-2] in _GENERIC_SECOND_LEVEL:
        index = -3
    label = labels[index]
    if label.startswith("xn--"):
        with contextlib.suppress(UnicodeError):
            label = label[4:].encode("ascii").decode("punycode")
    words = [w[:1].upper() + w[1:] for w in _WORD_SEPARATORS.split(label) if w]
    return " ".join(words) or domain


def names_for(address: Address) -> tuple[str, str]:
    """First and last name from the display name, else from the local part.

    ``"Smith, John"`` and ``"John Smith"`` give ``("John", "Smith")``;
    ``john.smith@`` gives the same; ``jsmith@`` gives ``("Jsmith", "")``.
    """
    name = _clean_name(address)
    if name:
        if "," in name:
            last, _, first = name.partition(",")
            return _SPACES.sub(" ", first).strip(), _SPACES.sub(" ", last).strip()
        first, _, last = name.partition(" ")
        return first, last.strip()
    return _names_from_local(address.local)


def _clean_name(address: Address) -> str:
    name = _SPACES.sub(" ", address.name).strip().strip(_QUOTES).strip()
    if not name:
        return ""
    if "@" in name:
        # An address used as a display name ("john@x.com" <john@x.com>) names no one.
        candidate = parse_address(name.strip("<>"))
        if candidate.valid or "@" in name.split(" ")[0]:
            return ""
    if "," in name and not name.replace(",", "").strip():
        return ""
    return name


def _names_from_local(local: str) -> tuple[str, str]:
    local = local.strip('"').split("+", 1)[0]
    parts = [p for p in _LOCAL_SEPARATORS.split(local) if p and not p.isdigit()]
    if not parts:
        return "", ""
    words = [p[:1].upper() + p[1:] for p in parts]
    return words[0], " ".join(words[1:])
