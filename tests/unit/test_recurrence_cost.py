"""Recurrence rules that would keep dateutil walking for minutes are told
before it starts; rules that start long before a window begin near it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
import pytest
from dateutil.rrule import rruleset, rrulestr
from hypothesis import example, given, settings
from hypothesis import strategies as st

from commlink.calendar.recurrence import (
    MAX_RULES,
    MAX_SERIES_STEPS,
    MAX_VIEW_STEPS,
    Budget,
    _fix_until,
    expand,
    expansion_cost,
)
from commlink.calendar.rules import as_yearly, cost, parse_rule, start_near
from commlink.model import Event
from commlink.records import Window
from commlink.stores.common import select_occurrences

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
MONTH = Window(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
CENTURY = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def series(rule: str, start: datetime, uid: str = "u", zone: str = "Europe/Paris") -> Event:
    return Event(
        provider_id=uid,
        uid=uid,
        start=start,
        end=start + timedelta(hours=1),
        timezone=zone,
        recurrence=(f"RRULE:{rule}",),
    )


def plain_dateutil(master: Event, window: Window) -> list[datetime]:
    """The occurrences as dateutil makes them from the series' own start."""
    zone = ZoneInfo(master.timezone or "UTC")
    dtstart = master.start.astimezone(zone)
    rules = rruleset()
    rules.rdate(dtstart)
    for line in master.recurrence:
        rules.rrule(rrulestr(_fix_until(line.split(":", 1)[1], zone), dtstart=dtstart))
    earliest = window.start - (master.end - master.start)
    found = []
    for occurrence in rules:
        if occurrence >= window.end:
            break
        if occurrence > earliest:
            found.append(occurrence)
    return found


# Each of these kept dateutil inside one ``next()`` for 9 s to over ten
# minutes before (measured on a 2-core machine).
RUNAWAY = (
    "FREQ=SECONDLY;INTERVAL=7;BYHOUR=23;BYMINUTE=59;BYSECOND=58",
    "FREQ=SECONDLY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23;BYMINUTE=59;BYSECOND=59",
    "FREQ=MINUTELY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYHOUR=23;BYMINUTE=59",
    "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYMINUTE="
    + ",".join(map(str, range(60)))
    + ";BYSECOND="
    + ",".join(map(str, range(60))),
)


@pytest.mark.parametrize("rule", RUNAWAY)
def test_runaway_rules_are_told_before_dateutil_walks(rule: str) -> None:
    master = series(rule, datetime(2024, 3, 1, 9, tzinfo=PARIS))
    began = time.monotonic()
    found = expand([master], CENTURY)
    assert time.monotonic() - began < 1
    assert found == [master]  # its first occurrence alone
    assert expansion_cost([master], CENTURY) > MAX_SERIES_STEPS or "BYDAY" in rule


def test_repeated_values_are_walked_once() -> None:
    # dateutil walks every BYSETPOS value given, repeats included
    once = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    rule = once + ",-1" * 300
    assert parse_rule(rule).parts["BYSETPOS"] == ("-1",)
    master = series(rule, datetime(2024, 3, 1, 9, tzinfo=PARIS))
    began = time.monotonic()
    found = expand([master], CENTURY)
    assert time.monotonic() - began < 1
    assert found == expand([series(once, master.start)], CENTURY)
    assert len(found) == 1 + 910  # DTSTART, then the last weekday of each month to 2099


def test_a_rare_daily_rule_is_walked_a_year_at_a_time() -> None:
    rule = parse_rule("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=1MO")
    assert as_yearly(rule).text == "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO"
    every_day = as_yearly(parse_rule("FREQ=DAILY;BYMONTH=1,7"))
    assert every_day.parts["BYMONTHDAY"] == tuple(str(d) for d in range(1, 32))
    for unchanged in ("FREQ=DAILY;BYDAY=MO", "FREQ=DAILY;INTERVAL=2;BYMONTH=1", "FREQ=WEEKLY"):
        assert as_yearly(parse_rule(unchanged)) == parse_rule(unchanged)
    master = series(rule.text, datetime(2024, 3, 1, 9, tzinfo=PARIS))
    assert [e.start.date().isoformat() for e in expand([master], CENTURY)] == [
        "2024-03-01",
        "2044-02-29",
        "2072-02-29",
    ]


def test_finer_than_daily_rules_with_day_parts_have_no_bound() -> None:
    rule = parse_rule("FREQ=HOURLY;BYDAY=MO")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert cost(rule, start, start + timedelta(days=1), 50_000) is None
    assert cost(parse_rule("FREQ=HOURLY;BYHOUR=9"), start, start + timedelta(days=1), 50_000)


