"""Editing the CRM's records (``/admin/``): a person's addresses and a
company's domains are edited inline, and commlink relinks stored mail when
a change commits."""

from __future__ import annotations

from django.contrib import admin

from .models import Company, Domain, EmailAddress, Opportunity, Person


class EmailAddressInline(admin.TabularInline):  # type: ignore[type-arg]
    model = EmailAddress
    fields = ("address",)
    extra = 1


class DomainInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Domain
    extra = 1


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    inlines = (EmailAddressInline,)
    list_display = ("__str__", "title", "company")


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    inlines = (DomainInline,)


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "company", "status", "amount")
    filter_horizontal = ("contacts",)
