"""Import decisions: which messages and events a channel keeps, and why.

Every decision carries a ``Reason`` (and a human-readable detail), so a host
can answer "why is this email missing?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import attrs

from ..addresses import (
    blocklist_match,
    in_domains,
    is_free_mail,
    is_role_address,
    normalise_domain,
    normalise_entry,
    parse_address,
)
from ..model import (
    ALWAYS_EXCLUDED_KINDS,
    UNVERIFIED_SENDER,
    Address,
    ChannelSettings,
    Direction,
    Event,
    Folder,
    FolderKind,
    Message,
)
from ..records import Decision, Reason

__all__ = [
    "GROUP_PRECEDENCE",
    "Rules",
    "decide",
    "decide_event",
    "decide_with",
    "direction",
    "direction_with",
    "org_domains",
    "rules_for",
]

#: ``Precedence`` header values that mark bulk or list mail.
GROUP_PRECEDENCE = frozenset({"bulk", "list", "junk"})

IMPORTED = Decision(keep=True, reason=Reason.IMPORTED)


@attrs.frozen(slots=True)
class Rules:
    """Channel settings compiled for fast per-message checks.

    ``own`` holds the owner's and aliases' address keys, ``org`` the
    organisation's ASCII domains and ``blocklist`` the normalised entries.
    """

    own: frozenset[str]
    org: frozenset[str]
    blocklist: frozenset[str]
    sync_internal: bool
    skip_unverified: bool = False

    def others(self, addresses: Iterable[Address]) -> list[Address]:
        """Valid addresses that are not the owner's, in order, without repeats."""
        seen: set[str] = set()
        found: list[Address] = []
        own = self.own
        for a in addresses:
            if a.valid and a.key not in own and a.key not in seen:
                seen.add(a.key)
                found.append(a)
        return found

    def is_internal(self, address: Address) -> bool:
        return in_domains(address.domain, self.org)

    def blocked(self, address: Address) -> str | None:
        """The blocklist entry matching a valid address, if any."""
        return blocklist_match(address.key, self.blocklist) if address.valid else None


def org_domains(settings: ChannelSettings) -> frozenset[str]:
    """The organisation's domains, normalised.

    When none are configured, the owner's domain is used unless it is a
    free-mail domain (a gmail.com owner has no organisation domain).
    """
    return rules_for(settings).org


def rules_for(settings: ChannelSettings) -> Rules:
    """Compile ``settings`` (cached: settings are frozen and hashable)."""
    return _compile(settings)


@lru_cache(maxsize=1024)
def _compile(settings: ChannelSettings) -> Rules:
    own = frozenset(k for k in (parse_address(a).key for a in settings.own_addresses) if k)
    org = frozenset(d for d in (normalise_domain(x) for x in settings.org_domains) if d)
    if not org:
        owner_domain = parse_address(settings.owner).domain
        if owner_domain and not is_free_mail(owner_domain):
            org = frozenset({owner_domain})
    blocklist = frozenset(e for e in (normalise_entry(x) for x in settings.blocklist) if e)
    return Rules(
        own=own,
        org=org,
        blocklist=blocklist,
        sync_internal=settings.sync_internal,
        skip_unverified=settings.skip_unverified,
    )


def decide(message: Message, settings: ChannelSettings, folders: Mapping[str, Folder]) -> Decision:
    """Whether a message is imported, with the reason.

    Checks run in order: excluded folder, invalid (no one to link to),
    blocklist, group/bulk mail, internal-only, a forged sender (with
    ``skip_unverified``); else imported.
    """
    return decide_with(message, settings, rules_for(settings), folders)


def decide_with(
    message: Message, settings: ChannelSettings, rules: Rules, folders: Mapping[str, Folder]
) -> Decision:
    """``decide`` with the compiled rules of ``settings`` (for a caller deciding a batch)."""
    if message.folders:
        excluded = _folder_exclusion(message.folders, settings, folders)
        if excluded is not None:
            return excluded
    addresses = [p.address for p in message.participants]
    if rules.blocklist:
        others = rules.others(addresses)
        if not others:
            return _NO_ONE
        blocked = _blocked(others, rules)
        if blocked is not None:
            return blocked
    elif not _has_other(addresses, rules.own):
        return _NO_ONE
    group = _group_rule(message, rules)
    if group is not None:
        return Decision(False, Reason.GROUP, group)
    if not rules.sync_internal and _all_internal(addresses, rules):
        return _INTERNAL
    if rules.skip_unverified and message.sender_unverified:
        return _unverified(message)
    return IMPORTED


