"""A host CRM plugs in its own Directory and uses the reference SQL store.

The host's people and companies live in its own tables (here, plain dicts);
commlink asks for them in batches through the ``Directory`` protocol. No
inheritance needed: any object with these four methods will do.

    python examples/quickstart.py
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping, Sequence

from commlink import Channel, ChannelKind, ChannelSettings, Visibility
from commlink.cli.demo import DEMO_DATA
from commlink.providers.files.mbox import MboxProvider
from commlink.records import (
    CompanyRef,
    NewContact,
    OpportunityRef,
    PageRequest,
    PersonRef,
    Target,
    TargetKind,
    Viewer,
)
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine

DATA = DEMO_DATA / "demo.mbox"


class HostDirectory:
    """The host's CRM records, looked up in batches."""

    def __init__(self) -> None:
        self.people = {"hank@globex.example": PersonRef("42", company_id="7", name="Hank")}
        self.companies = {"globex.example": CompanyRef("7", "Globex")}
        self.deals = {"7": [OpportunityRef("deal-1", "7", "Renewal")]}

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        return {k: self.people[k] for k in keys if k in self.people}

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        return {d: self.companies[d] for d in domains if d in self.companies}

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        return {c: self.deals[c] for c in company_ids if c in self.deals}

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        created = {}
        for contact in new:
            ref = PersonRef(f"new-{len(self.people)}", name=contact.first_name)
            self.people[contact.address.key] = ref
            created[contact.address.key] = ref
        return created


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{tmp}/crm.sqlite")
        directory = HostDirectory()
        channel = Channel(
            "alice-mail",
            "alice",
            ChannelKind.MAIL,
            "mbox",
            ChannelSettings(owner="alice@northwind.example", visibility=Visibility.METADATA),
        )
        provider = MboxProvider(DATA)
        try:
            print(SyncEngine(store, directory).run(channel, provider).summary())
        finally:
            provider.close()
        for viewer in (Viewer("alice"), Viewer("bob")):
            page = store.timeline(Target(TargetKind.COMPANY, "7"), viewer, PageRequest(limit=10))
            print(f"Globex as {viewer.user_id}:")
            for thread in page.items:
                print(f"  {thread.last_at:%Y-%m-%d}  {thread.subject or '(hidden)'}")


if __name__ == "__main__":
    main()
