"""An in-memory ``Directory``: a host CRM's people, companies and opportunities.

For tests and demos. Every port call is recorded in ``calls`` as
``(method name, input size)`` so tests can assert batching.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from ..addresses import domain_candidates, is_free_mail, normalise_domain, parse_address
from ..errors import InvalidInput
from ..records import CompanyRef, NewContact, OpportunityRef, PersonRef

__all__ = ["InMemoryDirectory"]


@attrs.define
class _Person:
    ref: PersonRef
    addresses: tuple[str, ...]


@attrs.define
class _Opportunity:
    ref: OpportunityRef
    contacts: tuple[str, ...]


class InMemoryDirectory:
    """A ``Directory`` kept in dicts; addresses and domains are normalised on entry.

    An address belongs to at most one person and a domain to at most one
    company (``InvalidInput`` otherwise).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._people: dict[str, _Person] = {}
        self._by_address: dict[str, str] = {}
        self._companies: dict[str, CompanyRef] = {}
        self._by_domain: dict[str, str] = {}
        self._opportunities: dict[str, _Opportunity] = {}
        self._next_id = 0

    # -- setup -------------------------------------------------------------

    def add_person(
        self, id: str, name: str, addresses: Iterable[str], company_id: str | None = None
    ) -> PersonRef:
        """Add (or replace) a person with these addresses."""
        if id in self._people:
            self.remove_person(id)
        ref = PersonRef(id=id, company_id=company_id, name=name)
        self._people[id] = _Person(ref=ref, addresses=())
        self.set_addresses(id, addresses)
        return ref

    def set_addresses(self, person_id: str, addresses: Iterable[str]) -> None:
        """Replace a person's addresses."""
        person = self._people.get(person_id)
        if person is None:
            raise InvalidInput(f"no person {person_id!r}")
        keys = tuple(dict.fromkeys(_key(a) for a in addresses))
        for key in keys:
            owner = self._by_address.get(key)
            if owner is not None and owner != person_id:
                raise InvalidInput(f"{key} already belongs to person {owner!r}")
        for key in person.addresses:
            del self._by_address[key]
        person.addresses = keys
        for key in keys:
            self._by_address[key] = person_id

    def remove_person(self, person_id: str) -> None:
        person = self._people.pop(person_id, None)
        if person is None:
            return
        for key in person.addresses:
            del self._by_address[key]
        for opportunity in self._opportunities.values():
            if person_id in opportunity.contacts:
                opportunity.contacts = tuple(c for c in opportunity.contacts if c != person_id)

    def add_company(self, id: str, name: str, domains: Iterable[str]) -> CompanyRef:
        """Add a company owning these domains (never free-mail ones)."""
        normalised = tuple(dict.fromkeys(normalise_domain(d) for d in domains))
        for domain in normalised:
            if not domain:
                raise InvalidInput("invalid company domain")
            if is_free_mail(domain):
                raise InvalidInput(f"{domain} is a free-mail domain")
            owner = self._by_domain.get(domain)
            if owner is not None and owner != id:
                raise InvalidInput(f"{domain} already belongs to company {owner!r}")
        ref = CompanyRef(id=id, name=name)
        self._companies[id] = ref
        for domain in normalised:
            self._by_domain[domain] = id
        return ref

    def add_opportunity(
        self, id: str, name: str, company_id: str | None = None, contacts: Iterable[str] = ()
    ) -> OpportunityRef:
        """Add an open opportunity of a company, with point-of-contact person ids."""
        ref = OpportunityRef(id=id, company_id=company_id, name=name)
        self._opportunities[id] = _Opportunity(ref=ref, contacts=tuple(contacts))
        return ref

    # -- queries for tests -------------------------------------------------

    def person(self, person_id: str) -> PersonRef | None:
        found = self._people.get(person_id)
        return found.ref if found is not None else None

    def people(self) -> list[PersonRef]:
        return [p.ref for p in self._people.values()]

    def addresses_of(self, person_id: str) -> tuple[str, ...]:
        found = self._people.get(person_id)
        return found.addresses if found is not None else ()

    def companies(self) -> list[CompanyRef]:
        return list(self._companies.values())

    def calls_to(self, method: str) -> int:
        """How many times a port method was called."""
        return sum(1 for name, _ in self.calls if name == method)

    # -- the Directory port ------------------------------------------------

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        self.calls.append(("people_by_addresses", len(keys)))
        found: dict[str, PersonRef] = {}
        for key in keys:
            person_id = self._by_address.get(parse_address(key).key)
            if person_id is not None:
                found[key] = self._people[person_id].ref
        return found

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        self.calls.append(("companies_by_domains", len(domains)))
        found: dict[str, CompanyRef] = {}
        for domain in domains:
            company_id = self._by_domain.get(normalise_domain(domain))
            if company_id is not None:
                found[domain] = self._companies[company_id]
        return found

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        self.calls.append(("opportunities_for", len(company_ids) + len(person_ids)))
        companies, people = set(company_ids), set(person_ids)
        found: dict[str, list[OpportunityRef]] = {}
        for opportunity in self._opportunities.values():
            ref = opportunity.ref
            if ref.company_id is not None and ref.company_id in companies:
                found.setdefault(ref.company_id, []).append(ref)
            for contact in opportunity.contacts:
                if contact in people:
                    found.setdefault(contact, []).append(ref)
        return found

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        self.calls.append(("create_contacts", len(new)))
        created: dict[str, PersonRef] = {}
        for contact in new:
            key = contact.address.key
            existing = self._by_address.get(key)
            if existing is not None:
                created[key] = self._people[existing].ref
                continue
            company_id = self._company_for(contact.company_domain)
            name = f"{contact.first_name} {contact.last_name}".strip()
            created[key] = self.add_person(
                self._new_id("person"), name or contact.address.email, [key], company_id
            )
        return created

    def _company_for(self, domain: str | None) -> str | None:
        domain = normalise_domain(domain) if domain else ""
        if not domain or is_free_mail(domain):
            return None
        for candidate in domain_candidates(domain):
            existing = self._by_domain.get(candidate)
            if existing is not None:
                return existing
        return self.add_company(self._new_id("company"), domain, [domain]).id

    def _new_id(self, prefix: str) -> str:
        while True:
            self._next_id += 1
            candidate = f"new-{prefix}-{self._next_id}"
            if candidate not in self._people and candidate not in self._companies:
                return candidate


def _key(address: str) -> str:
    parsed = parse_address(address)
    if not parsed.valid:
        raise InvalidInput(f"invalid address {address!r}")
    return parsed.key
