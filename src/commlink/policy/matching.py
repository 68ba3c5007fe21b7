"""Matching: address keys -> the CRM people, companies and opportunities they link to.

One invocation asks the directory at most once per lookup method, whatever
the number of addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..addresses import FREE_MAIL_DOMAINS, domain_candidates
from ..model import Address, ChannelSettings
from ..ports import Directory
from ..records import AddressLinks, CompanyRef, Link, OpportunityRef, PersonRef, TargetKind
from .filters import rules_for

__all__ = ["company_domains", "match_addresses", "match_keys"]


def company_domains(domain: str, org: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The domains whose owner company an address at ``domain`` links to.

    The domain and its parents, most specific first; none for free-mail
    domains, nor for the organisation's own domains (``org``).
    """
    if not domain:
        return ()
    candidates = domain_candidates(domain)
    for candidate in candidates:
        if candidate in FREE_MAIL_DOMAINS or candidate in org:
            return ()
    return candidates


def match_addresses(
    addresses: Iterable[Address],
    directory: Directory,
    settings: ChannelSettings | None = None,
    *,
    people: Mapping[str, PersonRef] | None = None,
) -> tuple[AddressLinks, ...]:
    """Links for every distinct valid address key, sorted by key.

    A key links to the person holding it, to companies (the person's
    company, and the company owning the address's domain or its closest
    parent domain, never a free-mail domain), and to the open opportunities
    of those companies and of the person. Keys without any link get empty
    links so stale ones are cleared. With ``settings``, the organisation's
    own domains never link to a company. ``people`` is the directory's
    answer for these keys when the caller already asked it (the people
    lookup is then skipped). Invalid addresses are never matched.
    """
    keys = sorted({a.key for a in addresses if a.valid and a.key})
    org = rules_for(settings).org if settings is not None else frozenset()
    return match_keys(keys, directory, org, people=people)


def match_keys(
    keys: Sequence[str],
    directory: Directory,
    org: frozenset[str] = frozenset(),
    *,
    people: Mapping[str, PersonRef] | None = None,
) -> tuple[AddressLinks, ...]:
    """``match_addresses`` for address keys already sorted, distinct and valid,
    with the organisation's domains ``org``."""
    if not keys:
        return ()
    found = people if people is not None else directory.people_by_addresses(keys)

    # Parallel lists rather than a tuple per key: fewer objects for the
    # garbage collector to walk while the batch is alive.
    persons = [found.get(key) for key in keys]
    by_domain: dict[str, tuple[str, ...]] = {}  # keys often share a domain
    domains_of: list[tuple[str, ...]] = []
    for key in keys:
        domain = key.rpartition("@")[2]
        domains = by_domain.get(domain)
        if domains is None:
            domains = by_domain[domain] = company_domains(domain, org)
        domains_of.append(domains)
    wanted = sorted({d for ds in by_domain.values() for d in ds})
    companies: Mapping[str, CompanyRef] = directory.companies_by_domains(wanted) if wanted else {}

    companies_of: list[list[str]] = []
    for person, domains in zip(persons, domains_of, strict=True):
        ids: list[str] = []
        if person is not None and person.company_id:
            ids.append(person.company_id)
        for domain in domains:
            company = companies.get(domain)
            if company is not None:
                if company.id not in ids:
                    ids.append(company.id)
                break
        companies_of.append(ids)

    company_ids = sorted({c for ids in companies_of for c in ids})
    person_ids = sorted({p.id for p in persons if p is not None})
    by_company: Mapping[str, Sequence[OpportunityRef]]
    by_person: Mapping[str, Sequence[OpportunityRef]]
    if not company_ids and not person_ids:
        by_company = by_person = {}
    elif set(company_ids).isdisjoint(person_ids):
        by_company = by_person = directory.opportunities_for(company_ids, person_ids)
    else:  # a host's ids may repeat across kinds (integer keys): the answer would be ambiguous
        by_company = directory.opportunities_for(company_ids, [])
        by_person = directory.opportunities_for([], person_ids)

    company_links: dict[str, Link] = {}  # one Link per company, however many keys
    deals: dict[str, tuple[str, ...]] = {}  # a company's opportunity ids, sorted
    deal_links: dict[tuple[str, ...], list[Link]] = {}  # shared by keys of one company
    result: list[AddressLinks] = []
    for key, person, ids in zip(keys, persons, companies_of, strict=True):
        links: list[Link] = []
        if person is not None:
            links.append(Link(TargetKind.PERSON, person.id))
        for company_id in ids:
            link = company_links.get(company_id)
            if link is None:
                link = company_links[company_id] = Link(TargetKind.COMPANY, company_id)
            links.append(link)
        if by_company or by_person:
            deal_ids: tuple[str, ...] = ()
            for company_id in ids:
                held = deals.get(company_id)
                if held is None:
                    held = deals[company_id] = tuple(
                        sorted({o.id for o in by_company.get(company_id, ())})
                    )
                deal_ids = held if not deal_ids else tuple(sorted({*deal_ids, *held}))
            if person is not None and person.id in by_person:
                deal_ids = tuple(sorted({*deal_ids, *(o.id for o in by_person[person.id])}))
            if deal_ids:
                shared = deal_links.get(deal_ids)
                if shared is None:
                    shared = deal_links[deal_ids] = [
                        Link(TargetKind.OPPORTUNITY, o) for o in deal_ids
                    ]
                links += shared
        result.append(AddressLinks(key=key, links=tuple(links)))
    return tuple(result)
