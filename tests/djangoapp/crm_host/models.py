"""The host's own records, shaped like a typical CRM's.

People hold one primary address on the row and more in a related model;
companies own domains in a related model and in a comma-separated field,
so the tests cover every relation kind the directory mapping supports.
Records have string primary keys (the conformance suite names its records);
the value rows have integer ones.
"""

from __future__ import annotations

import uuid

from django.db import models


def new_id() -> str:
    return uuid.uuid4().hex


class Company(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    name = models.CharField(max_length=200)
    #: extra domains, comma-separated, as some CRMs keep them
    other_domains = models.CharField(max_length=500, blank=True, default="")

    def __str__(self) -> str:
        return self.name


class Domain(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=255)

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    email = models.CharField(max_length=320, blank=True, default="")
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="people"
    )

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


class EmailAddress(models.Model):
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="emails")
    address = models.CharField(max_length=320)
    #: the normalised comparison key, filled by commlink when the mapping names it
    key = models.CharField(max_length=320, blank=True, default="", db_index=True)

    def __str__(self) -> str:
        return self.address


class Opportunity(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_id)

    class Status(models.TextChoices):
        OPEN = "open"
        WON = "won"
        LOST = "lost"

    title = models.CharField(max_length=200)
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.CASCADE, related_name="opportunities"
    )
    contacts = models.ManyToManyField(Person, blank=True, related_name="opportunities")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)

    def __str__(self) -> str:
        return self.title
