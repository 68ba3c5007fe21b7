"""Matching follows the host's CRM edits without host code: saving or
deleting mapped rows relinks the stored mail once the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from crm_host.models import Company, Domain, EmailAddress, Opportunity, Person
from django.core.management import call_command
from django.db import transaction
from host_fixtures import any_host_fixture, host_fixture  # noqa: F401  (fixtures)

from commlink.addresses import parse_address
from commlink.contrib.django.conf import get_directory, get_store
from commlink.contrib.django.relinking import pending_relinks
from commlink.records import NewContact, PageRequest, Target, TargetKind, Viewer
from commlink.sync.relink import Relinker

ALICE = Viewer("alice")


def subjects(kind: TargetKind, target_id: str) -> set[str]:
    page = get_store().timeline(Target(kind, target_id), ALICE, PageRequest(limit=50))
    return {thread.subject for thread in page.items}


@pytest.fixture
def db(any_host: str) -> str:
    """The demo mailbox synced, on each database; the alias."""
    call_command("commlink_sync", stdout=_Sink())
    return any_host


class _Sink:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def test_a_new_person_is_linked_to_stored_mail_after_commit(db: str) -> None:
    assert subjects(TargetKind.PERSON, "hank") == set()
    with transaction.atomic(using=db):
        Person.objects.using(db).create(id="hank", first_name="Hank", email="Hank@Globex.example")
        assert subjects(TargetKind.PERSON, "hank") == set()  # not before the commit
    found = subjects(TargetKind.PERSON, "hank")
    assert found
    assert pending_relinks() == (set(), {}, set())


def test_an_added_address_links_and_a_deleted_person_unlinks(db: str) -> None:
    person = Person.objects.using(db).create(id="pete", first_name="Peter")
    assert subjects(TargetKind.PERSON, "pete") == set()
    EmailAddress.objects.using(db).create(person=person, address="PETER@initech.example")
    assert subjects(TargetKind.PERSON, "pete")
    assert EmailAddress.objects.using(db).get(person=person).key == "peter@initech.example"
    person.delete()
    assert subjects(TargetKind.PERSON, "pete") == set()


def test_a_rolled_back_change_relinks_nothing(db: str) -> None:
    def failing_edit() -> None:
        with transaction.atomic(using=db):
            Person.objects.using(db).create(id="hank", email="hank@globex.example")
            raise RuntimeError("the host's transaction fails")

    with pytest.raises(RuntimeError):
        failing_edit()
    assert not Person.objects.using(db).filter(id="hank").exists()
    assert subjects(TargetKind.PERSON, "hank") == set()


def test_company_domains_and_person_company_follow_edits(db: str) -> None:
    company = Company.objects.using(db).create(id="globex", name="Globex")
    assert subjects(TargetKind.COMPANY, "globex") == set()
    Domain.objects.using(db).create(company=company, name="globex.example")
    via_domain = subjects(TargetKind.COMPANY, "globex")
    assert via_domain  # hank@globex.example, mindy@sales.globex.example
    Domain.objects.using(db).filter(company=company).delete()
    assert subjects(TargetKind.COMPANY, "globex") == set()
    company.other_domains = "initech.example, globex.example"
    company.save()
    assert subjects(TargetKind.COMPANY, "globex") >= via_domain
    # a free-mail person joins the company: their mail follows
    Person.objects.using(db).create(id="carol", email="carol.baskin@gmail.com", company=company)
    assert subjects(TargetKind.PERSON, "carol") <= subjects(TargetKind.COMPANY, "globex")


def test_opportunity_contacts_follow_m2m_edits(db: str) -> None:
    hank = Person.objects.using(db).create(id="hank", email="hank@globex.example")
    deal = Opportunity.objects.using(db).create(id="renewal", title="Renewal")
    assert subjects(TargetKind.OPPORTUNITY, "renewal") == set()
    deal.contacts.add(hank)
    assert subjects(TargetKind.OPPORTUNITY, "renewal") == subjects(TargetKind.PERSON, "hank")
    hank.opportunities.clear()  # from the other side
    assert subjects(TargetKind.OPPORTUNITY, "renewal") == set()
    deal.contacts.add(hank)
    deal.status = Opportunity.Status.WON  # closed: no longer linked
    deal.save()
    assert subjects(TargetKind.OPPORTUNITY, "renewal") == set()


def test_rows_the_directory_creates_are_not_queued(any_host: str) -> None:
    contact = NewContact(parse_address("dan@initech.example"), "Dan", "", "initech.example")
    made = get_directory().create_contacts([contact])
    assert set(made) == {"dan@initech.example"}
    assert pending_relinks() == (set(), {}, set())
    person = Person.objects.using(any_host).get(pk=made["dan@initech.example"].id)
    assert person.company is not None


def test_a_failing_relink_is_logged_not_raised(
    db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Relinker, *args: Any) -> int:
        raise ConnectionError("the store is down")

    monkeypatch.setattr(Relinker, "person_changed", broken)
    with caplog.at_level(logging.ERROR, logger="commlink.contrib.django"):
        Person.objects.using(db).create(id="hank", email="hank@globex.example")
    assert Person.objects.using(db).filter(id="hank").exists()
    assert "relinking after a CRM change failed" in caplog.text
