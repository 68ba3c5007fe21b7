"""Keeping links true when the CRM changes.

Hosts call these when a person, company or opportunity changes, or when a
blocklist changes. Links are per address, so a change re-matches only the
addresses it can affect, in one batched directory pass.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ..addresses import in_domains, normalise_domain, normalise_entry, parse_address
from ..model import Channel, ChannelSettings
from ..policy.matching import match_addresses
from ..ports import Directory, Store
from ..records import Target, TargetKind
from .engine import SyncEngine

__all__ = ["Relinker"]


class Relinker:
    """Re-matches stored participants and attendees after CRM edits.

    ``settings`` (any channel's settings of the organisation) keep the
    organisation's own domains from linking to a company, as during sync.
    """

    def __init__(
        self, store: Store, directory: Directory, settings: ChannelSettings | None = None
    ) -> None:
        self.store = store
        self.directory = directory
        self.settings = settings

    def person_changed(self, person_id: str, addresses: Iterable[str] = ()) -> int:
        """A person was created or their addresses changed; returns keys relinked."""
        keys = self.store.linked_addresses(Target(TargetKind.PERSON, person_id))
        new = {parse_address(a).key for a in addresses} - {""}
        keys |= self.store.stored_addresses(new) if new else set()
        return self.relink(keys)

    def person_deleted(self, person_id: str) -> int:
        return self.person_changed(person_id)

    def company_changed(self, company_id: str, domains: Iterable[str] = ()) -> int:
        """A company was created, deleted or its domains changed."""
        keys = self.store.linked_addresses(Target(TargetKind.COMPANY, company_id))
        wanted = {normalise_domain(d) for d in domains} - {""}
        if wanted:
            keys |= {
                k for k in self.store.stored_addresses() if in_domains(k.rpartition("@")[2], wanted)
            }
        return self.relink(keys)

    def opportunity_changed(self, opportunity_id: str, addresses: Iterable[str] = ()) -> int:
        """An opportunity changed company or points of contact."""
        keys = self.store.linked_addresses(Target(TargetKind.OPPORTUNITY, opportunity_id))
        new = {parse_address(a).key for a in addresses} - {""}
        keys |= self.store.stored_addresses(new) if new else set()
        return self.relink(keys)

    def relink(self, keys: Collection[str]) -> int:
        """Re-match these address keys against the directory and store the links."""
        if not keys:
            return 0
        addresses = [parse_address(k) for k in sorted(keys)]
        links = match_addresses(addresses, self.directory, self.settings)
        self.store.relink(links)
        return len(links)

    def blocklist_changed(
        self,
        engine: SyncEngine,
        channel: Channel,
        *,
        added: Iterable[str] = (),
        removed: Iterable[str] = (),
    ) -> int:
        """Apply a blocklist edit: added entries remove stored mail at once;
        removed entries let mail back in on the channel's next step.

        ``channel`` must already carry the new blocklist; it is saved here.
        (Saving a channel with new entries removes matching mail by itself,
        whatever path the change takes; this counts what they removed.)
        """
        entries = {normalise_entry(e) for e in added} - {""}
        removed_count = self.store.delete_matching(channel.id, entries) if entries else 0
        self.store.save_channel(channel)
        if any(True for _ in removed):
            engine.request_resync(channel.id)
        return removed_count
