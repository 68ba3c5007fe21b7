"""Discovery started early (``CalDavProvider.warm``), on each server: the
next ``calendars()`` takes its answer (or its error) without asking again,
and a warm-up that went stale is asked again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from commlink.errors import AuthError
from commlink.ports import Warmable
from commlink.providers import background
from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.dav_account import DavAccount

pytestmark = pytest.mark.integration

DISCOVERY = 3  # principal, calendar home, calendar listing


def _warm_threads() -> int:
    return sum(t.name == "commlink-caldav-warm" for t in threading.enumerate())


def test_warm_discovery_is_taken_by_calendars_without_a_second_request(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    account.make_calendar("work", "Work")
    provider = connect()
    assert isinstance(provider, Warmable)
    provider.warm()
    provider.warm()  # a second call starts nothing more
    names = sorted(f.name for f in provider.calendars())
    assert names == ["Work"]
    assert provider.requests == DISCOVERY
    assert _warm_threads() == 0
    # the answer is taken once: the next listing asks again, and sees a new calendar
    account.make_calendar("home", "Home")
    assert sorted(f.name for f in provider.calendars()) == ["Home", "Work"]
    assert provider.requests == DISCOVERY + 1


def test_a_failed_warm_up_raises_its_error_from_calendars_without_asking_again(
    account: DavAccount,
) -> None:
    with CalDavProvider(account.url, username=account.username, password="wrong") as provider:
        provider.warm()
        with pytest.raises(AuthError):
            provider.calendars()
        asked = provider.requests
        with pytest.raises(AuthError):  # the next listing asks the server itself
            provider.calendars()
        assert provider.requests > asked


def test_a_stale_warm_up_is_not_used(
    account: DavAccount, connect: Callable[..., CalDavProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    account.make_calendar("work", "Work")
    provider = connect()
    provider.warm()
    while _warm_threads():
        time.sleep(0.01)
    account.make_calendar("late", "Late")
    later = time.monotonic() + 61
    monkeypatch.setattr(background.time, "monotonic", lambda: later)
    assert sorted(f.name for f in provider.calendars()) == ["Late", "Work"]


def test_close_waits_for_a_warm_up_under_way(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    account.make_calendar("work", "Work")
    provider = connect()
    provider.warm()
    provider.close()
    assert _warm_threads() == 0