_NO_ONE = Decision(False, Reason.INVALID, "no valid participant other than the owner")
_INTERNAL = Decision(False, Reason.INTERNAL, "every participant is inside the organisation")


def _unverified(message: Message) -> Decision:
    """The skip of a forged sender's mail, naming the check that failed."""
    found = next(w for w in message.warnings if w.startswith(UNVERIFIED_SENDER))
    method = found.partition(":")[2]
    detail = "the receiving server found the sender forged"
    return Decision(False, Reason.UNVERIFIED, f"{detail} ({method}=fail)" if method else detail)


def _has_other(addresses: Iterable[Address], own: frozenset[str]) -> bool:
    """Whether a valid address is not the owner's (``Rules.others`` is not empty)."""
    for a in addresses:  # noqa: SIM110 - a loop costs half of any() with a generator
        if a.valid and a.key not in own:
            return True
    return False


def decide_event(event: Event, settings: ChannelSettings) -> Decision:
    """Whether a calendar event is imported, with the reason."""
    rules = rules_for(settings)
    others = rules.others(event.addresses())
    if not others:
        return Decision(False, Reason.INVALID, "no valid attendee other than the owner")
    blocked = _blocked(others, rules)
    if blocked is not None:
        return blocked
    if not rules.sync_internal and _all_internal(event.addresses(), rules):
        return Decision(False, Reason.INTERNAL, "every attendee is inside the organisation")
    return IMPORTED


def direction(message: Message, settings: ChannelSettings) -> Direction:
    """OUTGOING when the owner or an alias sent the message."""
    return direction_with(message, rules_for(settings))


def direction_with(message: Message, rules: Rules) -> Direction:
    """``direction`` with the compiled rules of the channel's settings."""
    if _sent_by_owner(message, rules):
        return Direction.OUTGOING
    return Direction.INCOMING


def _sent_by_owner(message: Message, rules: Rules) -> bool:
    """Whether the owner sent it: their address in From, and not a forgery
    the receiving server caught (which would otherwise pass the group rules
    and create contacts as the owner's own sent mail does)."""
    sender = message.sender
    return (
        sender is not None
        and sender.valid
        and sender.key in rules.own
        and not message.sender_unverified
    )


def _folder_exclusion(
    folder_ids: tuple[str, ...], settings: ChannelSettings, folders: Mapping[str, Folder]
) -> Decision | None:
    if not folder_ids:
        return None
    resolved = [folders.get(fid) or Folder(fid, fid, FolderKind.CUSTOM) for fid in folder_ids]
    for folder in resolved:
        if folder.kind in ALWAYS_EXCLUDED_KINDS:
            return Decision(False, Reason.EXCLUDED_FOLDER, f"in {folder.kind.value} folder")
    if any(settings.folders.selects(f) for f in resolved):
        return None
    names = ", ".join(sorted(f.name or f.id for f in resolved))
    return Decision(False, Reason.EXCLUDED_FOLDER, f"no selected folder ({names})")


def _blocked(others: list[Address], rules: Rules) -> Decision | None:
    for a in others:
        entry = rules.blocked(a)
        if entry is not None:
            return Decision(False, Reason.BLOCKED, f"{a.key} matches blocklist entry {entry}")
    return None


def _group_rule(message: Message, rules: Rules) -> str | None:
    """The rule that makes a message group mail, or ``None``."""
    if _sent_by_owner(message, rules):
        return None
    sender = message.sender
    if message.list_id.strip():
        return "List-Id header"
    if message.list_unsubscribe.strip():
        return "List-Unsubscribe header"
    precedence = message.precedence.strip().lower()
    if precedence in GROUP_PRECEDENCE:
        return f"Precedence: {precedence}"
    auto = message.auto_submitted.partition(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if sender is not None and sender.valid and is_role_address(sender.key):
        return f"automated sender {sender.key}"
    return None


def _all_internal(addresses: Iterable[Address], rules: Rules) -> bool:
    """Whether there are valid addresses and all are inside the organisation."""
    org = rules.org
    if not org:
        return False
    found = False
    for a in addresses:
        if a.valid:
            if not in_domains(a.key.rpartition("@")[2], org):
                return False
            found = True
    return found
