"""ModelDirectory over the test host's models: the public conformance suite
on SQLite and PostgreSQL, with and without shadow key fields, plus the
mapping's own rules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from crm_host.models import Company, Domain, EmailAddress, Opportunity, Person
from django.db import connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from host_fixtures import MAPPING, clear_host, mapping
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.addresses import address_key, parse_address
from commlink.contrib.django.conf import get_directory, get_mapping
from commlink.contrib.django.directory import ModelDirectory
from commlink.errors import ConfigError
from commlink.records import NewContact
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.directory_conformance import (
    CompanySeed,
    DirectoryConformance,
    OpportunitySeed,
    PersonSeed,
)


def populate_host(
    using: str,
    people: Sequence[PersonSeed],
    companies: Sequence[CompanySeed],
    opportunities: Sequence[OpportunitySeed],
    *,
    spread: bool = True,
) -> None:
    """Store seeds as a host would: the first address on the person row and
    the rest as related rows; the first domain as a Domain row and the rest
    in the comma field (``spread=False``: everything in related rows)."""
    for c in companies:
        company = Company.objects.using(using).create(id=c.id, name=c.name)
        first, rest = (c.domains[:1], c.domains[1:]) if spread else (c.domains, ())
        for domain in first:
            Domain.objects.using(using).create(company=company, name=domain)
        company.other_domains = ", ".join(rest)
        company.save(using=using)
    for p in people:
        first_name, _, last_name = p.name.partition(" ")
        person = Person.objects.using(using).create(
            id=p.id,
            first_name=first_name,
            last_name=last_name,
            company_id=p.company_id,
            email=p.addresses[0] if spread else "",
        )
        for address in p.addresses[1:] if spread else p.addresses:
            EmailAddress.objects.using(using).create(person=person, address=address)
    for o in opportunities:
        opportunity = Opportunity.objects.using(using).create(
            id=o.id, title=o.name, company_id=o.company_id
        )
        opportunity.contacts.set(o.contacts)


class _HostConformance(DirectoryConformance):
    using = "default"
    spread = True
    settings: dict[str, Any] = {}  # noqa: RUF012

    @pytest.fixture
    def directory(self, request: pytest.FixtureRequest) -> Iterator[ModelDirectory]:
        using = request.getfixturevalue("pg_alias") if self.using == "pg" else self.using
        clear_host(using)
        settings = mapping(using, **self.settings)
        # the app's hooks (key fields, relinking) follow the settings
        with override_settings(COMMLINK={"DIRECTORY": settings, "RELINK": False}):
            yield ModelDirectory.from_settings(settings)
        clear_host(using)

    def populate(
        self,
        directory: ModelDirectory,
        people: Sequence[PersonSeed],
        companies: Sequence[CompanySeed],
        opportunities: Sequence[OpportunitySeed],
    ) -> None:
        populate_host(directory.mapping.using, people, companies, opportunities, spread=self.spread)


class TestSqliteDirectory(_HostConformance):
    pass


class TestSqliteDirectoryRelatedRowsOnly(_HostConformance):
    spread = False


class TestSqliteDirectoryWithoutKeyFields(_HostConformance):
    spread = False
    settings = {  # noqa: RUF012
        "person": {**MAPPING["person"], "addresses": "emails__address"},
    }


@pytest.mark.postgres
class TestPostgresDirectory(_HostConformance):
    using = "pg"


@pytest.mark.postgres
class TestPostgresDirectoryWithoutKeyFields(_HostConformance):
    using = "pg"
    spread = False
    settings = {  # noqa: RUF012
        "person": {**MAPPING["person"], "addresses": "emails__address"},
    }


# -- the mapping's own rules ---------------------------------------------------


@pytest.fixture(params=["default", pytest.param("pg", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest) -> Iterator[ModelDirectory]:
    """The suite's records in the host's models, on each database."""
    from commlink.testing.directory_conformance import COMPANIES, OPPORTUNITIES, PEOPLE

    using = request.getfixturevalue("pg_alias") if request.param == "pg" else "default"
    clear_host(using)
    settings = mapping(using)
    with override_settings(COMMLINK={"DIRECTORY": settings, "RELINK": False}):
        populate_host(using, PEOPLE, COMPANIES, OPPORTUNITIES)
        yield ModelDirectory.from_settings(settings)
    clear_host(using)


def test_lookups_are_batched(seeded: ModelDirectory) -> None:
    keys = [f"someone{i}@acme.example" for i in range(1000)] + ["ann.lee@gmail.com"]
    connection = connections[seeded.mapping.using]
    with CaptureQueriesContext(connection) as queries:
        found = seeded.people_by_addresses(keys)
    assert {k: p.id for k, p in found.items()} == {"ann.lee@gmail.com": "ann"}
    # two value fields, 1,001 keys in chunks of 400
    assert len(queries) == 2 * 3
    with CaptureQueriesContext(connection) as queries:
        seeded.companies_by_domains([f"d{i}.example" for i in range(120)])
    assert len(queries) == 1 + 3  # the Domain rows, then the comma field in chunks of 50
    with CaptureQueriesContext(connection) as queries:
        seeded.opportunities_for(["acme", "globex"], ["ann", "bob", "cat"])
    assert len(queries) == 2


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.text(max_size=40)
        | st.sampled_from(["%@acme.example", "_nn@acme.example", "a%", "%", "_", "\\", "'"]),
        max_size=8,
    )
)
def test_hostile_keys_never_break_a_lookup(seeded: ModelDirectory, keys: list[str]) -> None:
    found = seeded.people_by_addresses(keys)
    assert set(found) <= set(keys)
    assert all(address_key(k) for k in found)
    companies = seeded.companies_by_domains(keys)
    assert set(companies) <= set(keys)
    seeded.opportunities_for(keys, keys)


def test_like_wildcards_in_a_delimited_field_match_literally(seeded: ModelDirectory) -> None:
    assert seeded.companies_by_domains(["%.example", "_cme-corp.example"]) == {}
    assert {d: c.id for d, c in seeded.companies_by_domains(["ACME-corp.example"]).items()} == {
        "ACME-corp.example": "acme"
    }


def test_contact_names_and_values_are_bounded(seeded: ModelDirectory) -> None:
    huge = "N" * 5000
    contact = NewContact(parse_address("new@startup.example"), huge, huge, "startup.example", huge)
    made = seeded.create_contacts([contact])
    person = Person.objects.using(seeded.mapping.using).get(pk=made["new@startup.example"].id)
    assert len(person.first_name) == 100
    assert len(person.last_name) == 100
    assert person.company is not None
    assert len(person.company.name) == 200
    too_long = NewContact(parse_address(f"{'x' * 60}@{'d' * 60}.{'e' * 60}.{'f' * 60}.example"))
    long_made = seeded.create_contacts([too_long])
    assert set(long_made) <= {too_long.address.key}


def test_no_contacts_are_created_when_the_mapping_says_so() -> None:
    clear_host("default")
    directory = ModelDirectory.from_settings(mapping(create_contacts=False))
    dan = NewContact(parse_address("dan@initech.example"), "Dan")
    assert directory.create_contacts([dan]) == {}
    assert not Person.objects.exists()


def test_refresh_keys_repairs_rows_written_around_the_hooks(seeded: ModelDirectory) -> None:
    rows = EmailAddress.objects.using(seeded.mapping.using)
    rows.update(key="")
    assert seeded.people_by_addresses(["ann.lee@gmail.com"]) == {}
    assert seeded.refresh_keys() == rows.count()
    assert seeded.refresh_keys() == 0
    assert seeded.people_by_addresses(["ann.lee@gmail.com"])["ann.lee@gmail.com"].id == "ann"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"person": {"model": "crm_host.Nobody", "addresses": "email"}}, "no installed model"),
        ({"person": {"model": "crm_host.Person", "addresses": "mail"}}, "no field 'mail'"),
        ({"person": {"model": "crm_host.Person", "addresses": "company"}}, "not a text field"),
        ({"person": {"model": "crm_host.Person", "addresses": []}}, "at least one field"),
        (
            {"person": {"model": "crm_host.Person", "addresses": {"path": "email", "key": "x"}}},
            "no field 'x'",
        ),
        (
            {
                "person": {
                    "model": "crm_host.Person",
                    "addresses": {"path": "emails__address", "key": "email"},
                }
            },
            "beside",
        ),
        ({"person": {**MAPPING["person"], "colour": "red"}}, "unknown keys"),
        ({"person": {**MAPPING["person"], "company": "emails"}}, "does not lead to Company"),
        ({"opportunity": {**MAPPING["opportunity"], "contacts": "company"}}, "does not lead"),
        ({"create_contacts": "yes"}, "true or false"),
        ({"using": 3}, "database alias"),
    ],
)
def test_mapping_mistakes_are_config_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelDirectory.from_settings({**MAPPING, **change})
    with pytest.raises(ConfigError, match="required"):
        ModelDirectory.from_settings({"company": MAPPING["company"]})


def test_a_host_directory_can_be_named_instead(seeded: ModelDirectory) -> None:
    factory = "commlink.testing.directory.InMemoryDirectory"
    with override_settings(COMMLINK={"DIRECTORY": factory}):
        assert isinstance(get_directory(), InMemoryDirectory)
        assert get_mapping() is None
    with (
        override_settings(COMMLINK={"DIRECTORY": "no.such.Factory"}),
        pytest.raises(ConfigError, match="cannot import"),
    ):
        get_directory()
    # a mistake in the settings shows as soon as they are in effect
    with (
        pytest.raises(ConfigError, match="unknown keys"),
        override_settings(COMMLINK={"DIRECTORY": MAPPING, "COLOUR": 1}),
    ):
        get_directory()


def test_a_model_commlink_cannot_fill_is_a_config_error() -> None:
    clear_host("default")
    person = {k: v for k, v in MAPPING["person"].items() if k != "company"}
    # a Domain row needs its company: commlink cannot create one on its own
    company = {"model": "crm_host.Domain", "name": "name", "domains": "name"}
    directory = ModelDirectory.from_settings({"person": person, "company": company})
    eve = NewContact(parse_address("eve@initech.example"), "Eve", "", "initech.example")
    with pytest.raises(ConfigError, match="create_contacts"):
        directory.create_contacts([eve])
    assert not Person.objects.exists()  # nothing half-written
