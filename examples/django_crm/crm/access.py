"""How the CRM reads commlink: the configured store, and the ``Viewer`` of
the signed-in user. Every page reads mail and meetings through the store's
read API with that viewer, so the store applies visibility."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from commlink.contrib.django.conf import get_directory, get_store
from commlink.ports import Store
from commlink.records import PersonRef, Viewer

__all__ = ["page_size", "people_by_address", "store", "viewer_for"]


def store() -> Store:
    return get_store()


def viewer_for(user: AbstractBaseUser | AnonymousUser) -> Viewer:
    """The commlink viewer of a CRM user: channels are owned by usernames."""
    return Viewer(user.get_username())


def page_size() -> int:
    return int(getattr(settings, "CRM_PAGE_SIZE", 20))


def people_by_address(keys: Iterable[str]) -> Mapping[str, PersonRef]:
    """The CRM people holding these address keys (one directory read)."""
    wanted = {key for key in keys if key}
    return get_directory().people_by_addresses(wanted) if wanted else {}
