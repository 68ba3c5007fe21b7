"""The CalDAV provider against real servers (Radicale, Xandikos, Cyrus CalDAV),
driven by the sync engine."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from commlink.errors import AuthError, CursorExpired, TransientError
from commlink.model import Channel, ChannelKind, ChannelSettings, Limits
from commlink.providers.caldav.provider import CalDavProvider
from commlink.records import ChannelStatus, EventSummary, Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.dav_account import DavAccount
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.radicale import free_port
from server_fixtures import DavServer

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
ANN = Target(TargetKind.PERSON, "p-ann")
VIEWER = Viewer("u-owner")
WINDOW = Window(
    datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
)
CHANNEL = Channel(
    "cal",
    "u-owner",
    ChannelKind.CALENDAR,
    "caldav",
    ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"})),
)


def vevent(uid: str, title: str, start: str, *lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{title}\r\nORGANIZER:mailto:{OWNER}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@client.example\r\n{body}END:VEVENT\r\n"
    )


def vcalendar(*events: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + "".join(events)
        + ("END:VCALENDAR\r\n")
    )


class Env:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.directory = InMemoryDirectory()
        self.directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
        self.engine = SyncEngine(self.store, self.directory, batch_size=50)

    def run(self, provider: CalDavProvider) -> int:
        """One step; returns the resyncs it needed."""
        report = self.engine.run(CHANNEL, provider)
        assert report.errors == []
        return report.resyncs

    def events(self) -> list[EventSummary]:
        return list(self.store.events(ANN, VIEWER, WINDOW).items)

    def titles(self) -> list[str]:
        return sorted(e.title or "" for e in self.events())


@pytest.fixture
def env() -> Env:
    return Env()


def test_quiet_step_costs_one_request_for_the_channel(
    account: DavAccount, connect: Callable[..., CalDavProvider], env: Env, dav_server: DavServer
) -> None:
    for cal in ("a", "b", "c"):
        account.make_calendar(cal, cal.upper())
        for n in range(3):
            account.put(
                cal, f"{n}.ics", vcalendar(vevent(f"{cal}{n}", f"{cal}{n}", "20260302T090000Z"))
            )
    for mode in (None, False):
        provider = connect(use_sync_collection=mode)
        quiet = Env()
        quiet.run(provider)
        assert len(quiet.events()) == 9
        before = provider.requests
        quiet.run(provider)
        assert provider.requests - before == 1  # the calendar listing; no REPORT at all
        account.put("b", "new.ics", vcalendar(vevent("b-new", "new", "20260303T090000Z")))
        before = provider.requests
        quiet.run(provider)
        assert "new" in quiet.titles()
        spent = provider.requests - before
        # sync-collection: the listing and one REPORT that brings the data
        # (Xandikos answers calendar-data there with 404: a multiget follows);
        # fallback: the listing and one calendar-query of the changed calendar
        assert spent == (3 if mode is None and dav_server.kind == "xandikos" else 2)
        account.delete("b", "new.ics")


def test_multiget_is_one_report_per_chunk(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    path = account.make_calendar("work")
    for n in range(5):
        account.put("work", f"{n}.ics", vcalendar(vevent(f"m{n}", f"M{n}", "20260302T090000Z")))
    # no room to hold the listing's data: fetch() asks for it with multigets
    provider = connect(multiget_size=2, limits=Limits(fetch_batch_bytes=1))
    scope = provider.scopes(provider.calendars())[0]
    assert scope.id == path
    ids = provider.list_page(scope, None).ids
    before = provider.requests
    items = list(provider.fetch(scope, ids))
    assert provider.requests - before == 3
    assert sorted(e.title for i in items for e in i.events) == [f"M{n}" for n in range(5)]


def test_paging_resumes_after_the_last_id(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    account.make_calendar("work")
    for n in range(7):
        account.put("work", f"{n}.ics", vcalendar(vevent(f"p{n}", f"P{n}", "20260302T090000Z")))
    provider = connect(page_size=3)
    scope = provider.scopes(provider.calendars())[0]
    first = provider.list_page(scope, None)
    assert len(first.ids) == 3
    assert first.next is not None
    fresh = connect(page_size=3)  # a resumed pass in another process
    fresh.calendars()
    rest: list[str] = []
    page = first.next
    while page is not None:
        result = fresh.list_page(scope, page)
        rest.extend(result.ids)
        page = result.next
    assert len(set(first.ids) | set(rest)) == 7
    assert not set(first.ids) & set(rest)


@pytest.mark.parametrize("how", ["recreate", "corrupt"])
def test_invalidated_token_resyncs_without_duplicates(
    account: DavAccount, connect: Callable[..., CalDavProvider], env: Env, how: str
) -> None:
    account.make_calendar("work")
    for n in range(3):
        account.put("work", f"{n}.ics", vcalendar(vevent(f"t{n}", f"T{n}", "20260302T090000Z")))
    provider = connect()
    env.run(provider)
    assert env.titles() == ["T0", "T1", "T2"]
    scope = provider.scopes(provider.calendars())[0]
    if how == "recreate":
        account.delete_calendar("work")
        account.make_calendar("work")
        account.put("work", "0.ics", vcalendar(vevent("t0", "T0", "20260302T090000Z")))
        account.put("work", "9.ics", vcalendar(vevent("t9", "T9", "20260302T090000Z")))
        expected = ["T0", "T9"]
    else:
        from commlink.records import SyncBatch
        from commlink.sync.cursor import ScopeCursor

        stored = ScopeCursor.decode(env.store.cursor(CHANNEL.id, scope.id))
        assert stored is not None
        assert stored.provider.startswith("sync:")
        bogus = stored.provider[: -len("0" * 64)] + "0" * 64
        env.store.commit(
            SyncBatch(CHANNEL.id, scope.id, cursor=ScopeCursor("incremental", bogus).encode())
        )
        with pytest.raises(CursorExpired):
            provider.changes(scope, bogus)
        expected = ["T0", "T1", "T2"]
    assert env.run(provider) == 1
    assert env.titles() == expected
    assert env.run(provider) == 0
    assert env.titles() == expected


def test_event_moved_between_calendars(
    account: DavAccount, connect: Callable[..., CalDavProvider], env: Env
) -> None:
    home = account.make_calendar("home")
    work = account.make_calendar("work")
    account.put("home", "x.ics", vcalendar(vevent("moving", "Review", "20260302T090000Z")))
    provider = connect()
    env.run(provider)
    assert env.store.known_ids(CHANNEL.id, home, [home + "x.ics"]) == {home + "x.ics"}
    account.delete("home", "x.ics")
    account.put("work", "y.ics", vcalendar(vevent("moving", "Review", "20260302T090000Z")))
    env.run(provider)
    events = env.events()
    assert [(e.uid, e.title) for e in events] == [("moving", "Review")]
    assert env.store.known_ids(CHANNEL.id, home, [home + "x.ics"]) == set()
    assert env.store.known_ids(CHANNEL.id, work, [work + "y.ics"]) == {work + "y.ics"}


def _series(master_lines: tuple[str, ...], override_title: str, override_start: str) -> str:
    master = vevent(
        "weekly", "Weekly", "20260302T090000Z", "RRULE:FREQ=WEEKLY;COUNT=4", *master_lines
    )
    override = vevent(
        "weekly", override_title, override_start, "RECURRENCE-ID:20260309T090000Z", "SEQUENCE:1"
    )
    return vcalendar(master, override)


def test_edited_exception_instance_shows_the_edit(
    account: DavAccount, connect: Callable[..., CalDavProvider], env: Env
) -> None:
    account.make_calendar("work")
    account.put("work", "s.ics", _series((), "Moved", "20260309T140000Z"))
    provider = connect()
    env.run(provider)
    starts = {e.title: e.start for e in env.events()}
    assert len(env.events()) == 4
    assert starts["Moved"] == datetime(2026, 3, 9, 14, tzinfo=timezone.utc)
    account.put("work", "s.ics", _series((), "Moved again", "20260310T160000Z"))
    env.run(provider)
    events = env.events()
    assert len(events) == 4
    edited = [e for e in events if e.recurrence_id == datetime(2026, 3, 9, 9, tzinfo=timezone.utc)]
    assert [(e.title, e.start) for e in edited] == [
        ("Moved again", datetime(2026, 3, 10, 16, tzinfo=timezone.utc))
    ]
    assert "Moved" not in env.titles()


def test_cancelled_series_disappears(
    account: DavAccount, connect: Callable[..., CalDavProvider], env: Env
) -> None:
    account.make_calendar("work")
    account.put("work", "s.ics", _series((), "Moved", "20260309T140000Z"))
    account.put("work", "other.ics", vcalendar(vevent("other", "Other", "20260305T090000Z")))
    provider = connect()
    env.run(provider)
    assert len(env.events()) == 5
    account.put("work", "s.ics", _series(("STATUS:CANCELLED",), "Moved", "20260309T140000Z"))
    env.run(provider)
    assert env.titles() == ["Other"]


_ETAG = re.compile(rb"<(\w+:)?getetag>[^<]*</(\w+:)?getetag>")


def test_objects_without_etags_sync_by_content_hash(
    account: DavAccount,
    connect: Callable[..., CalDavProvider],
    proxy: Callable[..., object],
    env: Env,
) -> None:
    stripped = proxy(lambda method, path, body: _ETAG.sub(b"", body))
    account.make_calendar("work")
    for n in range(3):
        account.put("work", f"{n}.ics", vcalendar(vevent(f"h{n}", f"H{n}", "20260302T090000Z")))
    provider = connect(stripped.url, use_sync_collection=False)  # type: ignore[attr-defined]
    scope = provider.scopes(provider.calendars())[0]
    ids = provider.list_page(scope, None).ids
    assert all("#etag=sha256-" in i for i in ids)
    env.run(provider)
    assert env.titles() == ["H0", "H1", "H2"]
    account.put("work", "1.ics", vcalendar(vevent("h1", "H1 edited", "20260302T090000Z")))
    account.delete("work", "2.ics")
    assert env.run(provider) == 1
    assert env.titles() == ["H0", "H1 edited"]
    assert env.run(provider) == 0  # the ctag is unchanged: nothing to list
    assert env.titles() == ["H0", "H1 edited"]


def test_wrong_password_is_an_auth_error(account: DavAccount, env: Env) -> None:
    account.make_calendar("work")
    provider = CalDavProvider(account.url, username=account.username, password="wrong")
    with pytest.raises(AuthError):
        provider.calendars()
    report = env.engine.run(CHANNEL, provider)
    assert report.status is ChannelStatus.FAILED_AUTH
    provider.close()


def test_unreachable_server_is_transient() -> None:
    provider = CalDavProvider(
        f"http://127.0.0.1:{free_port()}/", username="x", password="y", timeout=2
    )
    with pytest.raises(TransientError):
        provider.calendars()
    provider.close()


def test_sync_collection_reports_moves_as_upsert_and_delete(
    account: DavAccount, connect: Callable[..., CalDavProvider]
) -> None:
    account.make_calendar("work")
    account.put("work", "a.ics", vcalendar(vevent("a", "A", "20260302T090000Z")))
    provider = connect()
    scope = provider.scopes(provider.calendars())[0]
    cursor = provider.snapshot(scope)
    account.put("work", "a.ics", vcalendar(vevent("a", "A2", "20260302T090000Z")))
    account.put("work", "b.ics", vcalendar(vevent("b", "B", "20260302T090000Z")))
    changes = provider.changes(scope, cursor)
    assert sorted(changes.upserted) == [scope.id + "a.ics", scope.id + "b.ics"]
    assert changes.deleted == ()
    account.delete("work", "a.ics")
    again = provider.changes(scope, changes.cursor)
    assert again.upserted == ()
    assert again.deleted == (scope.id + "a.ics",)
