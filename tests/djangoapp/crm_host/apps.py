"""The test host CRM's app configuration."""

from __future__ import annotations

from django.apps import AppConfig


class CrmHostConfig(AppConfig):
    name = "crm_host"
    default_auto_field = "django.db.models.BigAutoField"
