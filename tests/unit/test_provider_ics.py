from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from commlink.errors import ConfigError, CursorExpired, NotFound
from commlink.model import EventStatus, Folder, FolderKind
from commlink.ports import CalendarProvider, ChangeSet, Scope
from commlink.providers.files import open_path
from commlink.providers.files.ics import IcsProvider

DATA = Path(__file__).parent.parent / "data" / "ics"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "calendars"
    target.mkdir()
    for name in ("series.ics", "broken.ics", "cancel.ics"):
        shutil.copy(DATA / name, target / name)
    (target / "readme.txt").write_text("not a calendar")
    return target


def scope_for(provider: IcsProvider, name: str) -> Scope:
    return next(s for s in provider.scopes(provider.calendars()) if s.id == name)


def test_one_calendar_per_file(folder: Path) -> None:
    provider = IcsProvider(folder)
    assert isinstance(provider, CalendarProvider)
    calendars = {c.id: c for c in provider.calendars()}
    assert set(calendars) == {"series.ics", "broken.ics", "cancel.ics"}
    assert all(c.kind is FolderKind.CALENDAR for c in calendars.values())
    assert calendars["series.ics"].name == "Sales team"  # X-WR-CALNAME
    assert calendars["cancel.ics"].name == "cancel"


def test_series_comes_back_together(folder: Path) -> None:
    provider = IcsProvider(folder)
    scope = scope_for(provider, "series.ics")
    page = provider.list_page(scope, None)
    # newest first: the summer review starts after the whole weekly series
    assert page.ids == ("summer-review@example.com", "weekly-sync@example.com")
    fetched = {f.provider_id: f for f in provider.fetch(scope, page.ids)}
    weekly = fetched["weekly-sync@example.com"]
    assert weekly.error is None
    assert len(weekly.events) == 3
    assert {e.provider_id for e in weekly.events} == {"weekly-sync@example.com"}
    assert {e.calendar_id for e in weekly.events} == {"series.ics"}
    assert sum(e.recurrence_id is None for e in weekly.events) == 1
    cancelled = [e for e in weekly.events if e.status is EventStatus.CANCELLED]
    assert [e.recurrence_id for e in cancelled] == [datetime(2024, 2, 5, 9, tzinfo=timezone.utc)]


def test_unmappable_and_unknown_ids(folder: Path) -> None:
    provider = IcsProvider(folder)
    scope = scope_for(provider, "broken.ics")
    ids = provider.list_page(scope, None).ids
    assert "no-start@example.com" in ids  # listed, so its failure is recorded
    fetched = {f.provider_id: f for f in provider.fetch(scope, [*ids, "who@example.com"])}
    assert fetched["no-start@example.com"].error == "missing-dtstart"
    assert fetched["no-start@example.com"].events == ()
    assert fetched["who@example.com"].error == "not found"
    assert fetched["fine@example.com"].error is None
    assert len(fetched["fine@example.com"].events) == 1


def test_paging(folder: Path) -> None:
    provider = IcsProvider(folder, page_size=2)
    scope = scope_for(provider, "broken.ics")
    seen: list[str] = []
    token = None
    while True:
        page = provider.list_page(scope, token)
        seen.extend(page.ids)
        if page.next is None:
            break
        token = page.next
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(CursorExpired):
        provider.list_page(scope, "x")


def test_unchanged_file_is_quiet_changed_file_expires(folder: Path) -> None:
    provider = IcsProvider(folder)
    scope = scope_for(provider, "cancel.ics")
    cursor = provider.snapshot(scope)
    assert set(json.loads(cursor)) == {"size", "mtime_ns"}
    assert provider.changes(scope, cursor) == ChangeSet((), (), cursor)
    path = folder / "cancel.ics"
    path.write_bytes(path.read_bytes().replace(b"SEQUENCE:1", b"SEQUENCE:2"))
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(CursorExpired):
        provider.changes(scope, cursor)
    (fetched,) = provider.fetch(scope, ["kickoff-123@google.com"])
    assert fetched.events[0].sequence == 2  # the parse cache follows the file


def test_single_file_and_removed_file(tmp_path: Path) -> None:
    path = tmp_path / "team.ics"
    shutil.copy(DATA / "allday.ics", path)
    (tmp_path / "other.ics").write_text("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    provider = IcsProvider(path)
    assert [c.id for c in provider.calendars()] == ["team.ics"]
    sibling = Folder("other.ics", "other", FolderKind.CALENDAR)
    assert provider.scopes([sibling]) == []  # a file beside it is not part of it
    scope = scope_for(provider, "team.ics")
    assert len(provider.list_page(scope, None).ids) == 4
    path.unlink()
    with pytest.raises(NotFound):
        provider.snapshot(scope)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        IcsProvider(tmp_path / "missing.ics")
    assert info.value.field == "path"


def test_open_path_detects_calendars(folder: Path, tmp_path: Path) -> None:
    assert isinstance(open_path(folder), IcsProvider)
    assert isinstance(open_path(folder / "series.ics"), IcsProvider)
    unnamed = tmp_path / "invite"
    unnamed.write_bytes((DATA / "cancel.ics").read_bytes())
    assert isinstance(open_path(unnamed), IcsProvider)


def test_one_broken_event_in_an_export_costs_only_itself(tmp_path: Path) -> None:
    # A VTIMEZONE nested in an event makes the icalendar library refuse the
    # whole file; the VTODO keeps the quick reader out of it.
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Z\r\nTZID:Z\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    events = [
        f"BEGIN:VEVENT\r\nUID:e{i}@x\r\nDTSTART:202603{i % 28 + 1:02d}T090000Z\r\n"
        f"{zone if i == 7 else ''}END:VEVENT\r\n"
        for i in range(25)
    ]
    text = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n" + "".join(events)
    (tmp_path / "export.ics").write_text(text + "END:VCALENDAR\r\n")
    provider = IcsProvider(tmp_path)
    scope = scope_for(provider, "export.ics")
    ids = provider.list_page(scope, None).ids
    assert len(ids) == 25
    fetched = {f.provider_id: f for f in provider.fetch(scope, ids)}
    assert fetched["e7@x"].error == "invalid-event"
    assert all(f.events for uid, f in fetched.items() if uid != "e7@x")
