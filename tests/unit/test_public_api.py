"""The public API is what ``__all__`` says, and nothing there is missing."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import commlink

PUBLIC_MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(commlink.__path__, "commlink.")
    if not any(part.startswith("_") for part in name.split("."))
)


def test_top_level_all_is_importable_and_sorted() -> None:
    for name in commlink.__all__:
        assert hasattr(commlink, name), name
    names = [n for n in commlink.__all__ if n[0].isupper()]
    assert names == sorted(names)


def _django_ready() -> None:
    """The Django app's models need settings; the Django tests' conftest
    configures them when it is collected, a run of this folder alone here."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            USE_TZ=True,
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "commlink.contrib.django",
            ],
        )
        django.setup()


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_module_declares_all(module_name: str) -> None:
    if module_name.startswith("commlink.contrib.django"):
        _django_ready()
    module = importlib.import_module(module_name)
    if hasattr(module, "__path__") and not hasattr(module, "__all__"):
        return  # a namespace-only package
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"
