"""The Django application configuration."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["CommlinkConfig"]


class CommlinkConfig(AppConfig):
    """commlink's Django app: models under the ``commlink`` label."""

    name = "commlink.contrib.django"
    label = "commlink"
    verbose_name = "commlink"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # relinking and key hooks on the host models settings.COMMLINK maps
        from .signals import install

        install()
