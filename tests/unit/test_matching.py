from __future__ import annotations

import pytest

from commlink.addresses import parse_address
from commlink.errors import InvalidInput
from commlink.model import Address, ChannelSettings
from commlink.policy.matching import company_domains, match_addresses
from commlink.records import AddressLinks, Link, NewContact, PersonRef, TargetKind
from commlink.testing.directory import InMemoryDirectory

P, C, OPP = TargetKind.PERSON, TargetKind.COMPANY, TargetKind.OPPORTUNITY


def addrs(*texts: str) -> list[Address]:
    return [parse_address(t) for t in texts]


def crm() -> InMemoryDirectory:
    d = InMemoryDirectory()
    d.add_company("acme", "Acme", ["acme.com"])
    d.add_company("acme-eu", "Acme Europe", ["eu.acme.com"])
    d.add_company("bucher", "Bücher", ["bücher.de"])
    d.add_person("ann", "Ann", ["ann@acme.com", "Ann.Private@gmail.com"], company_id="acme")
    d.add_person("bob", "Bob", ["bob@gmail.com"])
    d.add_person("cy", "Cy", ["cy@freelance.io"], company_id="bucher")
    d.add_opportunity("deal-acme", "Acme deal", company_id="acme")
    d.add_opportunity("deal-bob", "Bob deal", contacts=["bob"])
    d.add_opportunity("deal-eu", "EU deal", company_id="acme-eu", contacts=["ann"])
    return d


def links_of(result: tuple[AddressLinks, ...]) -> dict[str, tuple[Link, ...]]:
    return {r.key: r.links for r in result}


def test_person_company_and_opportunities() -> None:
    d = crm()
    result = links_of(match_addresses(addrs("Ann@ACME.com"), d))
    assert result == {
        "ann@acme.com": (
            Link(P, "ann"),
            Link(C, "acme"),
            Link(OPP, "deal-acme"),
            Link(OPP, "deal-eu"),
        )
    }


def test_any_of_a_persons_addresses_matches() -> None:
    result = links_of(match_addresses(addrs("ann.private@GMAIL.com"), crm()))
    # The person's company still links; the free-mail domain links no company.
    assert result["ann.private@gmail.com"][:2] == (Link(P, "ann"), Link(C, "acme"))


def test_company_via_subdomain_takes_the_closest_owner() -> None:
    result = links_of(match_addresses(addrs("x@sales.eu.acme.com", "y@mail.acme.com"), crm()))
    assert result["x@sales.eu.acme.com"] == (Link(C, "acme-eu"), Link(OPP, "deal-eu"))
    assert result["y@mail.acme.com"] == (Link(C, "acme"), Link(OPP, "deal-acme"))


def test_idn_domain_matches_company() -> None:
    result = links_of(match_addresses(addrs("z@xn--bcher-kva.de", "w@BÜCHER.de"), crm()))
    assert result["z@xn--bcher-kva.de"] == (Link(C, "bucher"),)
    assert result["w@xn--bcher-kva.de"] == (Link(C, "bucher"),)


def test_person_company_and_domain_company_both_link() -> None:
    d = crm()
    d.set_person_addresses("cy", ["cy@freelance.io", "cy@acme.com"])
    result = links_of(match_addresses(addrs("cy@acme.com"), d))
    assert result["cy@acme.com"] == (
        Link(P, "cy"),
        Link(C, "bucher"),
        Link(C, "acme"),
        Link(OPP, "deal-acme"),
    )


def test_free_mail_never_links_a_company_and_person_opportunity_links() -> None:
    d = crm()
    result = links_of(match_addresses(addrs("bob@gmail.com", "stranger@gmail.com"), d))
    assert result == {
        "bob@gmail.com": (Link(P, "bob"), Link(OPP, "deal-bob")),
        "stranger@gmail.com": (),
    }
    assert d.calls_to("companies_by_domains") == 0


def test_unknown_keys_get_empty_links_and_invalid_are_ignored() -> None:
    d = crm()
    result = match_addresses(addrs("nobody@unknown.org", "broken@", "", "Nobody@Unknown.org"), d)
    assert result == (AddressLinks("nobody@unknown.org", ()),)
    asked = [n for name, n in d.calls if name == "people_by_addresses"]
    assert asked == [1]


def test_one_call_per_method_and_deterministic_order() -> None:
    d = crm()
    batch = addrs(*[f"user{i}@acme.com" for i in range(50)], "ann@acme.com", "bob@gmail.com")
    result = match_addresses(reversed(batch), d)
    assert [r.key for r in result] == sorted(r.key for r in result)
    assert d.calls == [
        ("people_by_addresses", 52),
        ("companies_by_domains", 1),
        ("opportunities_for", 3),
    ]
    assert match_addresses(batch, crm()) == result