def test_old_series_begin_near_the_window() -> None:
    # a daily meeting "since 1650": walked from its last 400-year cycle
    old = datetime(1650, 6, 1, 9, tzinfo=PARIS)
    rule = parse_rule("FREQ=DAILY;BYMONTH=6")
    moved = start_near(rule, old, MONTH.start)
    assert moved == old.replace(year=2050 - 400)
    # only weekdays choose the days: whole weeks of its phase
    weekly = parse_rule("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH")
    moved = start_near(weekly, old, MONTH.start)
    assert MONTH.start - timedelta(weeks=2) < moved <= MONTH.start
    assert (moved.date() - old.date()).days % 14 == 0
    assert (moved.hour, moved.minute) == (9, 0)  # wall-clock time kept
    # a COUNT counts from the rule's own start
    counted = parse_rule("FREQ=DAILY;COUNT=100000")
    assert start_near(counted, old, MONTH.start) == old


def test_a_finer_rule_moves_by_its_step_or_by_whole_days() -> None:
    start = datetime(2020, 3, 29, 1, 30, 7, tzinfo=PARIS)
    every = parse_rule("FREQ=SECONDLY;INTERVAL=7")
    moved = start_near(every, start, MONTH.start)
    assert MONTH.start - timedelta(seconds=7) < moved <= MONTH.start
    summer = datetime(2026, 7, 1, tzinfo=UTC)  # Paris is an hour further from UTC
    moved = start_near(every, start.replace(month=1), summer)
    assert summer - timedelta(seconds=7) < moved <= summer
    some = parse_rule("FREQ=MINUTELY;INTERVAL=7;BYHOUR=9")
    moved = start_near(some, start, MONTH.start)
    assert (moved.hour, moved.minute, moved.second) == (1, 30, 7)
    assert MONTH.start - timedelta(days=8) < moved <= MONTH.start


def test_a_secondly_rule_from_years_ago_shows_the_window() -> None:
    master = series("FREQ=SECONDLY", datetime(2020, 1, 1, tzinfo=UTC), zone="UTC")
    window = Window(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, 0, 10, tzinfo=UTC))
    found = expand([master], window)
    # every second of the window, and those of the hour before (each lasts an hour)
    assert found[0].start == window.start - timedelta(minutes=59, seconds=59)
    assert found[-1].start == window.end - timedelta(seconds=1)
    assert len(found) == 3599 + 600


RULES = st.sampled_from(
    (
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3;BYDAY=MO,WE,FR",
        "FREQ=DAILY;BYMONTH=1,7",
        "FREQ=DAILY;BYMONTHDAY=13;BYDAY=FR",
        "FREQ=DAILY;BYYEARDAY=1,100,-1;BYDAY=1MO,TU",
        "FREQ=DAILY;BYWEEKNO=1,53;BYHOUR=8,20",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;BYHOUR=9,15",
        "FREQ=WEEKLY;BYMONTH=2;BYDAY=MO",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31",
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH",
        "FREQ=HOURLY;INTERVAL=5;BYHOUR=9,10,11",
        "FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16",
        "FREQ=MINUTELY;INTERVAL=7",
    )
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    rule=RULES,
    year=st.sampled_from((1630, 1900, 1999, 2024)),
    day=st.integers(0, 365),
    hour=st.integers(0, 23),
    zone=st.sampled_from(("UTC", "Europe/Paris", "America/New_York")),
)
@example(rule="FREQ=DAILY;BYMONTH=1,7", year=1630, day=0, hour=9, zone="Europe/Paris")
def test_moving_the_start_keeps_every_occurrence(
    rule: str, year: int, day: int, hour: int, zone: str
) -> None:
    if rule.startswith(("FREQ=HOURLY", "FREQ=MINUTELY")):
        year = 2026  # dateutil from centuries back would walk every minute since
    start = datetime(year, 1, 1, hour, 15, tzinfo=ZoneInfo(zone)) + timedelta(days=day)
    master = series(rule, start, zone=zone)
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
    ours = [e.start for e in expand([master], window) if e.start != start]
    assert ours == [o for o in plain_dateutil(master, window) if o != start]


