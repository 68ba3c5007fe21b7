"""A host implements ``Directory`` over its own CRM records and checks it with
the conformance suite.

Here the "CRM" is plain dicts; a real host would query its own tables. The
only commlink helpers it needs are the address rules, so its keys agree with
the keys commlink parses from mail. Run the suite with:

    pytest examples/custom_directory.py
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import pytest

from commlink.addresses import address_key, domain_candidates, is_free_mail, normalise_domain
from commlink.policy.contacts import company_name_for
from commlink.records import CompanyRef, NewContact, OpportunityRef, PersonRef
from commlink.testing.directory_conformance import (
    CompanySeed,
    DirectoryConformance,
    OpportunitySeed,
    PersonSeed,
)


class DictCrm:
    """The host's CRM: records by id, plus address and domain indexes."""

    def __init__(self) -> None:
        self.people: dict[str, PersonRef] = {}
        self.companies: dict[str, CompanyRef] = {}
        self.deals: dict[str, tuple[OpportunityRef, tuple[str, ...]]] = {}
        self.person_by_key: dict[str, str] = {}
        self.company_by_domain: dict[str, str] = {}
        self._ids = itertools.count(1)

    def add_person(self, id: str, name: str, addresses: Sequence[str], company: str | None) -> None:
        self.people[id] = PersonRef(id, company, name)
        self.person_by_key.update((address_key(a), id) for a in addresses)

    def add_company(self, id: str, name: str, domains: Sequence[str]) -> None:
        self.companies[id] = CompanyRef(id, name)
        self.company_by_domain.update((normalise_domain(d), id) for d in domains)

    # the Directory port

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        found = {key: self.person_by_key.get(address_key(key)) for key in keys}
        return {key: self.people[id] for key, id in found.items() if id is not None}

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        found = {d: self.company_by_domain.get(normalise_domain(d)) for d in domains}
        return {d: self.companies[id] for d, id in found.items() if id is not None}

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        companies, people = set(company_ids), set(person_ids)
        found: dict[str, list[OpportunityRef]] = {}
        for ref, contacts in self.deals.values():
            owners = people.intersection(contacts)
            if ref.company_id is not None and ref.company_id in companies:
                owners.add(ref.company_id)
            for owner in owners:
                found.setdefault(owner, []).append(ref)
        return found

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        made: dict[str, PersonRef] = {}
        for contact in new:
            key = address_key(contact.address.key)
            if key and key not in self.person_by_key:
                self.add_person(f"p{next(self._ids)}", contact.name, [key], self._company(contact))
            if key:
                made[contact.address.key] = self.people[self.person_by_key[key]]
        return made

    def _company(self, contact: NewContact) -> str | None:
        domain = normalise_domain(contact.company_domain or "")
        if not domain or is_free_mail(domain):
            return None
        for candidate in domain_candidates(domain):
            if candidate in self.company_by_domain:
                return self.company_by_domain[candidate]
        company_id = f"c{next(self._ids)}"
        self.add_company(company_id, contact.company_name or company_name_for(domain), [domain])
        return company_id


class TestDictCrm(DirectoryConformance):
    @pytest.fixture
    def directory(self) -> DictCrm:
        return DictCrm()

    def populate(
        self,
        directory: DictCrm,
        people: Sequence[PersonSeed],
        companies: Sequence[CompanySeed],
        opportunities: Sequence[OpportunitySeed],
    ) -> None:
        for c in companies:
            directory.add_company(c.id, c.name, c.domains)
        for p in people:
            directory.add_person(p.id, p.name, p.addresses, p.company_id)
        for o in opportunities:
            directory.deals[o.id] = (OpportunityRef(o.id, o.company_id, o.name), o.contacts)