def test_no_valid_addresses_asks_nothing() -> None:
    d = crm()
    assert match_addresses(addrs("broken", "x@"), d) == ()
    assert d.calls == []


def test_no_people_and_no_companies_skips_opportunities() -> None:
    d = crm()
    match_addresses(addrs("a@unknown.org"), d)
    assert d.calls_to("opportunities_for") == 0


def test_prefetched_people_skip_the_people_lookup() -> None:
    d = crm()
    people = {"new@client.io": PersonRef("new", company_id=None)}
    result = links_of(match_addresses(addrs("new@client.io"), d, people=people))
    assert result == {"new@client.io": (Link(P, "new"),)}
    assert d.calls_to("people_by_addresses") == 0


def test_org_domains_never_link_a_company_with_settings() -> None:
    d = crm()
    s = ChannelSettings(owner="me@acme.com")
    result = links_of(match_addresses(addrs("colleague@eu.acme.com", "ann@acme.com"), d, s))
    assert result["colleague@eu.acme.com"] == ()
    # Ann's own company still links through her person record.
    assert result["ann@acme.com"][:2] == (Link(P, "ann"), Link(C, "acme"))


def test_relinks_after_directory_changes() -> None:
    d = crm()
    assert links_of(match_addresses(addrs("dan@client.io"), d))["dan@client.io"] == ()
    d.add_person("dan", "Dan", ["dan@client.io"])
    assert links_of(match_addresses(addrs("dan@client.io"), d))["dan@client.io"] == (
        Link(P, "dan"),
    )
    d.delete_person("dan")
    assert links_of(match_addresses(addrs("dan@client.io"), d))["dan@client.io"] == ()


def test_company_domains() -> None:
    assert company_domains("a.b.acme.com") == ("a.b.acme.com", "b.acme.com", "acme.com")
    assert company_domains("gmail.com") == ()
    assert company_domains("mail.acme.com", frozenset({"acme.com"})) == ()
    assert company_domains("") == ()


class TestInMemoryDirectory:
    def test_addresses_are_normalised_and_unique(self) -> None:
        d = InMemoryDirectory()
        d.add_person("p", "P", [" P@Bücher.DE "])
        assert d.addresses_of("p") == ("p@xn--bcher-kva.de",)
        assert d.people_by_addresses(["p@xn--bcher-kva.de"])["p@xn--bcher-kva.de"].id == "p"
        with pytest.raises(InvalidInput):
            d.add_person("q", "Q", ["p@bücher.de"])
        with pytest.raises(InvalidInput):
            d.add_person("r", "R", ["not an address"])
        with pytest.raises(InvalidInput):
            d.add_company("gm", "Gmail", ["gmail.com"])

    def test_create_contacts_reuses_companies_and_existing_people(self) -> None:
        d = crm()
        made = d.create_contacts(
            [
                NewContact(parse_address("new@eu.acme.com"), "New", "", "eu.acme.com"),
                NewContact(parse_address("x@sub.client.io"), "X", "", "sub.client.io"),
                NewContact(parse_address("ann@acme.com"), "Ann", "", "acme.com"),
                NewContact(parse_address("solo@gmail.com"), "", "", None),
            ]
        )
        assert made["new@eu.acme.com"].company_id == "acme-eu"
        assert made["ann@acme.com"].id == "ann"
        assert made["solo@gmail.com"].company_id is None
        new_company = made["x@sub.client.io"].company_id
        assert new_company is not None
        assert d.companies_by_domains(["sub.client.io"])["sub.client.io"].id == new_company
        assert d.calls[0] == ("create_contacts", 4)

    def test_removing_a_person_drops_them_from_opportunities(self) -> None:
        d = crm()
        d.delete_person("bob")
        assert d.opportunities_for([], ["bob"]) == {}
        assert d.people_by_addresses(["bob@gmail.com"]) == {}


def test_opportunities_are_not_confused_when_a_person_and_a_company_share_an_id() -> None:
    """Hosts with integer keys have person 2 and company 2: each keeps its own deals."""
    d = InMemoryDirectory()
    d.add_company("2", "Initech", ["initech.example"])
    d.add_company("3", "Globex", ["globex.example"])
    d.add_person("2", "Mindy", ["mindy@globex.example"], company_id="3")
    d.add_opportunity("9", "Initech pilot", company_id="2")
    d.add_opportunity("8", "Globex renewal", company_id="3")
    d.add_opportunity("7", "Mindy's referral", contacts=["2"])
    result = links_of(match_addresses(addrs("mindy@globex.example"), d))
    assert result == {
        "mindy@globex.example": (Link(P, "2"), Link(C, "3"), Link(OPP, "7"), Link(OPP, "8"))
    }