def test_a_view_spends_its_budget_on_the_cheapest_series_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = datetime(2026, 11, 2, 9, tzinfo=PARIS)
    decade = Window(start, start.replace(year=2036))
    ordinary = series("FREQ=WEEKLY;BYDAY=MO", start, uid="z-weekly")
    costly = [series("FREQ=DAILY;BYHOUR=9,17", start, uid=f"a-daily-{i}") for i in range(6)]
    each = expansion_cost([costly[0]], decade)
    mine = expansion_cost([ordinary], decade)
    assert mine < each <= MAX_SERIES_STEPS
    monkeypatch.setattr("commlink.calendar.recurrence.MAX_VIEW_STEPS", mine + 3 * each + 1)
    events = {(e.uid, None): e for e in [ordinary, *costly]}
    found = select_occurrences(events, list(events), decade)
    counts: dict[str, int] = {}
    for occurrence, _key in found:
        counts[occurrence.uid] = counts.get(occurrence.uid, 0) + 1
    # the ordinary series sorts last by uid, and is expanded first by cost
    assert counts["z-weekly"] == len(expand([ordinary], decade)) == 522
    assert sorted(counts[e.uid] for e in costly) == [1, 1, 1] + [2 * 3_653] * 3
    assert MAX_VIEW_STEPS >= 3 * MAX_SERIES_STEPS


def test_a_budget_is_spent_and_then_refuses() -> None:
    master = series("FREQ=DAILY", datetime(2026, 1, 1, 9, tzinfo=PARIS))
    needed = expansion_cost([master], CENTURY)
    budget = Budget(needed)
    assert len(expand([master], CENTURY, budget)) > 1
    assert budget.steps == 0
    assert expand([master], CENTURY, budget) == [master]


def test_an_exrule_that_leaves_out_everything_is_told() -> None:
    # dateutil walked both rules to the year 9999 without returning: 18 s
    master = Event(
        provider_id="p",
        uid="u",
        start=datetime(2026, 1, 1, 9, tzinfo=UTC),
        end=datetime(2026, 1, 1, 10, tzinfo=UTC),
        timezone="UTC",
        recurrence=("RRULE:FREQ=DAILY", "EXRULE:FREQ=DAILY"),
    )
    began = time.monotonic()
    assert expand([master], MONTH) == []  # the master alone, outside the window
    assert time.monotonic() - began < 1
    assert expansion_cost([master], MONTH) > MAX_SERIES_STEPS
    # rules that end (COUNT, UNTIL) may still leave some out
    bounded = attrs.evolve(
        master,
        recurrence=("RRULE:FREQ=DAILY;COUNT=10", "EXRULE:FREQ=WEEKLY;UNTIL=20260301T000000Z"),
    )
    assert len(expand([bounded], Window(master.start, master.start + timedelta(days=30)))) == 8


def test_reading_rules_stops_at_the_limit() -> None:
    stamps = ",".join(f"2026{m:02}{d:02}T090000Z" for m in range(1, 13) for d in range(1, 6))
    lines = ("RRULE:FREQ=DAILY", *(f"EXDATE:{stamps}" for _ in range(1000)))
    master = attrs.evolve(series("FREQ=DAILY", datetime(2026, 1, 1, tzinfo=UTC)), recurrence=lines)
    began = time.monotonic()
    assert expansion_cost([master], MONTH) == MAX_SERIES_STEPS + 1
    assert expand([master], MONTH) == []
    assert time.monotonic() - began < 0.5


def test_dates_are_charged_before_they_are_read() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    holes = ",".join((start + timedelta(days=d)).strftime("%Y%m%dT%H%M%SZ") for d in range(1, 31))
    master = attrs.evolve(
        series("FREQ=DAILY", start, zone="UTC"),
        recurrence=("RRULE:FREQ=DAILY", f"EXDATE:{holes}"),
    )
    assert [e.start for e in expand([master], MONTH)] == [start]
    plain = attrs.evolve(master, recurrence=("RRULE:FREQ=DAILY",))
    assert expansion_cost([master], MONTH) > expansion_cost([plain], MONTH) + 30 * 24


def test_plain_and_nth_weekdays_together_are_costed_as_rare() -> None:
    # dateutil keeps a day only when it is both: "TH,2FR" never matches, and
    # its check walked a whole 400-year cycle while it was costed as dense
    never = series("FREQ=MONTHLY;BYDAY=TH,2FR", datetime(2026, 6, 10, 14, tzinfo=UTC))
    assert expansion_cost([never], MONTH) > 100_000
    second_friday = series("FREQ=MONTHLY;BYDAY=FR,2FR", datetime(2026, 6, 10, 14, tzinfo=UTC))
    assert expansion_cost([second_friday], MONTH) < 10_000
    assert [e.start.day for e in expand([second_friday], MONTH)] == [11]


def test_a_series_has_at_most_sixteen_rules() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    rules = tuple(f"RRULE:FREQ=WEEKLY;INTERVAL={i + 1}" for i in range(MAX_RULES + 1))
    master = attrs.evolve(series("FREQ=WEEKLY", start), recurrence=rules)
    assert expand([master], MONTH) == [master]
    fewer = attrs.evolve(master, recurrence=rules[:MAX_RULES])
    assert len(expand([fewer], MONTH)) == 5  # every week of December
