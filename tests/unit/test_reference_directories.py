"""The two reference directories agree: InMemoryDirectory and SqlDirectory
(SQLite and PostgreSQL) have the same admin methods with the same rules, and
an address on an IDNA domain matches from mail parsing through to the store.

What any Directory must do through the port is in DirectoryConformance.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy.engine import Engine

from commlink.addresses import parse_address
from commlink.errors import InvalidInput
from commlink.model import Address, Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.policy.contacts import company_name_for
from commlink.policy.matching import match_addresses
from commlink.ports import Directory, Store
from commlink.records import (
    CompanyRef,
    Link,
    NewContact,
    OpportunityRef,
    PageRequest,
    PersonRef,
    Target,
    TargetKind,
    Viewer,
)
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.postgres import emptied
from commlink.testing.provider_conformance import OWNER, sample_message


class AdminDirectory(Directory, Protocol):
    """The admin methods both reference directories offer."""

    def add_company(self, id: str, name: str, domains: Any = ()) -> CompanyRef: ...
    def set_company_domains(self, company_id: str, domains: Any) -> None: ...
    def add_person(
        self, id: str, name: str, addresses: Any, company_id: str | None = None
    ) -> PersonRef: ...
    def set_person_addresses(self, person_id: str, addresses: Any) -> None: ...
    def delete_person(self, person_id: str) -> None: ...
    def forget_deletion(self, address: str) -> bool: ...
    def add_opportunity(
        self, id: str, name: str, company_id: str | None = None, contacts: Any = ()
    ) -> OpportunityRef: ...


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AdminDirectory, Store]]:
    """A reference directory and a store (sharing the database for SQL)."""
    if request.param == "memory":
        yield InMemoryDirectory(), MemoryStore()
        return
    if request.param == "sqlite":
        store = SqlStore(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    else:
        engine: Engine = request.getfixturevalue("pg_engine")
        emptied(engine)
        store = SqlStore(engine)
    yield SqlDirectory(store), store
    if request.param == "sqlite":
        store.close()


@pytest.fixture
def directory(both: tuple[AdminDirectory, Store]) -> AdminDirectory:
    return both[0]


def crm(directory: AdminDirectory) -> None:
    directory.add_company("acme", "Acme", ["ACME.example"])
    directory.add_company("globex", "Globex", ["globex.example"])
    directory.add_person("ann", "Ann Lee", ["Ann@Acme.example", "ann.lee@gmail.com"], "acme")
    directory.add_person("bob", "Bob Ray", ["bob@globex.example"], "globex")
    directory.add_person("cat", "Cat Poe", ["cat@freelance.example"])
    directory.add_opportunity("deal", "Acme renewal", "acme", ["ann", "cat"])


def person_of(directory: Directory, key: str) -> str | None:
    found = directory.people_by_addresses([key]).get(key)
    return found.id if found is not None else None


def opportunity_ids(directory: Directory, person_id: str) -> list[str]:
    return [o.id for o in directory.opportunities_for([], [person_id]).get(person_id, ())]


def test_admin_methods_return_refs(directory: AdminDirectory) -> None:
    assert directory.add_company("acme", "Acme", ["acme.example"]) == CompanyRef("acme", "Acme")
    assert directory.add_person("ann", "Ann", ["ann@acme.example"], "acme") == PersonRef(
        "ann", "acme", "Ann"
    )
    assert directory.add_opportunity("deal", "Deal", "acme", ["ann"]) == OpportunityRef(
        "deal", "acme", "Deal"
    )


@pytest.mark.parametrize(
    "domain", ["gmail.com", "Mail.Yahoo.com", "", "not a domain!", "localhost"]
)
def test_free_mail_and_invalid_domains_are_never_a_company_s(
    directory: AdminDirectory, domain: str
) -> None:
    crm(directory)
    with pytest.raises(InvalidInput):
        directory.add_company("gm", "Free mail", [domain])
    with pytest.raises(InvalidInput):
        directory.set_company_domains("acme", ["acme.example", domain])
    assert directory.companies_by_domains(["gmail.com", "acme.example"]) == {
        "acme.example": CompanyRef("acme", "Acme")
    }


def test_an_address_belongs_to_one_person(directory: AdminDirectory) -> None:
    crm(directory)
    with pytest.raises(InvalidInput, match=r"ann@acme\.example"):
        directory.add_person("dan", "Dan", ["dan@acme.example", "ANN@acme.example"])
    with pytest.raises(InvalidInput):
        directory.set_person_addresses("cat", ["bob@globex.example"])
    assert person_of(directory, "dan@acme.example") is None
    assert person_of(directory, "cat@freelance.example") == "cat"
    assert person_of(directory, "bob@globex.example") == "bob"
    # moving an address takes two steps
    directory.set_person_addresses("bob", [])
    directory.set_person_addresses("cat", ["cat@freelance.example", "bob@globex.example"])
    assert person_of(directory, "bob@globex.example") == "cat"


def test_a_domain_belongs_to_one_company(directory: AdminDirectory) -> None:
    crm(directory)
    with pytest.raises(InvalidInput, match=r"acme\.example"):
        directory.add_company("other", "Other", ["acme.EXAMPLE"])
    with pytest.raises(InvalidInput):
        directory.set_company_domains("globex", ["globex.example", "acme.example"])
    assert directory.companies_by_domains(["acme.example"])["acme.example"].id == "acme"
    directory.add_company("acme", "Acme Inc", ["acme.example", "acme.example.org"])  # replaces
    directory.set_company_domains("globex", ["globex.example.org"])
    assert directory.companies_by_domains(["acme.example.org", "globex.example"]) == {
        "acme.example.org": CompanyRef("acme", "Acme Inc")
    }


def test_invalid_input_and_unknown_references(directory: AdminDirectory) -> None:
    crm(directory)
    with pytest.raises(InvalidInput):
        directory.add_person("dan", "Dan", ["not an address"])
    with pytest.raises(InvalidInput):
        directory.add_person("dan", "Dan", ["dan@x.example"], "no-such-company")
    with pytest.raises(InvalidInput):
        directory.set_person_addresses("no-such-person", ["dan@x.example"])
    with pytest.raises(InvalidInput):
        directory.set_company_domains("no-such-company", ["x.example"])
    with pytest.raises(InvalidInput):
        directory.add_opportunity("o", "O", "no-such-company")
    with pytest.raises(InvalidInput):
        directory.add_opportunity("o", "O", None, ["ann", "no-such-person"])
    assert person_of(directory, "dan@x.example") is None
    assert directory.opportunities_for([], ["ann"]) == {
        "ann": [OpportunityRef("deal", "acme", "Acme renewal")]
    }


def test_replacing_and_deleting_people(directory: AdminDirectory) -> None:
    crm(directory)
    directory.add_person("ann", "Ann Lee-Poe", ["ann@acme.example"], "acme")  # replaces
    assert person_of(directory, "ann.lee@gmail.com") is None
    assert directory.people_by_addresses(["ann@acme.example"]) == {
        "ann@acme.example": PersonRef("ann", "acme", "Ann Lee-Poe")
    }
    assert opportunity_ids(directory, "ann") == ["deal"]  # still a point of contact
    directory.delete_person("cat")
    directory.delete_person("nobody")  # no-op
    assert person_of(directory, "cat@freelance.example") is None
    assert opportunity_ids(directory, "cat") == []
    directory.add_person("cy", "Cy", ["cat@freelance.example"])  # the address is free again
    assert person_of(directory, "cat@freelance.example") == "cy"


def test_a_deleted_person_is_never_created_again(directory: AdminDirectory) -> None:
    crm(directory)
    directory.delete_person("cat")
    made = directory.create_contacts([contact("cat@freelance.example"), contact("dan@new.example")])
    assert set(made) == {"dan@new.example"}
    assert directory.create_contacts([contact("Cat Poe <CAT@Freelance.example>")]) == {}
    assert person_of(directory, "cat@freelance.example") is None
    # the host may still give the address to someone: then it is theirs
    directory.add_person("cy", "Cy", ["cat@freelance.example"])
    assert directory.create_contacts([contact("cat@freelance.example")]) == {
        "cat@freelance.example": PersonRef("cy", None, "Cy")
    }
    directory.delete_person("cy")
    assert directory.create_contacts([contact("cat@freelance.example")]) == {}
    # until the host lifts the tombstone explicitly
    assert directory.forget_deletion("CAT@freelance.example")
    assert not directory.forget_deletion("cat@freelance.example")
    made = directory.create_contacts([contact("cat@freelance.example")])
    assert set(made) == {"cat@freelance.example"}


def test_the_next_mail_does_not_bring_a_deleted_contact_back(
    both: tuple[AdminDirectory, Store],
) -> None:
    directory, store = both
    provider = FakeMailProvider()
    settings = ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.SENT)
    channel = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", settings)
    engine = SyncEngine(store, directory, clock=lambda: NOW)
    provider.box.add("INBOX", sample_message(1, sender=OWNER, to="dana@hooli.example"))
    engine.run(channel, provider)
    dana = person_of(directory, "dana@hooli.example")
    assert dana is not None
    directory.delete_person(dana)
    provider.box.add("INBOX", sample_message(2, sender=OWNER, to="dana@hooli.example"))
    engine.run(channel, provider)
    assert person_of(directory, "dana@hooli.example") is None


def test_opportunities_are_ordered_by_id(directory: AdminDirectory) -> None:
    crm(directory)
    directory.add_opportunity("a-first", "First", "acme", ["cat", "cat"])
    found = directory.opportunities_for(["acme"], ["cat"])
    assert [o.id for o in found["acme"]] == ["a-first", "deal"]
    assert [o.id for o in found["cat"]] == ["a-first", "deal"]


def contact(text: str, domain: str | None = None, company: str = "", *names: str) -> NewContact:
    first, last = (*names, "", "")[:2]
    return NewContact(parse_address(text), first, last, domain, company)


def test_create_contacts_rules(directory: AdminDirectory) -> None:
    crm(directory)
    new = [
        contact("dan@eu.acme.example", "eu.acme.example", "", "Dan"),  # the parent's company
        contact("Eve Q <eve@initech-labs.example>", "initech-labs.example"),  # named by the rule
        contact("fay@Umbrella.example", "umbrella.example", "Umbrella Corp"),  # policy's name
        contact("gus@gmail.com", "gmail.com"),  # asked for a free-mail company: none
        contact("ann@acme.example", "acme.example", "", "Someone"),  # existing
        NewContact(Address("", "", valid=False, raw="broken"), "Broken"),  # skipped
        NewContact(
            Address("Hal@Globex.example", "hal@globex.example"), "Hal", "", "globex.example"
        ),
    ]
    made = directory.create_contacts(new)
    assert set(made) == {
        "dan@eu.acme.example",
        "eve@initech-labs.example",
        "fay@umbrella.example",
        "gus@gmail.com",
        "ann@acme.example",
        "Hal@Globex.example",  # keyed by the caller's key
    }
    assert made["dan@eu.acme.example"].company_id == "acme"
    assert made["dan@eu.acme.example"].name == "Dan"
    assert made["ann@acme.example"] == PersonRef("ann", "acme", "Ann Lee")
    assert made["eve@initech-labs.example"].name == "Eve Q"
    assert made["gus@gmail.com"] == PersonRef(made["gus@gmail.com"].id, None, "gus@gmail.com")
    assert made["Hal@Globex.example"].company_id == "globex"
    companies = directory.companies_by_domains(
        ["initech-labs.example", "umbrella.example", "eu.acme.example", "gmail.com"]
    )
    assert companies == {
        "initech-labs.example": CompanyRef(
            made["eve@initech-labs.example"].company_id or "", "Initech Labs"
        ),
        "umbrella.example": CompanyRef(
            made["fay@umbrella.example"].company_id or "", "Umbrella Corp"
        ),
    }
    assert directory.create_contacts(new) == made


def test_company_names_follow_one_rule() -> None:
    assert company_name_for("acme-robotics.com") == "Acme Robotics"
    assert company_name_for("eu.acme-robotics.com") == "Acme Robotics"
    assert company_name_for("acme-robotics.co.uk") == "Acme Robotics"
    assert company_name_for("xn--fa-hia.de") == "Faß"
    assert company_name_for("") == ""


# -- one normaliser from mail to store: faß.de is xn--fa-hia.de, not fass.de ----

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_idna_addresses_match_from_mail_to_store(both: tuple[AdminDirectory, Store]) -> None:
    directory, store = both
    directory.add_company("fass", "Faß GmbH", ["FAß.de"])
    directory.add_person("ann", "Ann", ["ann@faß.de"], "fass")
    senders = ["ann@xn--fa-hia.de", "Ann@FAß.DE", "ann@fass.de", "bo@Faß.de"]

    keys = [parse_address(s).key for s in senders]
    assert keys == ["ann@xn--fa-hia.de", "ann@xn--fa-hia.de", "ann@fass.de", "bo@xn--fa-hia.de"]
    links = {a.key: a.links for a in match_addresses(map(parse_address, senders), directory)}
    assert links == {
        "ann@xn--fa-hia.de": (Link(TargetKind.PERSON, "ann"), Link(TargetKind.COMPANY, "fass")),
        "bo@xn--fa-hia.de": (Link(TargetKind.COMPANY, "fass"),),
        "ann@fass.de": (),  # IDNA 2003 would have made this Ann
    }

    provider = FakeMailProvider()
    ids = [provider.box.add("INBOX", sample_message(n, sender=s)) for n, s in enumerate(senders)]
    settings = ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE)
    channel = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", settings)
    SyncEngine(store, directory, clock=lambda: NOW).run(channel, provider)

    def subjects(kind: TargetKind, id: str) -> list[str]:
        page = store.timeline(Target(kind, id), Viewer("u-owner"), PageRequest(limit=50))
        return sorted(t.subject or "" for t in page.items)

    assert subjects(TargetKind.PERSON, "ann") == ["Proposal 0", "Proposal 1"]
    assert subjects(TargetKind.COMPANY, "fass") == ["Proposal 0", "Proposal 1", "Proposal 3"]
    assert store.delete_matching("ch", ["Ann@FAß.de"]) == 2
    assert store.delete_matching("ch", ["@FAß.DE"]) == 1
    assert subjects(TargetKind.COMPANY, "fass") == []
    assert store.known_ids("ch", "INBOX", ids) == {ids[2]}  # only the fass.de one is left
