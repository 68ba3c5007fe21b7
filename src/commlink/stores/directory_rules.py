"""The rules both reference directories (``SqlDirectory`` and
``commlink.testing.directory.InMemoryDirectory``) follow, in one place so
they cannot drift apart.

- Addresses and domains are compared by ``commlink.addresses`` keys
  (``address_key``, ``normalise_domain``): case-insensitive, IDNA 2008.
- An address belongs to at most one person and a domain to at most one
  company; free-mail domains are never a company's. The admin methods raise
  ``InvalidInput`` instead of silently moving an address or domain.
- ``create_contacts`` skips invalid addresses, returns the existing person
  of a known address, and gives a new person the company owning the
  contact's work domain or its closest parent domain, creating one (named
  ``NewContact.company_name``, else ``company_name_for``) when none does;
  never for a free-mail domain. Contacts are planned in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from ..addresses import address_key, domain_candidates, is_free_mail, normalise_domain
from ..errors import InvalidInput
from ..policy.contacts import company_name_for
from ..records import NewContact, PersonRef

__all__ = [
    "ContactPlan",
    "by_contact_key",
    "company_domain_keys",
    "contacts_by_key",
    "person_keys",
    "plan_contacts",
    "wanted_domains",
]


def person_keys(addresses: Iterable[str]) -> tuple[str, ...]:
    """A person's address keys, deduplicated; ``InvalidInput`` for an invalid one."""
    keys: dict[str, None] = {}
    for address in addresses:
        key = address_key(address)
        if not key:
            raise InvalidInput(f"invalid address {address!r}")
        keys[key] = None
    return tuple(keys)


def company_domain_keys(domains: Iterable[str]) -> tuple[str, ...]:
    """A company's domains, normalised and deduplicated; ``InvalidInput`` for an
    invalid or free-mail domain."""
    keys: dict[str, None] = {}
    for domain in domains:
        key = normalise_domain(domain)
        if not key or not address_key(f"x@{key}"):  # a domain mail can come from
            raise InvalidInput(f"invalid company domain {domain!r}")
        if is_free_mail(key):
            raise InvalidInput(f"{key} is a free-mail domain, never a company's")
        keys[key] = None
    return tuple(keys)


def contacts_by_key(new: Sequence[NewContact]) -> dict[str, NewContact]:
    """The valid contacts by address key, the first of duplicates winning."""
    found: dict[str, NewContact] = {}
    for contact in new:
        key = address_key(contact.address.key) if contact.address.valid else ""
        if key:
            found.setdefault(key, contact)
    return found


def by_contact_key(
    new: Sequence[NewContact], found: Mapping[str, PersonRef]
) -> dict[str, PersonRef]:
    """``found`` (people by normalised key) keyed by each contact's own ``address.key``."""
    answer: dict[str, PersonRef] = {}
    for contact in new:
        key = address_key(contact.address.key) if contact.address.valid else ""
        if key in found:
            answer[contact.address.key] = found[key]
    return answer


def _work_domain(contact: NewContact) -> str:
    domain = normalise_domain(contact.company_domain) if contact.company_domain else ""
    # a single label (no candidates) could never be matched to its company
    return "" if not domain_candidates(domain) or is_free_mail(domain) else domain


def wanted_domains(contacts: Iterable[NewContact]) -> set[str]:
    """Every domain whose owner ``plan_contacts`` needs to know."""
    return {c for contact in contacts for c in domain_candidates(_work_domain(contact))}


@attrs.frozen
class ContactPlan:
    """What ``create_contacts`` writes: ``companies`` as ``id -> (name, domain)``
    and ``people`` as ``key -> (id, name, company id)``."""

    companies: dict[str, tuple[str, str]]
    people: dict[str, tuple[str, str, str | None]]


def plan_contacts(
    todo: Mapping[str, NewContact], owners: Mapping[str, str], new_id: Callable[[str], str]
) -> ContactPlan:
    """Plan new people (keys not known yet) and their new companies.

    ``owners`` maps the ``wanted_domains`` that have a company to its id;
    ``new_id(prefix)`` makes an id for a ``"person"`` or ``"company"``.
    """
    owned = dict(owners)
    companies: dict[str, tuple[str, str]] = {}
    people: dict[str, tuple[str, str, str | None]] = {}
    for key, contact in todo.items():
        domain = _work_domain(contact)
        company_id = None
        if domain:
            company_id = next((owned[d] for d in domain_candidates(domain) if d in owned), None)
            if company_id is None:
                company_id = new_id("company")
                companies[company_id] = (contact.company_name or company_name_for(domain), domain)
                owned[domain] = company_id
        people[key] = (new_id("person"), contact.name, company_id)
    return ContactPlan(companies=companies, people=people)
