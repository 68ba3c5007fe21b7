"""The public conformance suite every ``Directory`` must pass.

Subclass it in a test module, provide a function-scoped ``directory``
fixture returning a fresh, empty directory, and implement ``populate`` to
load the suite's people, companies and opportunities into it the way your
CRM stores them::

    class TestMyDirectory(DirectoryConformance):
        @pytest.fixture
        def directory(self) -> MyDirectory:
            return MyDirectory(...)

        def populate(self, directory, people, companies, opportunities) -> None:
            for company in companies:
                ...  # companies first: people and opportunities refer to them

The assertions only use the ``Directory`` port. Seeds hold addresses and
domains as a user would type them (any case, Unicode domains); the
directory must compare them case-insensitively and by IDNA 2008 (use
``commlink.addresses.address_key`` and ``normalise_domain``), and key its
answers by the caller's input. How a created company is named is the
directory's business (``NewContact.company_name`` is a suggestion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..addresses import parse_address
from ..ports import Directory
from ..records import NewContact, OpportunityRef, PersonRef

__all__ = ["CompanySeed", "DirectoryConformance", "OpportunitySeed", "PersonSeed"]


@attrs.frozen
class CompanySeed:
    """A company owning these domains."""

    id: str
    name: str
    domains: tuple[str, ...] = ()


@attrs.frozen
class PersonSeed:
    """A person with these addresses, optionally of a company."""

    id: str
    name: str
    addresses: tuple[str, ...]
    company_id: str | None = None


@attrs.frozen
class OpportunitySeed:
    """An open opportunity of a company, with point-of-contact person ids."""

    id: str
    name: str
    company_id: str | None = None
    contacts: tuple[str, ...] = ()


COMPANIES = (
    CompanySeed("acme", "Acme", ("ACME.example", "acme-corp.example")),
    CompanySeed("globex", "Globex", ("globex.example",)),
    CompanySeed("fass", "Faß", ("FAß.example",)),
)
PEOPLE = (
    PersonSeed("ann", "Ann Lee", ("Ann@Acme.example", "ann.lee@gmail.com"), "acme"),
    PersonSeed("bob", "Bob Ray", ("bob@globex.example",), "globex"),
    PersonSeed("cat", "Cat Poe", ("cat@freelance.example",)),
    PersonSeed("fay", "Fay Faß", ("fay@faß.example",), "fass"),
)
OPPORTUNITIES = (
    OpportunitySeed("deal", "Acme renewal", "acme", ("ann", "cat")),
    OpportunitySeed("pilot", "Globex pilot", "globex", ("bob",)),
    OpportunitySeed("solo", "Freelance gig", None, ("cat",)),
)


def _ids(found: Mapping[str, PersonRef]) -> dict[str, str]:
    return {key: ref.id for key, ref in found.items()}


def _opportunity_ids(found: Mapping[str, Sequence[OpportunityRef]]) -> dict[str, set[str]]:
    return {owner: {o.id for o in refs} for owner, refs in found.items() if refs}


def _contact(text: str, domain: str | None = None, first: str = "", last: str = "") -> NewContact:
    address = parse_address(text)
    assert address.valid, text
    return NewContact(address, first, last, domain)


class DirectoryConformance:
    """Base class of a directory's conformance tests (pytest collects subclasses)."""

    def populate(
        self,
        directory: Any,
        people: Sequence[PersonSeed],
        companies: Sequence[CompanySeed],
        opportunities: Sequence[OpportunitySeed],
    ) -> None:
        """Load these records into ``directory`` (companies before the people
        and opportunities that refer to them)."""
        raise NotImplementedError

    def seeded(self, directory: Directory) -> Directory:
        """``directory`` with the suite's standard records."""
        self.populate(directory, PEOPLE, COMPANIES, OPPORTUNITIES)
        return directory

    # -- lookups -------------------------------------------------------------

    def test_addresses_match_case_insensitively(self, directory: Directory) -> None:
        self.seeded(directory)
        keys = ["ann@acme.example", "ANN@ACME.EXAMPLE", "Bob@Globex.example"]
        found = directory.people_by_addresses(keys)
        assert _ids(found) == {keys[0]: "ann", keys[1]: "ann", keys[2]: "bob"}
        assert found[keys[0]].company_id == "acme"
        assert found[keys[2]].company_id == "globex"

    def test_addresses_match_by_idna(self, directory: Directory) -> None:
        self.seeded(directory)
        keys = ["fay@xn--fa-hia.example", "Fay@FAß.example", "fay@faß.example"]
        found = directory.people_by_addresses([*keys, "fay@fass.example"])
        # IDNA 2008: faß.example is xn--fa-hia.example, never fass.example
        assert _ids(found) == dict.fromkeys(keys, "fay")

    def test_any_of_a_persons_addresses_matches(self, directory: Directory) -> None:
        self.seeded(directory)
        found = directory.people_by_addresses(["ann@acme.example", "ann.lee@gmail.com"])
        assert _ids(found) == {"ann@acme.example": "ann", "ann.lee@gmail.com": "ann"}

    def test_unknown_addresses_are_absent(self, directory: Directory) -> None:
        self.seeded(directory)
        unknown = ["nobody@acme.example", "ann@sub.acme.example", "ann@gmail.com", "cat@x.example"]
        assert directory.people_by_addresses(unknown) == {}
        found = directory.people_by_addresses(["nobody@acme.example", "cat@freelance.example"])
        assert _ids(found) == {"cat@freelance.example": "cat"}

    def test_companies_by_exact_domain(self, directory: Directory) -> None:
        self.seeded(directory)
        domains = ["acme.example", "ACME.example", "acme-corp.example", "globex.example"]
        others = ["sub.acme.example", "example", "gmail.com", "fass.example"]
        found = directory.companies_by_domains([*domains, *others])
        assert {d: c.id for d, c in found.items()} == {
            "acme.example": "acme",
            "ACME.example": "acme",
            "acme-corp.example": "acme",
            "globex.example": "globex",
        }

    def test_companies_by_idna_domain(self, directory: Directory) -> None:
        self.seeded(directory)
        domains = ["xn--fa-hia.example", "faß.example", "FAß.EXAMPLE"]
        found = directory.companies_by_domains(domains)
        assert {d: c.id for d, c in found.items()} == dict.fromkeys(domains, "fass")

    def test_opportunities_by_company(self, directory: Directory) -> None:
        self.seeded(directory)
        found = directory.opportunities_for(["acme", "globex", "fass", "nobody"], [])
        assert _opportunity_ids(found) == {"acme": {"deal"}, "globex": {"pilot"}}
        assert {o.company_id for o in found["acme"]} == {"acme"}

    def test_opportunities_by_point_of_contact(self, directory: Directory) -> None:
        self.seeded(directory)
        found = directory.opportunities_for([], ["ann", "bob", "cat", "fay"])
        assert _opportunity_ids(found) == {
            "ann": {"deal"},
            "bob": {"pilot"},
            "cat": {"deal", "solo"},
        }
        both = directory.opportunities_for(["globex"], ["cat"])
        assert _opportunity_ids(both) == {"globex": {"pilot"}, "cat": {"deal", "solo"}}

    def test_empty_inputs_give_empty_answers(self, directory: Directory) -> None:
        self.seeded(directory)
        assert dict(directory.people_by_addresses([])) == {}
        assert dict(directory.companies_by_domains([])) == {}
        assert _opportunity_ids(directory.opportunities_for([], [])) == {}
        assert dict(directory.create_contacts([])) == {}

    # -- contact creation ----------------------------------------------------

    def test_a_new_person_is_created_once(self, directory: Directory) -> None:
        self.seeded(directory)
        dan = _contact("Dan Moe <dan@freelance.example>", None, "Dan", "Moe")
        first = directory.create_contacts([dan, dan])
        assert set(first) == {"dan@freelance.example"}
        person = first["dan@freelance.example"]
        assert person.id not in {"ann", "bob", "cat", "fay"}
        assert directory.create_contacts([dan]) == {"dan@freelance.example": person}
        found = directory.people_by_addresses(["dan@freelance.example", "DAN@freelance.example"])
        assert _ids(found) == dict.fromkeys(
            ["dan@freelance.example", "DAN@freelance.example"], person.id
        )

    def test_an_existing_person_is_returned_not_duplicated(self, directory: Directory) -> None:
        self.seeded(directory)
        ann = _contact("ann@acme.example", "acme.example", "Someone", "Else")
        fay = _contact("Fay@FAß.example", "faß.example")
        made = directory.create_contacts([ann, fay])
        assert _ids(made) == {"ann@acme.example": "ann", "fay@xn--fa-hia.example": "fay"}
        assert made["ann@acme.example"].company_id == "acme"
        assert _ids(directory.people_by_addresses(["ann.lee@gmail.com"])) == {
            "ann.lee@gmail.com": "ann"
        }

    def test_a_company_is_created_for_a_work_domain_and_reused(self, directory: Directory) -> None:
        self.seeded(directory)
        eve = _contact("eve@initech.example", "initech.example", "Eve")
        made = directory.create_contacts([eve])
        company_id = made["eve@initech.example"].company_id
        assert company_id is not None
        assert company_id not in {"acme", "globex", "fass"}
        found = directory.companies_by_domains(["initech.example", "INITECH.example"])
        assert {d: c.id for d, c in found.items()} == {
            "initech.example": company_id,
            "INITECH.example": company_id,
        }
        gus = _contact("gus@initech.example", "initech.example", "Gus")
        again = directory.create_contacts([gus])
        assert again["gus@initech.example"].company_id == company_id
        assert again["gus@initech.example"].id != made["eve@initech.example"].id

    def test_two_new_contacts_of_a_new_domain_share_one_company(self, directory: Directory) -> None:
        self.seeded(directory)
        new = [
            _contact("hal@umbrella.example", "umbrella.example"),
            _contact("ida@umbrella.example", "umbrella.example"),
        ]
        made = directory.create_contacts(new)
        hal, ida = made["hal@umbrella.example"], made["ida@umbrella.example"]
        assert hal.id != ida.id
        assert hal.company_id is not None
        assert hal.company_id == ida.company_id
        owner = directory.companies_by_domains(["umbrella.example"])["umbrella.example"]
        assert owner.id == hal.company_id

    def test_an_owned_domain_reuses_its_company(self, directory: Directory) -> None:
        self.seeded(directory)
        made = directory.create_contacts([_contact("joe@globex.example", "globex.example")])
        assert made["joe@globex.example"].company_id == "globex"
        assert directory.companies_by_domains(["globex.example"])["globex.example"].id == "globex"

    def test_no_company_for_a_free_mail_domain(self, directory: Directory) -> None:
        self.seeded(directory)
        new = [
            _contact("kim@gmail.com", "gmail.com"),  # even when asked for one
            _contact("lou@gmail.com"),
        ]
        made = directory.create_contacts(new)
        assert set(made) == {"kim@gmail.com", "lou@gmail.com"}
        assert made["kim@gmail.com"].company_id is None
        assert made["lou@gmail.com"].company_id is None
        assert dict(directory.companies_by_domains(["gmail.com"])) == {}
        assert _ids(directory.people_by_addresses(["kim@gmail.com"])) == {
            "kim@gmail.com": made["kim@gmail.com"].id
        }
