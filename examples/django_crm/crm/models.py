"""The CRM's own records. commlink reads them through ``ModelDirectory``
(``settings.COMMLINK["DIRECTORY"]``) and keeps mail and meetings in its own
tables; nothing here knows about email."""

from __future__ import annotations

from django.db import models


class Company(models.Model):
    name = models.CharField(max_length=200)
    industry = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return self.name


class Domain(models.Model):
    """A web domain a company owns: mail from it is the company's."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(max_length=255)

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    title = models.CharField(max_length=100, blank=True, default="")
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="people"
    )

    class Meta:
        ordering = ("last_name", "first_name")
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or f"person {self.pk}"


class EmailAddress(models.Model):
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="emails")
    address = models.CharField(max_length=320)
    #: the address's comparison key (lower case, ASCII domain), kept by
    #: commlink because the directory mapping names it: exact indexed lookups
    key = models.CharField(max_length=320, blank=True, default="", db_index=True)

    def __str__(self) -> str:
        return self.address


class Opportunity(models.Model):
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
    amount = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("title",)
        verbose_name_plural = "opportunities"

    def __str__(self) -> str:
        return self.title
