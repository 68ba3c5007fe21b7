"""Matching: address keys -> the CRM people, companies and opportunities they link to.

One invocation asks the directory at most once per lookup method, whatever
the number of addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..addresses import domain_candidates, in_domains, is_free_mail
from ..model import Address, ChannelSettings
from ..ports import Directory
from ..records import AddressLinks, CompanyRef, Link, PersonRef, TargetKind
from .filters import rules_for

__all__ = ["company_domains", "match_addresses"]


def company_domains(domain: str, org: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The domains whose owner company an address at ``domain`` links to.

    The domain and its parents, most specific first; none for free-mail
    domains, nor for the organisation's own domains (``org``).
    """
    if not domain or is_free_mail(domain) or in_domains(domain, org):
        return ()
    return domain_candidates(domain)


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
    if not keys:
        return ()
    found = people if people is not None else directory.people_by_addresses(keys)
    person_of = {k: found[k] for k in keys if k in found}

    org = rules_for(settings).org if settings is not None else frozenset()
    domains_of = {k: company_domains(k.rpartition("@")[2], org) for k in keys}
    wanted = sorted({d for ds in domains_of.values() for d in ds})
    companies: Mapping[str, CompanyRef] = directory.companies_by_domains(wanted) if wanted else {}

    companies_of: dict[str, list[str]] = {}
    for key in keys:
        ids: list[str] = []
        person = person_of.get(key)
        if person is not None and person.company_id:
            ids.append(person.company_id)
        for domain in domains_of[key]:
            company = companies.get(domain)
            if company is not None:
                if company.id not in ids:
                    ids.append(company.id)
                break
        companies_of[key] = ids

    company_ids = sorted({c for ids in companies_of.values() for c in ids})
    person_ids = sorted({p.id for p in person_of.values()})
    opportunities = (
        directory.opportunities_for(company_ids, person_ids) if company_ids or person_ids else {}
    )

    result: list[AddressLinks] = []
    for key in keys:
        links: list[Link] = []
        owners: list[str] = []
        person = person_of.get(key)
        if person is not None:
            links.append(Link(TargetKind.PERSON, person.id))
            owners.append(person.id)
        for company_id in companies_of[key]:
            links.append(Link(TargetKind.COMPANY, company_id))
            owners.append(company_id)
        opportunity_ids = sorted({o.id for owner in owners for o in opportunities.get(owner, ())})
        links.extend(Link(TargetKind.OPPORTUNITY, o) for o in opportunity_ids)
        result.append(AddressLinks(key=key, links=tuple(links)))
    return tuple(result)
