"""Full listings read ahead during a first sync, on each server: the next
calendar's listing is asked for while one is processed, it replaces the
request that calendar would make, it is dropped unused once a scope asks for
its changes, and an edit made meanwhile is never lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.dav_account import DavAccount

pytestmark = pytest.mark.integration

CALENDARS = ("a", "b", "c")
DISCOVERY = 3  # principal, calendar home, calendar listing


def _ics(uid: str, title: str = "Meeting") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _fill(account: DavAccount) -> None:
    for cal in CALENDARS:
        account.make_calendar(cal, cal.upper())
        for n in range(3):
            account.put(cal, f"{n}.ics", _ics(f"{cal}{n}"))


def _names(ids: tuple[str, ...]) -> list[str]:
    return sorted(i.rsplit("/", 1)[-1] for i in ids)


def _readers_done() -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not any(t.name == "commlink-caldav-ahead" for t in threading.enumerate()):
            return True
        time.sleep(0.02)
    return False


def test_the_next_listing_is_asked_for_ahead_and_used(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    _fill(account)
    provider = connect()
    scopes = provider.scopes(provider.calendars())
    assert provider.requests == DISCOVERY
    seen: list[list[str]] = []
    for n, scope in enumerate(scopes):
        provider.snapshot(scope)
        page = provider.list_page(scope, None)
        seen.append(_names(page.ids))
        # this calendar's listing came ahead (but the first): one request each
        assert provider.requests >= DISCOVERY + n + 1
        events = list(provider.fetch(scope, page.ids))
        assert all(e.error is None and e.events for e in events)
    assert seen == [["0.ics", "1.ics", "2.ics"]] * len(CALENDARS)
    assert provider.requests == DISCOVERY + len(CALENDARS)


def test_no_listing_is_read_ahead_once_a_scope_asks_for_changes(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    _fill(account)
    earlier = connect()
    cursor = earlier.snapshot(earlier.scopes(earlier.calendars())[0])
    provider = connect()
    first, second, *_ = provider.scopes(provider.calendars())
    assert provider.changes(first, cursor).upserted == ()  # as listed: no request
    provider.snapshot(second)
    assert _names(provider.list_page(second, None).ids) == ["0.ics", "1.ics", "2.ics"]
    assert provider.requests == DISCOVERY + 1


def test_a_listing_read_ahead_is_dropped_when_its_scope_asks_for_changes(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    _fill(account)
    earlier = connect()
    cursor = earlier.snapshot(earlier.scopes(earlier.calendars())[1])
    provider = connect()
    first, second, third = provider.scopes(provider.calendars())
    provider.snapshot(first)
    provider.list_page(first, None)  # and the second's, ahead
    assert provider.changes(second, cursor).upserted == ()  # as listed: no request
    assert _readers_done()
    provider.snapshot(third)
    assert _names(provider.list_page(third, None).ids) == ["0.ics", "1.ics", "2.ics"]
    assert provider.requests == DISCOVERY + 3  # the dropped listing, then the third's


def test_an_edit_during_a_listing_read_ahead_shows_in_the_next_step(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    _fill(account)
    provider = connect()
    first, second, _third = provider.scopes(provider.calendars())
    provider.snapshot(first)
    provider.list_page(first, None)  # the second's listing is asked for now
    name = second.id.rstrip("/").rsplit("/", 1)[-1]
    account.put(name, "1.ics", _ics(f"{name}1", "Moved"))
    cursor = provider.snapshot(second)  # the token listed before the edit
    provider.list_page(second, None)
    # the listing covers its snapshot: nothing to ask in this step
    assert provider.changes(second, cursor).cursor == cursor
    provider.close()
    assert _readers_done()
    later = connect()
    later.scopes(later.calendars())
    changed = later.changes(second, cursor)
    assert _names(changed.upserted) == ["1.ics"]
    titles = [e.events[0].title for e in later.fetch(second, changed.upserted)]
    assert titles == ["Moved"]
