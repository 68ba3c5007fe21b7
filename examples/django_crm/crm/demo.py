"""The demo: two users, a few companies, people and opportunities, and the
demo mailboxes and calendars synced into commlink's tables.

``set_up_demo`` is idempotent: users and records are created once, and a
second sync of unchanged files changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction

from commlink.sync.report import SyncReport

from .channels import sync_all
from .models import Company, Domain, EmailAddress, Opportunity, Person

#: the demo's users: (username, first name, last name, password)
USERS = (
    ("alice", "Alice", "Martin", "northwind"),
    ("bob", "Bob", "Chen", "northwind"),
)


def create_users() -> None:
    for username, first, last, password in USERS:
        if not User.objects.filter(username=username).exists():
            # both may edit the CRM's records in /admin/
            User.objects.create_superuser(
                username,
                f"{username}@northwind.example",
                password,
                first_name=first,
                last_name=last,
            )


def _person(first: str, last: str, title: str, company: Company | None, *emails: str) -> Person:
    person = Person.objects.create(first_name=first, last_name=last, title=title, company=company)
    for address in emails:
        EmailAddress.objects.create(person=person, address=address)
    return person


def create_records() -> None:
    """The CRM's own rows (the same CRM as ``commlink demo``, plus Globex's lawyer)."""
    if Company.objects.exists():
        return
    with transaction.atomic():
        globex = Company.objects.create(name="Globex", industry="Manufacturing")
        Domain.objects.create(company=globex, name="globex.example")
        initech = Company.objects.create(name="Initech", industry="Software")
        Domain.objects.create(company=initech, name="initech.example")
        hank = _person("Hank", "Scorpio", "CEO", globex, "hank@globex.example")
        _person("Mindy", "Simmons", "Head of procurement", None, "Mindy@Sales.Globex.example")
        _person("Lana", "Kane", "Counsel", globex, "lana@globex.example")
        peter = _person("Peter", "Gibbons", "Engineer", initech, "peter@initech.example")
        _person("Bill", "Lumbergh", "VP", initech, "bill@initech.example")
        _person("Carol", "Baskin", "", None, "carol.baskin@gmail.com")
        renewal = Opportunity.objects.create(
            title="Globex renewal 2027", company=globex, amount=48_000
        )
        renewal.contacts.add(hank)
        pilot = Opportunity.objects.create(title="Initech pilot", company=initech, amount=12_000)
        pilot.contacts.add(peter)


def set_up_demo() -> Sequence[SyncReport]:
    """Users, records, then one sync of every configured channel."""
    create_users()
    create_records()
    return sync_all()
