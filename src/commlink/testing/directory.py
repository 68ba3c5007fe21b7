"""An in-memory ``Directory``: a host CRM's people, companies and opportunities.

For tests and demos. It follows the same rules as ``SqlDirectory`` (see
``commlink.stores.directory_rules``) and has the same admin methods. Every
port call is recorded in ``calls`` as ``(method name, input size)`` so tests
can assert batching.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timezone

import attrs

from ..addresses import address_key, normalise_domain
from ..errors import InvalidInput
from ..records import CompanyRef, NewContact, OpportunityRef, PersonRef
from ..stores.directory_rules import (
    by_contact_key,
    company_domain_keys,
    contacts_by_key,
    person_keys,
    plan_contacts,
    wanted_domains,
)

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
    company; free-mail domains are never a company's; referenced companies
    and people must exist (``InvalidInput`` otherwise).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._people: dict[str, _Person] = {}
        self._by_address: dict[str, str] = {}
        self._companies: dict[str, CompanyRef] = {}
        self._by_domain: dict[str, str] = {}
        self._opportunities: dict[str, _Opportunity] = {}
        #: addresses of deleted people -> when (never created again)
        self._deleted: dict[str, datetime] = {}
        self._next_id = 0

    # -- admin methods (the same as SqlDirectory's) ---------------------------

    def add_person(
        self, id: str, name: str, addresses: Iterable[str], company_id: str | None = None
    ) -> PersonRef:
        """Add or replace a person with these addresses (their opportunities stay)."""
        keys = person_keys(addresses)
        self._require_company(company_id)
        self._check_owner(self._by_address, keys, id, "person")
        ref = PersonRef(id=id, company_id=company_id, name=name)
        previous = self._people.get(id)
        self._people[id] = _Person(ref=ref, addresses=previous.addresses if previous else ())
        self._put_addresses(id, keys)
        return ref

    def set_person_addresses(self, person_id: str, addresses: Iterable[str]) -> None:
        """Replace a person's addresses."""
        keys = person_keys(addresses)
        if person_id not in self._people:
            raise InvalidInput(f"no person {person_id!r}")
        self._check_owner(self._by_address, keys, person_id, "person")
        self._put_addresses(person_id, keys)

    def delete_person(self, person_id: str) -> None:
        """Delete a person, their addresses and their points of contact (if
        any). Their addresses are remembered: ``create_contacts`` never
        creates them again, until ``forget_deletion``."""
        person = self._people.pop(person_id, None)
        if person is None:
            return
        now = datetime.now(timezone.utc)
        for key in person.addresses:
            del self._by_address[key]
            self._deleted[key] = now
        for opportunity in self._opportunities.values():
            opportunity.contacts = tuple(c for c in opportunity.contacts if c != person_id)

    def forget_deletion(self, address: str) -> bool:
        """Let ``create_contacts`` create a person for the address of a deleted
        person again; whether it was one."""
        return self._deleted.pop(address_key(address), None) is not None

    def add_company(self, id: str, name: str, domains: Iterable[str] = ()) -> CompanyRef:
        """Add or replace a company and the domains it owns (never free-mail ones)."""
        keys = company_domain_keys(domains)
        self._check_owner(self._by_domain, keys, id, "company")
        ref = CompanyRef(id=id, name=name)
        self._companies[id] = ref
        self._put_domains(id, keys)
        return ref

    def set_company_domains(self, company_id: str, domains: Iterable[str]) -> None:
        """Replace a company's domains."""
        keys = company_domain_keys(domains)
        self._require_company(company_id)
        self._check_owner(self._by_domain, keys, company_id, "company")
        self._put_domains(company_id, keys)

    def add_opportunity(
        self, id: str, name: str, company_id: str | None = None, contacts: Iterable[str] = ()
    ) -> OpportunityRef:
        """Add or replace an opportunity of a company, with point-of-contact person ids."""
        contact_ids = tuple(sorted(set(contacts)))
        self._require_company(company_id)
        for person_id in contact_ids:
            if person_id not in self._people:
                raise InvalidInput(f"no person {person_id!r}")
        ref = OpportunityRef(id=id, company_id=company_id, name=name)
        self._opportunities[id] = _Opportunity(ref=ref, contacts=contact_ids)
        return ref

    def _require_company(self, company_id: str | None) -> None:
        if company_id is not None and company_id not in self._companies:
            raise InvalidInput(f"no company {company_id!r}")

    @staticmethod
    def _check_owner(owners: Mapping[str, str], keys: Iterable[str], id: str, kind: str) -> None:
        for key in keys:
            owner = owners.get(key)
            if owner is not None and owner != id:
                raise InvalidInput(f"{key} already belongs to {kind} {owner!r}")

    def _put_addresses(self, person_id: str, keys: tuple[str, ...]) -> None:
        person = self._people[person_id]
        for key in person.addresses:
            del self._by_address[key]
        person.addresses = keys
        self._by_address.update(dict.fromkeys(keys, person_id))

    def _put_domains(self, company_id: str, keys: tuple[str, ...]) -> None:
        for domain in [d for d, owner in self._by_domain.items() if owner == company_id]:
            del self._by_domain[domain]
        self._by_domain.update(dict.fromkeys(keys, company_id))

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
        return self._find_people(keys)

    def _find_people(self, keys: Iterable[str]) -> dict[str, PersonRef]:
        found: dict[str, PersonRef] = {}
        for key in keys:
            person_id = self._by_address.get(address_key(key))
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
        for _id, opportunity in sorted(self._opportunities.items()):
            ref = opportunity.ref
            if ref.company_id is not None and ref.company_id in companies:
                found.setdefault(ref.company_id, []).append(ref)
            for contact in opportunity.contacts:
                if contact in people and ref not in found.get(contact, ()):
                    found.setdefault(contact, []).append(ref)
        return found

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        """Create people (and companies for unowned work domains); returns every
        valid requested address's person by its key, existing people included.
        An address of a deleted person is never created again."""
        self.calls.append(("create_contacts", len(new)))
        contacts = contacts_by_key(new)
        known = self._by_address.keys() | self._deleted.keys()
        todo = {k: c for k, c in contacts.items() if k not in known}
        domains = wanted_domains(todo.values())
        owners = {d: self._by_domain[d] for d in domains if d in self._by_domain}
        plan = plan_contacts(todo, owners, self._new_id)
        for company_id, (name, domain) in plan.companies.items():
            self.add_company(company_id, name, [domain])
        for key, (person_id, name, owner) in plan.people.items():
            self.add_person(person_id, name, [key], owner)
        return by_contact_key(new, self._find_people(contacts))

    def _new_id(self, prefix: str) -> str:
        while True:
            self._next_id += 1
            candidate = f"new-{prefix}-{self._next_id}"
            if candidate not in self._people and candidate not in self._companies:
                return candidate
