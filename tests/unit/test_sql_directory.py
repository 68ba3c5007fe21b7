"""SqlDirectory: the reference CRM tables behind the Directory port, on
SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine

from commlink.errors import StoreError
from commlink.model import Address
from commlink.ports import Directory
from commlink.records import CompanyRef, NewContact, OpportunityRef, PersonRef
from commlink.stores.sql import SqlStore
from commlink.stores.sql_directory import SqlDirectory, normalise_domain, normalise_key
from commlink.stores.sql_schema import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def directory(request: pytest.FixtureRequest, tmp_path: Any) -> SqlDirectory:
    if request.param == "sqlite":
        return SqlDirectory(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    engine: Engine = request.getfixturevalue("pg_engine")
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "commlink_schema":
                conn.execute(table.delete())
    return SqlDirectory(engine)


def _crm(directory: SqlDirectory) -> None:
    directory.add_company("acme", "Acme", ["ACME.example", "acme-corp.example"])
    directory.add_company("globex", "Globex", ["globex.example"])
    directory.add_person("ann", "Ann Lee", ["Ann@Acme.example", "ann.lee@gmail.example"], "acme")
    directory.add_person("bob", "Bob Ray", ["bob@globex.example"], "globex")
    directory.add_person("cat", "Cat Poe", ["cat@freelance.example"])
    directory.add_opportunity("deal", "Acme renewal", "acme", ["ann", "cat"])
    directory.add_opportunity("pilot", "Globex pilot", "globex", ["bob"])


def test_it_is_a_directory(directory: SqlDirectory) -> None:
    assert isinstance(directory, Directory)


def test_people_by_addresses(directory: SqlDirectory) -> None:
    _crm(directory)
    found = directory.people_by_addresses(
        ["ann@acme.example", "ann.lee@gmail.example", "nobody@acme.example", "bob@globex.example"]
    )
    ann = PersonRef(id="ann", company_id="acme", name="Ann Lee")
    assert found == {
        "ann@acme.example": ann,
        "ann.lee@gmail.example": ann,
        "bob@globex.example": PersonRef("bob", "globex", "Bob Ray"),
    }
    assert directory.people_by_addresses([]) == {}


def test_companies_by_exact_domains(directory: SqlDirectory) -> None:
    _crm(directory)
    found = directory.companies_by_domains(
        ["acme.example", "sub.acme.example", "acme-corp.example"]
    )
    acme = CompanyRef(id="acme", name="Acme")
    assert found == {"acme.example": acme, "acme-corp.example": acme}


def test_idna_domains_are_normalised(directory: SqlDirectory) -> None:
    directory.add_company("books", "Bücher", ["Bücher.example"])
    directory.add_person("bea", "Bea", ["Bea@Bücher.example"], "books")
    assert normalise_domain("Bücher.example") == "xn--bcher-kva.example"
    assert normalise_key("Bea@Bücher.example") == "bea@xn--bcher-kva.example"
    assert directory.companies_by_domains(["xn--bcher-kva.example"])[
        "xn--bcher-kva.example"
    ].id == ("books")
    assert (
        directory.people_by_addresses(["bea@xn--bcher-kva.example"])["bea@xn--bcher-kva.example"].id
        == "bea"
    )


def test_opportunities_by_company_and_point_of_contact(directory: SqlDirectory) -> None:
    _crm(directory)
    deal = OpportunityRef("deal", "acme", "Acme renewal")
    pilot = OpportunityRef("pilot", "globex", "Globex pilot")
    found = directory.opportunities_for(["acme", "globex", "none"], ["cat", "bob", "ann"])
    assert {k: list(v) for k, v in found.items()} == {
        "acme": [deal],
        "globex": [pilot],
        "cat": [deal],
        "ann": [deal],
        "bob": [pilot],
    }
    assert directory.opportunities_for([], []) == {}
    directory.add_opportunity("deal", "Acme renewal", "acme", ["ann"])  # cat is no contact now
    assert "cat" not in directory.opportunities_for([], ["cat"])


def test_address_changes_and_deletion(directory: SqlDirectory) -> None:
    _crm(directory)
    directory.set_person_addresses("ann", ["ann@new-acme.example"])
    assert directory.people_by_addresses(["ann@acme.example"]) == {}
    assert (
        directory.people_by_addresses(["ann@new-acme.example"])["ann@new-acme.example"].id == "ann"
    )
    directory.set_person_addresses("cat", ["bob@globex.example"])  # an address moves
    assert directory.people_by_addresses(["bob@globex.example"])["bob@globex.example"].id == "cat"
    directory.delete_person("cat")
    assert directory.people_by_addresses(["bob@globex.example"]) == {}
    assert "cat" not in directory.opportunities_for([], ["cat"])
    directory.set_company_domains("acme", ["acme.example.org"])
    assert directory.companies_by_domains(["acme.example"]) == {}
    assert directory.companies_by_domains(["acme.example.org"])["acme.example.org"].id == "acme"


def test_create_contacts(directory: SqlDirectory) -> None:
    _crm(directory)
    new = [
        NewContact(Address("dan@acme.example", "dan@acme.example"), "Dan", "Moe", "acme.example"),
        NewContact(
            Address("eve@initech.example", "eve@initech.example"), "Eve", "", "initech.example"
        ),
        NewContact(
            Address("fay@initech.example", "fay@initech.example", "Fay Q"),
            "",
            "",
            "initech.example",
        ),
        NewContact(Address("gus@gmail.example", "gus@gmail.example")),
        NewContact(Address("ann@acme.example", "ann@acme.example"), "Someone", "Else"),
        NewContact(Address("", "", valid=False, raw="broken")),
    ]
    created = directory.create_contacts(new)
    assert set(created) == {
        "dan@acme.example",
        "eve@initech.example",
        "fay@initech.example",
        "gus@gmail.example",
        "ann@acme.example",
    }
    assert created["ann@acme.example"] == PersonRef("ann", "acme", "Ann Lee")  # existing person
    assert created["dan@acme.example"].company_id == "acme"
    assert created["dan@acme.example"].name == "Dan Moe"
    assert created["fay@initech.example"].name == "Fay Q"
    assert created["gus@gmail.example"].name == "gus@gmail.example"
    assert created["gus@gmail.example"].company_id is None
    initech = created["eve@initech.example"].company_id
    assert initech is not None
    assert created["fay@initech.example"].company_id == initech  # one company per domain
    assert directory.companies_by_domains(["initech.example"])["initech.example"] == CompanyRef(
        initech, "Initech"
    )
    # creating again finds the same people
    assert directory.create_contacts(new) == created
    assert directory.people_by_addresses(list(created)) == created


def test_directory_shares_the_store_database(tmp_path: Any) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'shared.sqlite'}")
    directory = SqlDirectory(store)
    directory.add_person("p", "P", ["p@x.example"])
    assert directory.engine is store.engine
    assert "commlink_people" in sa.inspect(store.engine).get_table_names()


def test_large_lookups_are_one_statement(directory: SqlDirectory) -> None:
    count = 25_000
    directory.add_people_bulk(
        (f"p{i}", f"Person {i}", [f"p{i}@c{i % 100}.example"], None) for i in range(count)
    )
    keys = [f"p{i}@c{i % 100}.example" for i in range(count)] + ["x@nowhere.example"]
    selects: list[str] = []

    def record(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            selects.append(args[2])

    event.listen(directory.engine, "before_cursor_execute", record)
    try:
        found = directory.people_by_addresses(keys)
    finally:
        event.remove(directory.engine, "before_cursor_execute", record)
    assert len(found) == count
    assert found["p123@c23.example"].id == "p123"
    assert len(selects) == 1  # the 25,001 keys travel as one parameter


@pytest.mark.parametrize("directory", ["sqlite"], indirect=True)
def test_two_hundred_thousand_people(directory: SqlDirectory) -> None:
    count = 200_000
    began = time.perf_counter()
    directory.add_people_bulk(
        (f"p{i}", f"Person {i}", [f"p{i}@c{i % 5000}.example"], None) for i in range(count)
    )
    wanted = [f"p{i}@c{i % 5000}.example" for i in range(0, count, 7)]
    found = directory.people_by_addresses(wanted)
    elapsed = time.perf_counter() - began
    assert len(found) == len(wanted)
    assert elapsed < 60, f"{elapsed:.1f}s for 200,000 people"
    small = time.perf_counter()
    assert len(directory.people_by_addresses(wanted[:50])) == 50
    assert time.perf_counter() - small < 1


def test_bulk_insert_errors_are_store_errors(directory: SqlDirectory) -> None:
    directory.add_people_bulk([("p1", "P", ["p1@x.example"], None)])
    with pytest.raises(StoreError):
        directory.add_people_bulk([("p1", "P again", ["other@x.example"], None)])
    assert directory.people_by_addresses(["other@x.example"]) == {}


def _reference_key(address: str) -> str:
    """The definition of a key, without the ASCII fast path."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local.lower()}@{normalise_domain(domain)}"


@settings(max_examples=200, deadline=None)
@given(
    address=st.one_of(
        st.text(alphabet="aB.@ -_\t\u00e9\u00fc\u0130", max_size=16),
        st.emails().map(lambda e: f" {e.upper()}. "),
    )
)
def test_normalise_key_fast_path_matches_the_definition(address: str) -> None:
    assert normalise_key(address) == _reference_key(address)
