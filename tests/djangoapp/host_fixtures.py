"""Shared set-up of the host integration tests: the test host's mapping,
a mailbox channel on the demo mbox, and settings that use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_host.models import Company, Domain, EmailAddress, Opportunity, Person
from django.test import override_settings

import commlink.cli.demo
from commlink.contrib.django.store_testing import clear_store

DEMO = Path(commlink.cli.demo.__file__).parent / "demo_data"

#: the mapping the tests use: every relation kind the format supports
MAPPING: dict[str, Any] = {
    "person": {
        "model": "crm_host.Person",
        "name": ["first_name", "last_name"],
        "company": "company",
        "addresses": ["email", {"path": "emails__address", "key": "emails__key"}],
    },
    "company": {
        "model": "crm_host.Company",
        "name": "name",
        "domains": ["domains__name", {"path": "other_domains", "separator": ","}],
    },
    "opportunity": {
        "model": "crm_host.Opportunity",
        "name": "title",
        "company": "company",
        "contacts": "contacts",
        "open": {"status": "open"},
    },
}


def mapping(using: str = "default", **changes: Any) -> dict[str, Any]:
    return {**MAPPING, "using": using, **changes}


def mailbox(channel_id: str = "alice-mail", **changes: Any) -> dict[str, Any]:
    """Alice's demo mailbox as a ``COMMLINK["CHANNELS"]`` entry."""
    return {
        "id": channel_id,
        "user": "alice",
        "provider": "mbox",
        "path": str(DEMO / "demo.mbox"),
        "owner": "alice@northwind.example",
        "org_domains": ["northwind.example"],
        "visibility": "subject",
        "contact_policy": "none",
        **changes,
    }


def host_settings(using: str = "default", **changes: Any) -> dict[str, Any]:
    """The ORM store and the host's models both on the database ``using``."""
    return {
        "STORE": "orm",
        "STORE_DATABASE": using,
        "DIRECTORY": mapping(using),
        "CHANNELS": [mailbox()],
        **changes,
    }


def clear_host(using: str = "default") -> None:
    for model in (Opportunity, EmailAddress, Person, Domain, Company):
        model.objects.using(using).all().delete()


@pytest.fixture(name="host")
def host_fixture() -> Iterator[dict[str, Any]]:
    """An empty CRM and store, with ``host_settings()`` in effect."""
    yield from _host("default")


@pytest.fixture(name="any_host", params=["default", pytest.param("pg", marks=pytest.mark.postgres)])
def any_host_fixture(request: pytest.FixtureRequest) -> Iterator[str]:
    """``host`` on SQLite and on PostgreSQL; the database alias."""
    using = request.getfixturevalue("pg_alias") if request.param == "pg" else "default"
    for _ in _host(using):
        yield using


def _host(using: str) -> Iterator[dict[str, Any]]:
    settings = host_settings(using)
    clear_host(using)
    clear_store(using)
    with override_settings(COMMLINK=settings):
        yield settings
    clear_host(using)
    clear_store(using)
