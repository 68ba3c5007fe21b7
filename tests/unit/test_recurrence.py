"""Expanding recurring events: rules, exceptions, overrides, DST, bad input."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.calendar.recurrence import MAX_OCCURRENCES, expand, overlaps
from commlink.model import Event, EventStatus
from commlink.records import Window

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
EVERYTHING = Window(datetime(1990, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def series(
    *lines: str, start: datetime | None = None, tz: str = "Europe/Paris", **kw: object
) -> Event:
    begin = start or datetime(2025, 3, 10, 9, tzinfo=PARIS)
    return Event(
        provider_id="p",
        uid="u",
        start=begin,
        end=begin + timedelta(hours=1),
        timezone=tz,
        recurrence=lines,
        **kw,  # type: ignore[arg-type]
    )


def override(master: Event, rid: datetime, start: datetime, **kw: object) -> Event:
    return attrs.evolve(
        master, recurrence=(), recurrence_id=rid, start=start, end=start + timedelta(hours=1), **kw
    )


def test_weekly_count_keeps_local_time_across_dst() -> None:
    found = expand([series("RRULE:FREQ=WEEKLY;COUNT=5")], EVERYTHING)
    assert len(found) == 5
    assert [e.start.astimezone(PARIS).hour for e in found] == [9] * 5
    # the UTC hour moves when Paris switches to summer time on 2025-03-30
    assert [e.start.astimezone(UTC).hour for e in found] == [8, 8, 8, 7, 7]
    assert all(e.end - e.start == timedelta(hours=1) for e in found)
    assert [e.recurrence_id for e in found] == [e.start for e in found]
    assert all(e.recurrence == () for e in found)


def test_window_is_half_open_and_overlap_counts() -> None:
    master = series("RRULE:FREQ=DAILY;COUNT=10")
    day3 = datetime(2025, 3, 12, 9, tzinfo=PARIS)
    # starts inside an occurrence (overlaps), ends exactly at the next start
    window = Window(day3 + timedelta(minutes=30), day3 + timedelta(days=1))
    assert [e.start for e in expand([master], window)] == [day3]
    assert overlaps(master, Window(master.start, master.start + timedelta(minutes=1)))
    assert not overlaps(master, Window(master.end, master.end + timedelta(hours=1)))
    assert not overlaps(master, Window(master.start - timedelta(hours=1), master.start))


def test_override_replaces_and_moves_occurrences() -> None:
    master = series("RRULE:FREQ=WEEKLY;COUNT=4")
    week = timedelta(weeks=1)
    second = master.start + week
    third = master.start + 2 * week
    moved_in = override(master, second, second + timedelta(days=2), title="Moved")
    moved_out = override(master, third, third + timedelta(days=60), title="Far away")
    window = Window(master.start, master.start + 3 * week)
    found = expand([master, moved_in, moved_out], window)
    assert [(e.start, e.title) for e in found] == [
        (master.start, ""),
        (second + timedelta(days=2), "Moved"),
    ]
    # the far override shows where it was moved to
    later = Window(third + timedelta(days=59), third + timedelta(days=61))
    assert [e.title for e in expand([master, moved_in, moved_out], later)] == ["Far away"]


def test_cancelled_override_and_cancelled_series() -> None:
    master = series("RRULE:FREQ=DAILY;COUNT=3")
    second = master.start + timedelta(days=1)
    cancelled = override(master, second, second, status=EventStatus.CANCELLED)
    assert [e.start.day for e in expand([master, cancelled], EVERYTHING)] == [10, 12]
    dead = attrs.evolve(master, status=EventStatus.CANCELLED)
    assert expand([dead, override(master, second, second)], EVERYTHING) == []


def test_exdate_forms_and_rdate() -> None:
    master = series(
        "RRULE:FREQ=DAILY;COUNT=6",
        "EXDATE:20250311T080000Z",  # UTC form of 09:00 Paris
        "EXDATE;TZID=Europe/Paris:20250312T090000,20250313T090000",
        "EXDATE;VALUE=DATE:20250314",
        "RDATE:20250401T070000Z",
    )
    found = expand([master], EVERYTHING)
    assert [e.start.astimezone(PARIS).strftime("%m-%d %H") for e in found] == [
        "03-10 09",
        "03-15 09",
        "04-01 09",
    ]


def test_all_day_series_with_date_until() -> None:
    start = datetime(2025, 3, 28, tzinfo=PARIS)
    master = Event(
        provider_id="p",
        uid="u",
        start=start,
        end=start + timedelta(days=1),
        all_day=True,
        timezone="Europe/Paris",
        recurrence=("RRULE:FREQ=DAILY;UNTIL=20250331",),
    )
    found = expand([master], EVERYTHING)
    assert [e.start.astimezone(PARIS).day for e in found] == [28, 29, 30, 31]
    # every occurrence runs from local midnight to local midnight, even on the
    # 23-hour day of the DST change
    assert all(e.start.astimezone(PARIS).hour == 0 for e in found)
    assert all(e.end.astimezone(PARIS).hour == 0 for e in found)
    assert found[2].end.astimezone(UTC) - found[2].start.astimezone(UTC) == timedelta(hours=23)


def test_first_instance_is_dtstart_even_off_rule() -> None:
    monday = datetime(2025, 3, 10, 9, tzinfo=PARIS)
    found = expand([series("RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=2", start=monday)], EVERYTHING)
    assert [e.start.strftime("%a") for e in found] == ["Mon", "Wed", "Wed"]


def test_unknown_zone_falls_back_to_the_start_offset() -> None:
    start = datetime(2025, 1, 6, 9, tzinfo=NEW_YORK)
    found = expand([series("RRULE:FREQ=DAILY;COUNT=2", start=start, tz="Mars/Olympus")], EVERYTHING)
    assert [e.start for e in found] == [start, start + timedelta(days=1)]


def test_bad_rules_give_the_master_alone() -> None:
    for line in (
        "RRULE:FREQ=SOMETIMES",
        "RRULE:COUNT=x",
        "EXDATE:notadate",
        "RDATE;TZID=Nowhere:1",
    ):
        master = series(line)
        assert expand([master], EVERYTHING) == [master]
        assert expand([master], Window(EVERYTHING.end, EVERYTHING.end + timedelta(days=1))) == []


def test_runaway_rules_stop() -> None:
    master = series("RRULE:FREQ=SECONDLY", start=datetime(2020, 1, 1, tzinfo=UTC), tz="UTC")
    began = time.monotonic()
    found = expand(
        [master], Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
    )
    assert time.monotonic() - began < 5
    # walked from near the window, not from 2020; the occurrence cap still holds
    # counted but not shown: DTSTART itself, and the one that ends as the window opens
    assert len(found) == MAX_OCCURRENCES - 2
    assert found[0].start == datetime(2029, 12, 31, 23, 0, 1, tzinfo=UTC)


def test_single_events_and_orphan_overrides() -> None:
    single = series()
    assert expand([single], EVERYTHING) == [single]
    orphan = override(single, single.start, single.start + timedelta(hours=2))
    assert expand([orphan], EVERYTHING) == [orphan]


FRAGMENTS = st.sampled_from(
    [
        "FREQ=DAILY",
        "FREQ=WEEKLY",
        "FREQ=MONTHLY",
        "FREQ=YEARLY",
        "FREQ=HOURLY",
        "FREQ=MINUTELY",
        "FREQ=BOGUS",
        "COUNT=5",
        "COUNT=-1",
        "INTERVAL=2",
        "INTERVAL=0",
        "BYDAY=MO,WE",
        "BYDAY=1MO",
        "BYMONTHDAY=31",
        "BYMONTH=13",
        "BYMONTH=2",
        "BYMONTHDAY=30",
        "BYMONTHDAY=-1",
        "BYDAY=5MO",
        "BYDAY=-1FR",
        "BYSETPOS=2",
        "BYSETPOS=-1",
        "BYYEARDAY=1",
        "BYWEEKNO=20",
        "BYHOUR=9,17",
        "UNTIL=20250401",
        "UNTIL=20250401T000000Z",
        "UNTIL=garbage",
        "WKST=SU",
        "",
    ]
)
LINES = st.one_of(
    st.lists(FRAGMENTS, min_size=1, max_size=4).map(lambda f: "RRULE:" + ";".join(f)),
    st.sampled_from(
        [
            "EXDATE:20250317T080000Z",
            "EXDATE;VALUE=DATE:20250324",
            "RDATE:20250402T120000Z",
            "RDATE;TZID=Europe/Paris:20250403T100000",
            "EXDATE;TZID=Bogus/Zone:20250317T090000",
            "X-UNKNOWN:1",
            "no colon here",
        ]
    ),
    st.text(max_size=30),
)
WINDOWS = st.builds(
    lambda offset, days: Window(
        datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=offset),
        datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=offset + days),
    ),
    st.integers(min_value=-30, max_value=400),
    st.integers(min_value=0, max_value=60),
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(LINES, max_size=4),
    window=WINDOWS,
    zone=st.sampled_from(["", "Europe/Paris", "Bad/Zone"]),
)
def test_expansion_never_raises_and_stays_in_the_window(
    lines: list[str], window: Window, zone: str
) -> None:
    master = series(*lines, tz=zone)
    found = expand([master], window)
    assert all(overlaps(e, window) for e in found)
    assert [e.start for e in found] == sorted(e.start for e in found)
    rids = [e.recurrence_id for e in found if e.recurrence_id is not None]
    assert len(rids) == len(set(rids))
    assert all(e.uid == master.uid for e in found)


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=30),
    freq=st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]),
    hour=st.integers(min_value=0, max_value=23).filter(
        lambda h: h != 2
    ),  # 02:30 can fall in a DST gap
    skip=st.sets(st.integers(min_value=1, max_value=29), max_size=5),
)
def test_count_rules_yield_count_occurrences_at_the_same_local_time(
    count: int, freq: str, hour: int, skip: set[int]
) -> None:
    start = datetime(2025, 1, 31, hour, 30, tzinfo=NEW_YORK)
    master = series(f"RRULE:FREQ={freq};COUNT={count}", start=start, tz="America/New_York")
    every = expand([master], EVERYTHING)
    assert len(every) == count
    assert all(e.start.astimezone(NEW_YORK).hour == hour for e in every)
    gone = [every[i] for i in sorted(skip) if i < count]
    cancelled = [
        override(master, e.recurrence_id or e.start, e.start, status=EventStatus.CANCELLED)
        for e in gone
    ]
    assert len(expand([master, *cancelled], EVERYTHING)) == count - len(gone)
