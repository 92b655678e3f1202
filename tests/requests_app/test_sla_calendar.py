"""The calendar arithmetic against independent formulations: a 15-minute step count and numpy's
business-day functions, over many years, DST changes, holidays, year ends and pauses."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_app.sla.calendar import (
    CALENDAR,
    WORKING,
    WorkingCalendar,
    due_instant,
    elapsed_seconds,
)

LA = ZoneInfo("America/Los_Angeles")
STEP = timedelta(minutes=15)
CAL = WorkingCalendar("America/Los_Angeles", "US")


def la(*args):
    return datetime(*args, tzinfo=LA)


def us_holidays(year_from, year_to):
    return {d for d in holidays.country_holidays("US", years=range(year_from - 1, year_to + 2))}


def step_working(t, hols, closures=(), tz=LA):
    day = t.astimezone(tz).date()
    return day.weekday() < 5 and day not in hols and day not in closures


def in_pause(t, pauses):
    return any(a <= t < (b or datetime.max.replace(tzinfo=UTC)) for a, b in pauses)


def step_elapsed(start, until, hols, pauses=(), closures=()):
    total, t = 0, start
    while t < until:
        if step_working(t, hols, closures) and not in_pause(t, pauses):
            total += STEP.total_seconds()
        t += STEP
    return total


def step_due(start, target, hols, pauses=()):
    total, t = 0, start
    while total < target:
        if step_working(t, hols) and not in_pause(t, pauses):
            total += STEP.total_seconds()
        t += STEP
    return t


# Instants on a 15-minute grid between 2001 and 2039 (local midnights in Los Angeles are on it).
quarter_hours = st.integers(
    min_value=int(datetime(2001, 1, 1, tzinfo=UTC).timestamp() // 900),
    max_value=int(datetime(2039, 1, 1, tzinfo=UTC).timestamp() // 900),
).map(lambda q: datetime.fromtimestamp(q * 900, tz=UTC))


@settings(max_examples=200, deadline=None)
@given(
    start=quarter_hours,
    days=st.integers(min_value=0, max_value=20),
    extra_quarters=st.integers(min_value=0, max_value=95),
)
def test_due_matches_a_step_count(start, days, extra_quarters):
    target = days * 86400 + extra_quarters * 900
    hols = us_holidays(start.year, start.year + 1)
    assert due_instant(WORKING, start, target, CAL) == step_due(start, target, hols)


@settings(max_examples=200, deadline=None)
@given(
    start=quarter_hours,
    span_quarters=st.integers(min_value=0, max_value=96 * 30),
    pauses=st.lists(st.tuples(st.integers(0, 96 * 30), st.integers(1, 96 * 6)), max_size=3),
)
def test_elapsed_and_due_with_pauses_match_a_step_count(start, span_quarters, pauses):
    until = start + span_quarters * STEP
    spans = sorted((start + a * STEP, start + (a + n) * STEP) for a, n in pauses)
    hols = us_holidays(start.year, start.year + 1)
    expected = step_elapsed(start, until, hols, spans)
    assert elapsed_seconds(WORKING, start, until, CAL, spans) == expected
    if expected:
        # The due instant of exactly that much working time is the last counted step's end.
        due = due_instant(WORKING, start, expected, CAL, spans)
        assert step_elapsed(start, due, hols, spans) == expected
        assert due <= until


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(2001, 1, 1), max_value=date(2039, 1, 1)),
    n=st.integers(min_value=1, max_value=30),
)
def test_whole_days_match_numpy_business_days(day, n):
    hols = sorted(us_holidays(day.year, day.year + 1))
    start = datetime.combine(day, time(0), tzinfo=LA)
    due = due_instant(WORKING, start, n * 86400, CAL)
    # numpy: the n-th working day on or after `day` ends at the next local midnight.
    first = np.busday_offset(day, 0, roll="forward", holidays=hols)
    last = np.busday_offset(first, n - 1, roll="forward", holidays=hols)
    expected_day = last.astype(date) + timedelta(days=1)
    assert due == datetime.combine(expected_day, time(0), tzinfo=LA)
    assert elapsed_seconds(WORKING, start, due, CAL) == n * 86400


def test_the_contract_examples():
    # Monday 10:00 with no holiday -> the Monday three weeks later at 10:00.
    assert due_instant(WORKING, la(2026, 4, 6, 10), 15 * 86400, CAL) == la(2026, 4, 27, 10)
    # Saturday -> 00:00 on the Saturday three weeks later (end of the 15th working day).
    assert due_instant(WORKING, la(2026, 4, 4, 13), 15 * 86400, CAL) == la(2026, 4, 25, 0)


def test_holidays_and_observed_days_stop_the_clock():
    # Veterans Day 2026 is a Wednesday; Thanksgiving the 26th.
    assert due_instant(WORKING, la(2026, 11, 2, 10), 15 * 86400, CAL) == la(2026, 11, 24, 10)
    # 2021-12-24 (Friday) is Christmas observed: a Thursday start needs the Monday.
    assert due_instant(WORKING, la(2021, 12, 23, 12), 86400, CAL) == la(2021, 12, 27, 12)
    # New Year's Day 2022 fell on a Saturday: observed Friday 2021-12-31, across the year end.
    assert not CAL.is_working_day(date(2021, 12, 31))


def test_dst_changes_keep_local_wall_clock_times():
    # Spring forward on Sunday 2026-03-08: due keeps 10:00 local, one hour less of real time.
    start, due = la(2026, 3, 6, 10), due_instant(WORKING, la(2026, 3, 6, 10), 86400, CAL)
    assert due == la(2026, 3, 9, 10)
    assert (due - start) == timedelta(days=3, hours=-1)
    # Fall back on Sunday 2026-11-01.
    assert due_instant(WORKING, la(2026, 10, 30, 10), 86400, CAL) == la(2026, 11, 2, 10)


def test_closures_are_not_working_days():
    closed = WorkingCalendar("America/Los_Angeles", "US", closures=[date(2026, 4, 7)])
    assert due_instant(WORKING, la(2026, 4, 6, 10), 86400, closed) == la(2026, 4, 8, 10)


def test_calendar_time_counts_every_second_but_pauses():
    start = la(2026, 4, 4, 13)
    pauses = [(la(2026, 4, 4, 14), la(2026, 4, 4, 16))]
    assert due_instant(CALENDAR, start, 86400, None, pauses) == la(2026, 4, 5, 15)
    assert elapsed_seconds(CALENDAR, start, la(2026, 4, 4, 17), None, pauses) == 2 * 3600
    assert due_instant(CALENDAR, start, 86400, None, [(la(2026, 4, 4, 14), None)]) is None


def test_a_pause_across_a_weekend_only_removes_working_time():
    start = la(2026, 4, 9, 12)  # Thursday noon
    pauses = [(la(2026, 4, 10, 12), la(2026, 4, 13, 12))]  # Friday noon to Monday noon
    # Thursday 12 h + Friday morning 12 h + Monday 12:00-18:00 6 h.
    assert elapsed_seconds(WORKING, start, la(2026, 4, 13, 18), CAL, pauses) == 30 * 3600
    assert due_instant(WORKING, start, 25 * 3600, CAL, pauses) == la(2026, 4, 13, 13)


def test_an_unknown_holiday_calendar_fails_at_once():
    with pytest.raises(NotImplementedError):
        WorkingCalendar("UTC", "XX")


JERUSALEM = ZoneInfo("Asia/Jerusalem")


@settings(max_examples=150, deadline=None)
@given(start=quarter_hours, days=st.integers(min_value=0, max_value=10))
def test_a_zone_whose_dst_changes_on_a_working_day(start, days):
    """Israel moves its clocks on a Friday: that working day has 23 or 25 real hours."""
    calendar = WorkingCalendar("Asia/Jerusalem", "none")
    t, total, target = start, 0, days * 86400
    while total < target:
        if step_working(t, set(), tz=JERUSALEM):
            total += STEP.total_seconds()
        t += STEP
    assert due_instant(WORKING, start, target, calendar) == t
