"""The Django application configuration."""

from __future__ import annotations

from django.apps import AppConfig


class CommlinkConfig(AppConfig):
    """commlink's Django app: models under the ``commlink`` label."""

    name = "commlink.contrib.django"
    label = "commlink"
    verbose_name = "commlink"
    default_auto_field = "django.db.models.BigAutoField"
