"""Skipped messages a reconciling pass need not fetch again.

A full listing that reconciles a scope (an expired cursor, an IMAP server
without CONDSTORE after an expunge) would otherwise fetch every message it
skipped before: stored ids are known, skipped ones were not. The rule:

- a message skipped for a reason that depends only on its content and the
  channel's judging settings (``SETTLED_REASONS``: internal, group,
  blocked, invalid, erased) is not fetched again while those settings are
  the ones it was judged under (``judging_key``: owner and aliases,
  organisation domains, ``sync_internal``, the blocklist; the scope's
  cursor keeps the key its skip records were made under);
- a message skipped for its folder (labels change under the same id), for
  an error (it may work now), or judged under other settings (a blocklist
  entry removed, an alias added) is fetched and judged again, as is every
  message of a pass started with ``request_resync(refetch=True)``;
- calendars never skip this way: an event keeps its id when it changes.

Skip records are kept per channel and provider id, not per folder, and an
IMAP server may give two folders the same UIDVALIDITY (Cyrus does for
folders created in the same second), so one folder's ids can name another
folder's skipped messages. A per-folder scope therefore trusts a skip
record only for an id listed after one it has judged itself (a stored id,
or one of the last ids it judged: ``ScopeCursor.markers``): an IMAP folder
is listed newest UID first, and the UIDs it has not judged yet are above
every UID it has. Providers that list by date have ids unique in the
mailbox (Graph, EWS, Maildir), as a mailbox-wide scope (Gmail) has.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..model import Channel, ChannelKind
from ..ports import Store
from ..records import Reason, Viewer

__all__ = [
    "POLICY_REVISION",
    "SETTLED_REASONS",
    "SettledSkips",
    "SkipReasonLookup",
    "judging_key",
]

#: Skip reasons that only the message's content and the judging settings decide.
SETTLED_REASONS = frozenset(
    {
        Reason.INTERNAL,
        Reason.GROUP,
        Reason.BLOCKED,
        Reason.INVALID,
        Reason.ERASED,
        Reason.UNVERIFIED,
    }
)

#: Part of every judging key: raise it when the policy's rules for the
#: settled reasons change, so that skipped mail is judged again.
POLICY_REVISION = 1


def judging_key(channel: Channel) -> str:
    """A digest of the settings that decide the settled skip reasons (the
    channel as judged, with the owner's discovered aliases)."""
    settings = channel.settings
    text = json.dumps(
        [
            POLICY_REVISION,
            settings.owner.lower(),
            sorted(a.lower() for a in settings.aliases),
            sorted(d.lower() for d in settings.org_domains),
            settings.sync_internal,
            sorted(e.lower() for e in settings.blocklist),
            # only when set: the keys of channels without it stay as they were
            *(["skip_unverified"] if settings.skip_unverified else []),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@runtime_checkable
class SkipReasonLookup(Protocol):
    """A store that answers the skip reasons of some provider ids in one
    read. Without it the engine reads a channel's skip records once per
    step (``Store.skips``)."""

    def skip_reasons(self, channel_id: str, ids: Collection[str]) -> Mapping[str, Reason]: ...


class SettledSkips:
    """The settled skip records of one channel, read at most once per step."""

    def __init__(self, store: Store, channel: Channel) -> None:
        self._store = store
        self._channel = channel
        self.key = judging_key(channel)
        self._all: dict[str, Reason] | None = None

    def trusted(
        self,
        ids: Sequence[str],
        known: Collection[str],
        *,
        judged: str,
        markers: Collection[str],
        trusting: bool,
    ) -> tuple[set[str], bool]:
        """Those of the listed ``ids`` (in listing order) not to fetch again,
        and whether the listing has reached an id the scope judged itself
        (``trusting``: from the start for a mailbox-wide scope). ``judged``
        is the key the scope's skip records were made under."""
        if self._channel.kind is not ChannelKind.MAIL or not judged or judged != self.key:
            return set(), trusting
        candidates: list[str] = []
        for provider_id in ids:
            # ids before the first one the scope judged may be new to it
            trusting = trusting or provider_id in known or provider_id in markers
            if trusting and provider_id not in known:
                candidates.append(provider_id)
        return self.among(candidates), trusting

    def among(self, ids: Collection[str]) -> set[str]:
        """Those of ``ids`` skipped for a settled reason."""
        if not ids:
            return set()
        if isinstance(self._store, SkipReasonLookup):
            found = self._store.skip_reasons(self._channel.id, ids)
        else:
            if self._all is None:
                viewer = Viewer(self._channel.user_id)
                self._all = {
                    s.provider_id: s.reason for s in self._store.skips(self._channel.id, viewer)
                }
            found = self._all
        return {i for i in ids if found.get(i) in SETTLED_REASONS}
