"""Owner aliases reported by a provider, cleaned and merged with configured ones.

What a provider reports is untrusted: a mailbox can carry thousands of
proxy addresses, and a hostile or broken server can send anything. Only
valid addresses of sane length are kept, at most ``MAX_ALIASES`` of them,
and the configured aliases always stay in effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import attrs

from ..addresses import address_key
from ..credentials import redact_text
from ..model import Channel
from ..ports import AliasSource

__all__ = [
    "MAX_ALIASES",
    "MAX_ALIAS_LENGTH",
    "MAX_SCANNED",
    "discovered_aliases",
    "effective_aliases",
    "reported_aliases",
    "with_aliases",
]

log = logging.getLogger("commlink.sync")

#: Discovered aliases kept per channel at most.
MAX_ALIASES = 200
#: Longer entries are dropped unread (RFC 5321 caps an address at 254 octets).
MAX_ALIAS_LENGTH = 254
#: Entries looked at per discovery at most, so a huge list costs bounded time.
MAX_SCANNED = 2_000


def discovered_aliases(reported: Iterable[object], owner: str) -> tuple[str, ...]:
    """The address keys among ``reported``, without the owner, sorted.

    Non-strings, invalid and overlong entries are dropped; duplicates count
    once (case-insensitively); at most ``MAX_ALIASES`` are kept, taken in the
    provider's order, of the first ``MAX_SCANNED`` entries.
    """
    owner_key = address_key(owner) or owner.lower()
    found: set[str] = set()
    dropped = 0
    for scanned, entry in enumerate(reported):
        if scanned >= MAX_SCANNED or len(found) >= MAX_ALIASES:
            dropped += 1
            break
        if not isinstance(entry, str) or len(entry) > MAX_ALIAS_LENGTH:
            dropped += 1
            continue
        key = address_key(entry.strip())
        if not key:
            dropped += 1
        elif key != owner_key:
            found.add(key)
    if dropped:
        log.info("aliases: kept %d, left out invalid or surplus entries", len(found))
    return tuple(sorted(found))


def reported_aliases(provider: object, channel: Channel, known: tuple[str, ...]) -> tuple[str, ...]:
    """What ``provider`` reports now if it is an ``AliasSource``, cleaned
    (``discovered_aliases``); else, or when asking fails, ``known`` (the last
    known ones): the aliases are optional, a failure never fails a sync."""
    if not isinstance(provider, AliasSource):
        return known
    try:
        return discovered_aliases(provider.aliases(), channel.settings.owner)
    except Exception as exc:
        why = redact_text(f"{type(exc).__name__}: {exc}")
        log.warning("could not list the aliases of %s, keeping the last known: %s", channel.id, why)
        return known


def effective_aliases(
    configured: Iterable[str], discovered: Iterable[str], owner: str
) -> frozenset[str]:
    """The configured aliases plus the discovered ones not already among them
    (compared case-insensitively), never the owner."""
    kept = frozenset(configured)
    known = {a.lower() for a in kept}
    owner_key = (address_key(owner) or owner).lower()
    known.add(owner_key)
    return kept | {a for a in discovered if a.lower() not in known}


def with_aliases(channel: Channel, discovered: Iterable[str]) -> Channel:
    """``channel`` judging mail with the discovered aliases too (itself when
    they add nothing)."""
    settings = channel.settings
    merged = effective_aliases(settings.aliases, discovered, settings.owner)
    if merged == settings.aliases:
        return channel
    return attrs.evolve(channel, settings=attrs.evolve(settings, aliases=merged))
