"""Events from any provider are made storable: controls out, caps on, repairs noted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.calendar.storable import MAX_DESCRIPTION_BYTES, storable_event
from commlink.mime.storable import MAX_ID_BYTES, MAX_NAME_CHARS, MAX_SUBJECT_CHARS
from commlink.model import (
    Address,
    Attendee,
    Channel,
    ChannelKind,
    ChannelSettings,
    Event,
    Visibility,
)
from commlink.records import Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeCalendar, FakeCalendarProvider

START = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
ANN = Attendee(Address("ann@client.example", "ann@client.example", "Ann"))
CONTROLS = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\ud800"


def _event(**kw: object) -> Event:
    values: dict[str, object] = {
        "provider_id": "p1",
        "uid": "u1",
        "start": START,
        "end": START + timedelta(hours=1),
        "title": "Quarterly review",
        "attendees": (ANN,),
    }
    values.update(kw)
    return Event(**values)  # type: ignore[arg-type]


def test_a_clean_event_is_returned_as_it_is() -> None:
    event = _event(description="Agenda:\n\t1. numbers\r\n", location="Room 4")
    assert storable_event(event) is event


def test_controls_and_sizes_are_repaired_and_noted() -> None:
    bad = Attendee(Address("eve@x.example", "eve@x.example", "Eve\x1b[31m\x00"))
    event = _event(
        uid="u\x00" + "x" * 1000,
        title="Pay\x1b]8;;https://evil.example\x07 now\nplease",
        location="L" * (MAX_NAME_CHARS + 5),
        description="a\x00b\n" + "é" * MAX_DESCRIPTION_BYTES,
        organizer=bad,
        conference_url="https://meet.example/" + "x" * MAX_NAME_CHARS,
    )
    fixed = storable_event(event)
    assert fixed.title == "Pay]8;;https://evil.example now please"
    assert len(fixed.location) == MAX_NAME_CHARS
    assert fixed.description.startswith("ab\n")
    assert len(fixed.description.encode()) <= MAX_DESCRIPTION_BYTES
    assert fixed.organizer is not None
    assert fixed.organizer.address.name == "Eve[31m"
    assert fixed.conference_url == ""
    assert len(fixed.uid.encode()) <= MAX_ID_BYTES
    assert fixed.provider_id == "p1"  # the provider's own id is not touched
    for code in (
        "control-removed:title",
        "text-truncated:location",
        "nul-removed:description",
        "text-truncated:description",
        "id-repaired",
        "id-hashed",
        "link-dropped",
    ):
        assert code in fixed.warnings


_hostile = st.text(alphabet=st.sampled_from(list(CONTROLS) + list("ab é\n\t<>")), max_size=300)


@given(title=_hostile, location=_hostile, description=_hostile, name=_hostile, uid=_hostile)
def test_whatever_comes_in_goes_out_storable(
    title: str, location: str, description: str, name: str, uid: str
) -> None:
    attendee = Attendee(Address("a@x.example", "a@x.example", name))
    event = _event(
        title=title, location=location, description=description, uid=uid, attendees=(attendee,)
    )
    fixed = storable_event(event)
    for text in (fixed.title, fixed.location, fixed.attendees[0].address.name):
        assert text.isprintable()
        assert len(text) <= max(MAX_SUBJECT_CHARS, MAX_NAME_CHARS)
    assert all(c.isprintable() or c in "\t\n\r" for c in fixed.description)
    fixed.description.encode("utf-8")  # no lone surrogate
    assert fixed.uid.isprintable()
    assert storable_event(fixed).title == fixed.title  # idempotent


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_engine_stores_provider_events_cleaned(kind: str, tmp_path: Path) -> None:
    store = MemoryStore() if kind == "memory" else SqlStore(f"sqlite:///{tmp_path}/e.sqlite")
    channel = Channel(
        "cal",
        "u-owner",
        ChannelKind.CALENDAR,
        "fake",
        ChannelSettings(owner="me@home.example", visibility=Visibility.FULL),
    )
    calendar = FakeCalendar()
    calendar.add_calendar("work")
    calendar.put("work", (_event(title="Call\x00 \x1b[2Jnow", description="x\x00y"),))
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    report = SyncEngine(store, directory).run(channel, FakeCalendarProvider(calendar))
    assert report.errors == []
    found = store.events(
        Target(TargetKind.PERSON, "p-ann"),
        Viewer("u-owner"),
        Window(START - timedelta(days=1), START + timedelta(days=1)),
    ).items
    assert [(e.title, e.description) for e in found] == [("Call [2Jnow", "xy")]


def test_a_line_break_alone_in_a_one_line_field_is_folded() -> None:
    attendee = Attendee(Address("a@x.example", "a@x.example", "\n"))
    fixed = storable_event(_event(location="\n", title="a\nb", attendees=(attendee,)))
    assert (fixed.location, fixed.title, fixed.attendees[0].address.name) == ("", "a b", "")
